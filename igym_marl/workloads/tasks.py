"""The task catalog: three tasks of rising difficulty, and `trace` for any file.

A task fixes the replica (model, GPU, tp), the window length, the episode length, the tenants with
their SLOs (p99 TTFT and TPOT targets, judged per request) and priorities, and the traffic, whose
load is set relative to the replica's **measured capacity** (:func:`measure_capacity_rps`).
``task.workload(seed)`` draws an episode's traffic: every seed a different episode, the same seed
always the same one.

==========================  ========  ==========  ========================================================
task                        window    windows     traffic
==========================  ========  ==========  ========================================================
``static_workload``         5 s       200         one tenant, steady Poisson at 60 % of capacity,
                                                  ShareGPT-like lengths
``bursty_workload``         5 s       120         conversation + API tenants, BurstGPT-shaped: quiet
                                                  phases (~30 % of capacity) and 3 or 4 storms of
                                                  10 to 30 s reaching 2 to 3x capacity, long-tailed lengths
``adversarial_multitenant`` 6 s       200         interactive / standard / batch tenants; sinusoidal base
                                                  load between 20 % and 130 % of capacity, storms on top,
                                                  unannounced 16k to 32k-token prompts biased to peaks
==========================  ========  ==========  ========================================================

Aliases: ``static_uniform`` -> static_workload, ``bursty_sharegpt`` -> bursty_workload.
All run Llama-3-8B on one A100-80GB by default (``config=`` overrides it).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from ..sim.simulator import Simulator
from ..sim.types import VLLM_DEFAULT, SimConfig, Tenant, Workload
from .generators import (API, API_TIMEOUT_S, BATCH_TIMEOUT_S, CONVERSATION, DEFAULT_TENANT, SHAREGPT_LENGTHS,
                         USER_TIMEOUT_S, BurstGPTLengths, LengthModel,
                         TenantStream, _assemble, _rng, gamma_arrivals, streams_workload)
from .sessions import SessionModel, session_requests



# Episode seeds: training and tuning draw from TRAIN_SEEDS, evaluation from EVAL_SEEDS, disjoint by
# construction, so no evaluated episode was ever seen in training.
TRAIN_SEEDS = range(0, 1_000_000)
EVAL_SEEDS = range(1_000_000, 2_000_000)


# ---------------------------------------------------------------------------------- capacity
def measure_capacity_rps(config: SimConfig, streams: list[tuple[object, float]], seed: int = 0,
                         seconds: float = 300.0, overload_rps: float = 60.0) -> float:
    """The replica's capacity in requests/s for a length mix, under vLLM's default knobs.

    Procedure: offer Poisson traffic far above capacity (`overload_rps`) with the mix's lengths
    (`streams`: (length model, share) pairs) for `seconds`, serve it with VLLM_DEFAULT, and count
    the requests completed per second over the last two thirds of the run (after the batch has
    filled). Deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    tenant = Tenant("probe", ttft_slo_ms=1e6, tpot_slo_ms=1e6)
    parts = []
    for lengths, share in streams:
        arr = gamma_arrivals(rng, np.array([overload_rps * share]), seconds, 1.0)
        p, o = lengths.sample(rng, arr.shape[0])
        parts.append((arr, p, o, np.zeros(arr.shape[0], dtype=np.int64)))
    w = _assemble(parts, (tenant,), "capacity-probe")
    return _served_rate(config, w, seed, seconds)


def _served_rate(config: SimConfig, w: Workload, seed: int, seconds: float) -> float:
    """Requests completed per second over the last two thirds of `seconds` of `w` under VLLM_DEFAULT."""
    sim = Simulator(config)
    sim.reset(w, seed=seed)
    warm = seconds / 3.0
    sim.advance(warm, VLLM_DEFAULT)
    done_before = sim.snapshot().finished
    sim.advance(seconds - warm, VLLM_DEFAULT)
    return (sim.snapshot().finished - done_before) / (seconds - warm)


def measure_capacity_of(config: SimConfig, workload: Workload, seed: int = 0, seconds: float = 300.0,
                        overload_rps: float = 60.0) -> float:
    """The replica's capacity in requests/s for the requests of `workload` in their own order, with
    their block keys (prefix caching plays its part): the requests are offered at `overload_rps`
    (their arrival times compressed, order kept) and served with VLLM_DEFAULT for `seconds`; the
    requests completed per second over the last two thirds are counted. Deterministic for a seed."""
    n = len(workload)
    if n == 0:
        return 0.0
    arr = np.arange(n, dtype=np.float64) / overload_rps
    w = Workload(arr, workload.prompt_tokens, workload.output_tokens, np.zeros(n, dtype=np.int64),
                 (Tenant("probe", ttft_slo_ms=1e6, tpot_slo_ms=1e6),), "capacity-probe", key_ptr=workload.key_ptr,
                 block_keys=workload.block_keys, key_block_tokens=workload.key_block_tokens)
    return _served_rate(config, w, seed, seconds)


def measure_capacity_over(config: SimConfig, workload: Workload, seed: int = 0, overload_rps: float = 60.0,
                          step_s: float = 1.0) -> float:
    """The replica's capacity in requests/s for the whole of `workload`, in its order and with its
    block keys (a task's own episode: its tenant mix over all its phases, its conversations'
    turns and shared prompts, so prefix caching plays its part): the requests are offered at
    `overload_rps` (arrival times compressed, order kept), served with VLLM_DEFAULT to the end,
    and the rate at which the middle 80 % of them finished is returned: 0.8 n / (the time the
    90 % mark finished - the time the 10 % mark finished), times found to `step_s`. Deterministic
    for a seed."""
    n = len(workload)
    if n < 10:
        raise ValueError(f"a capacity probe needs at least 10 requests; the workload has {n}")
    w = Workload(np.arange(n, dtype=np.float64) / overload_rps, workload.prompt_tokens, workload.output_tokens,
                 np.zeros(n, dtype=np.int64), (Tenant("probe", ttft_slo_ms=1e6, tpot_slo_ms=1e6),), "capacity-probe",
                 key_ptr=workload.key_ptr, block_keys=workload.block_keys, key_block_tokens=workload.key_block_tokens)
    sim = Simulator(config)
    sim.reset(w, seed=seed)
    lo, hi = int(math.ceil(0.1 * n)), int(math.floor(0.9 * n))
    t = 0.0
    t_lo = None
    limit = n / overload_rps + 1e6  # an engine that finishes nothing for that long is broken
    while t < limit:
        sim.advance(step_s, VLLM_DEFAULT)
        t += step_s
        done = sim.snapshot().finished
        if t_lo is None and done >= lo:
            t_lo = t
        if done >= hi:
            return (hi - lo) / max(t - t_lo, step_s)
    raise RuntimeError(f"the capacity probe finished {sim.snapshot().finished} of {n} requests in {limit:g} s")


def episode_capacity(task, seed: int = 0) -> float:
    """``measure_capacity_over`` on the task's own episode for `seed` (its config; a cluster
    task's replica_task). For tasks whose traffic is not a fixed length mix: conversations that
    resend their history behind shared system prompts."""
    return measure_capacity_over(task.config, task.workload(seed), seed=seed)


# ---------------------------------------------------------------------------------- the spec
class EpisodeTraffic:
    """What single-replica and cluster tasks share: episode shape checks, horizon, traffic and
    phases. Needs the fields window_s, episode_windows, tenants, traffic and phases."""

    def _check_episode(self) -> None:
        w = self.window_s
        if isinstance(w, bool) or not isinstance(w, (int, float, np.floating)) or not math.isfinite(w) or w <= 0:
            raise ValueError(f"window_s={w!r} must be a positive number of seconds")
        n = self.episode_windows
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"episode_windows={n!r} must be an integer >= 1")
        if not self.tenants:
            raise ValueError("a task needs at least one tenant")

    @property
    def horizon_s(self) -> float:
        return self.window_s * self.episode_windows

    def episode(self, seed) -> "Episode":
        """The episode drawn for `seed` (int or numpy Generator): its traffic and its phases, from
        one pass of the traffic function over one generator (a traffic function returns a
        Workload, one phase "all", or (Workload, (phase names, phase index of every second)))."""
        out = self.traffic(self, _rng(seed))
        if isinstance(out, Workload):
            return Episode(out, ("all",), np.zeros(int(math.ceil(self.horizon_s)), dtype=np.int64))
        workload, (names, labels) = out
        return Episode(workload, tuple(names), np.asarray(labels, dtype=np.int64))

    def workload(self, seed) -> Workload:
        """The episode's traffic for `seed` (int or numpy Generator)."""
        return self.episode(seed).workload

    def phase_labels(self, seed) -> tuple[tuple[str, ...], np.ndarray]:
        """The phases of the episode drawn for `seed`: (names, int64[seconds] phase index of every
        second of the horizon). Tasks without phases have one, "all"."""
        ep = self.episode(seed)
        return ep.phase_names, ep.phase_of_second


@dataclass(frozen=True)
class Episode:
    """One episode's traffic and the phase of every second of its horizon (names index it)."""

    workload: Workload
    phase_names: tuple[str, ...]
    phase_of_second: np.ndarray  # int64[ceil(horizon_s)]


@dataclass(frozen=True)
class TaskSpec(EpisodeTraffic):
    """One task. `capacity_rps` is the measured capacity that loads are relative to (the value
    recorded here is checked against a fresh measurement by the tests)."""

    id: str
    description: str
    window_s: float
    episode_windows: int
    tenants: tuple[Tenant, ...]
    capacity_rps: float
    # the episode's traffic for an rng: a Workload, or (Workload, (phase names, int64 phase of every
    # second)) drawn in the same pass (EpisodeTraffic.episode)
    traffic: Callable[["TaskSpec", np.random.Generator], Workload | tuple] = field(repr=False)
    length_mix: tuple = field(repr=False, default=())
    config: SimConfig = field(default_factory=SimConfig)
    ttft_slo_ms: float = 500.0  # the InferenceGym task's p99 TTFT SLO (its headline tenant)
    # measures capacity_rps afresh (default: measure_capacity_rps on length_mix; episode_capacity for
    # traffic with conversations)
    capacity_probe: Callable[["TaskSpec", int], float] | None = field(repr=False, default=None)

    def __post_init__(self):
        self._check_episode()

    def measure_capacity(self, seed: int = 0) -> float:
        if self.capacity_probe is not None:
            return self.capacity_probe(self, seed)
        return measure_capacity_rps(self.config, list(self.length_mix), seed=seed)


# ---------------------------------------------------------------------------------- traffic
def _static(task: TaskSpec, rng) -> Workload:
    rate = np.array([0.6 * task.capacity_rps])
    return streams_workload([TenantStream(task.tenants[0], rate, 1.0, SHAREGPT_LENGTHS)], task.horizon_s, rng,
                            name=task.id)


def _storms(rng, t, n_range, dur_range, peak_range, base):
    """Add storms (plateaus with 20 % ramps) to `base`; peaks are absolute rates."""
    rate = base.copy()
    for _ in range(int(rng.integers(n_range[0], n_range[1] + 1))):
        dur = min(rng.uniform(*dur_range), t[-1])  # short episodes (episode_windows overrides) still fit
        start = rng.uniform(0, t[-1] - dur)
        peak = rng.uniform(*peak_range)
        x = (t - start) / dur
        ramp = np.clip(np.minimum(x, 1 - x) / 0.2, 0.0, 1.0)
        rate = np.maximum(rate, np.where((x >= 0) & (x <= 1), peak * ramp, 0.0))
    return rate


BURSTY_CONV_SHARE = 0.6


def storm_rate(task, rng, quiet: float, quiet_sd: float, period_s: tuple, storms: tuple, storm_s: tuple,
               peak: tuple, with_base: bool = False):
    """Per-second rate (req/s) of BurstGPT-shaped traffic: a quiet level of `quiet` x capacity,
    log-normal across episodes (sd `quiet_sd`), wobbling by +-25 % over a period drawn from
    `period_s`; then `storms` storms lasting `storm_s` seconds at `peak` x capacity. With
    `with_base`, (rate, the quiet level under it)."""
    cap = task.capacity_rps
    t = np.arange(int(math.ceil(task.horizon_s)), dtype=np.float64)
    base = quiet * cap * np.exp(rng.normal(0, quiet_sd) + 0.25 * np.sin(2 * np.pi * t / rng.uniform(*period_s)
                                                                        + rng.uniform(0, 2 * np.pi)))
    rate = _storms(rng, t, storms, storm_s, (peak[0] * cap, peak[1] * cap), base)
    return (rate, base) if with_base else rate


def conversation_rate(share: float, rate: np.ndarray, base: np.ndarray, sessions: SessionModel) -> np.ndarray:
    """The rate profile to give ``session_requests`` for a conversation tenant holding `share` of
    storm traffic (`rate`, over its quiet level `base`): in quiet time its turns (first and later)
    make `share` x the rate; a storm is a flood of new conversations, whose first turns alone make
    its `share` of the storm's excess, and whose later turns come back over the following minutes
    (think time): a storm keeps its height and leaves an aftershock."""
    return share * (base + sessions.mean_turns * (rate - base))


BURSTY_STORMS = (0.3, 0.25, (150, 300), (3, 4), (10.0, 30.0), (2.0, 3.0))


def bursty_rate(task: TaskSpec, rng) -> np.ndarray:
    """Per-second total rate (req/s): quiet ~30 % of capacity with a slow wobble, 3-4 storms of
    10-30 s at 2-3x capacity (before the conversations' later turns: ``conversation_rate``)."""
    return storm_rate(task, rng, *BURSTY_STORMS)


# Conversations of the chat tenants: multi-turn sessions that resend their context, behind shared
# system prompts (igym_marl/workloads/sessions.py). Turns per conversation: 2.0 on average, as in
# LMSYS-Chat-1M (Zheng et al., ICLR 2024, its 1M real conversations average 2.0 turns). Time between a
# turn and the next: Mooncake's measured log-normal (median 144 s, log-sd 0.93; the adversarial day,
# 72x compressed, compresses it too). Applications and their system prompts are our choice (Zipf
# popularity 1): 8 of 200 to 1,000 tokens for the BurstGPT-like chat, 4 of 300 to 1,200 tokens for the
# interactive assistant. Messages and answers are the tenant's own single-request lengths.
# Conversations start as burstily as BurstGPT's conversation requests arrive (Gamma shape 0.529).
CHAT_SESSIONS = SessionModel(system_prompts=8, system_prompt_tokens=(200, 1000), mean_turns=2.0,
                             think_s=(144.0, 0.93), first=BurstGPTLengths(chat=True),
                             followup=BurstGPTLengths(chat=True), popularity=1.0, arrival_shape=0.529)


def _bursty(task: TaskSpec, rng) -> tuple[Workload, tuple]:
    """The traffic, and its phases: quiet, or storm where the offered rate exceeds capacity."""
    total, base = storm_rate(task, rng, *BURSTY_STORMS, with_base=True)
    conv, api = task.tenants
    w = streams_workload([TenantStream(conv, conversation_rate(BURSTY_CONV_SHARE, total, base, CHAT_SESSIONS), 0.529,
                                       None, sessions=CHAT_SESSIONS),
                          TenantStream(api, (1 - BURSTY_CONV_SHARE) * total, 1.416, BurstGPTLengths(chat=False))],
                         1.0, rng, name=task.id)
    return w, (("quiet", "storm"), (total > task.capacity_rps).astype(np.int64))


ADV_SHARES = (0.4, 0.35, 0.25)  # interactive, standard, batch: the mix capacity is measured on
ADV_LENGTHS = (LengthModel(161.31, 1.0, 337.99, 0.9),  # interactive chat: ShareGPT-like
               BurstGPTLengths(chat=False),  # standard API traffic: BurstGPT-like long tail
               LengthModel(2000.0, 0.6, 300.0, 0.5, prompt_max=8192, output_max=1024))  # batch: summarization
# Long documents sent for summarisation by batch jobs at night: 8k-32k-token prompts (median 12k).
ADV_DOCUMENTS = LengthModel(12000.0, 0.5, 400.0, 0.5, prompt_max=32768, output_max=1024)


@dataclass(frozen=True)
class DayProfile:
    """A day of a shared endpoint, compressed into one episode (adversarial_multitenant).

    Hour of day h runs from `start_hour` (+- `start_jitter_h`, drawn per seed) through 24 hours
    over the episode. Rates are fractions of the task's capacity.

    * Daytime (interactive and standard): BurstGPT's conversation shape, two peaks at 10:30 and
      15:00 (Gaussian, sd 2 h) and near nothing at night; interactive reaches `interactive_peak`
      and standard `standard_peak` at a peak, over a floor of `floor`.
    * Storms: `storms` of 10-40 s reaching `storm_peak` x capacity, placed where the daytime shape
      is above 0.6, split 60 / 40 between interactive and standard.
    * Night (21:00-06:00, 30-s ramps): batch jobs, `night_batch` x capacity, of which
      `document_share` of the load are long documents (8k-32k tokens; a quarter of the request
      rate, as each costs about four summaries). Batch trickles at `floor` during the day.
    * Unannounced long prompts: 4-8 prompts of 16k-32k tokens from the standard or batch tenant at
      times drawn with density ~ load^2 (near the peaks), as in the original task.
    """

    start_hour: float = 7.0
    start_jitter_h: float = 1.5
    interactive_peak: float = 0.55
    standard_peak: float = 0.3
    floor: float = 0.03
    storms: tuple[int, int] = (2, 3)
    storm_peak: tuple[float, float] = (1.5, 2.5)
    night_batch: float = 0.35
    document_share: float = 0.3

    def hours(self, task: "TaskSpec", rng) -> np.ndarray:
        """Hour of day of every second of the episode."""
        t = np.arange(int(math.ceil(task.horizon_s)), dtype=np.float64)
        start = self.start_hour + rng.uniform(-self.start_jitter_h, self.start_jitter_h)
        return (start + t / task.horizon_s * 24.0) % 24.0


ADV_DAY = DayProfile()
PHASES = ("day", "evening", "night")  # the phase of an hour (docs/tasks.md scores each)


def day_phase(hour: np.ndarray) -> np.ndarray:
    """0 (day, 07:00-17:00), 1 (evening, 17:00-21:00 and 06:00-07:00) or 2 (night, 21:00-06:00)."""
    night = (hour >= 21.0) | (hour < 6.0)
    day = (hour >= 7.0) & (hour < 17.0)
    return np.where(night, 2, np.where(day, 0, 1))


def _ramp(mask: np.ndarray, seconds: int = 30) -> np.ndarray:
    """A 0/1 profile with linear ramps of `seconds` at its edges."""
    k = np.ones(seconds) / seconds
    return np.convolve(np.pad(mask.astype(float), (seconds // 2, seconds - seconds // 2 - 1), mode="edge"), k,
                       mode="valid")


def adversarial_rates(task: TaskSpec, rng, profile: DayProfile = ADV_DAY) -> tuple[np.ndarray, ...]:
    """Per-second rates (req/s) of (interactive, standard, batch summaries, batch documents) and
    the hour of day of every second."""
    cap, p = task.capacity_rps, profile
    hour = p.hours(task, rng)
    t = np.arange(hour.shape[0], dtype=np.float64)
    shape = np.minimum(np.exp(-0.5 * ((hour - 10.5) / 2.0) ** 2) + np.exp(-0.5 * ((hour - 15.0) / 2.0) ** 2), 1.2)
    interactive = cap * (p.floor + p.interactive_peak * shape)
    standard = cap * (p.floor + p.standard_peak * shape)
    for _ in range(int(rng.integers(p.storms[0], p.storms[1] + 1))):
        dur = float(min(rng.uniform(10.0, 40.0), t[-1]))
        starts = np.flatnonzero(shape[: max(1, int(t[-1] - dur))] > 0.6)
        start = float(rng.choice(starts)) if starts.size else rng.uniform(0, t[-1] - dur)
        x = (t - start) / dur
        storm = np.where((x >= 0) & (x <= 1), rng.uniform(*p.storm_peak) * cap * np.clip(np.minimum(x, 1 - x) / 0.2, 0, 1), 0)
        interactive = np.maximum(interactive, 0.6 * storm)
        standard = np.maximum(standard, 0.4 * storm)
    night = cap * (p.floor + p.night_batch * _ramp(day_phase(hour) == 2))
    return interactive, standard, night * (1 - p.document_share), night * p.document_share / 4.0, hour


INTERACTIVE_SESSIONS = SessionModel(system_prompts=4, system_prompt_tokens=(300, 1200), mean_turns=2.0,
                                    think_s=(144.0 / 72.0, 0.93), first=ADV_LENGTHS[0], followup=ADV_LENGTHS[0],
                                    popularity=1.0, arrival_shape=0.8)


def _adversarial(task: TaskSpec, rng, profile: DayProfile = ADV_DAY) -> tuple[Workload, tuple]:
    """The day's traffic, and its phases: day, evening or night by the hour of every second."""
    inter, std, summaries, documents, hour = adversarial_rates(task, rng, profile)
    a, p, o, keys = session_requests(INTERACTIVE_SESSIONS, inter, 1.0, rng, stream=0)
    parts = [(a, p, o, np.zeros(a.shape[0], dtype=np.int64), keys)]
    for ti, rate, shape, lengths in ((1, std, 1.0, ADV_LENGTHS[1]), (2, summaries, 1.4, ADV_LENGTHS[2]),
                                     (2, documents, 1.4, ADV_DOCUMENTS)):
        arr = gamma_arrivals(rng, rate, 1.0, shape)
        p, o = lengths.sample(rng, arr.shape[0])
        parts.append((arr, p, o, np.full(arr.shape[0], ti, dtype=np.int64)))
    # unannounced 16k-32k-token prompts, arrival times drawn with density ~ load^2 (the peaks)
    load = inter + std
    n_mega = int(rng.integers(4, 9))
    dens = load ** 2 / (load ** 2).sum()
    times = np.sort(rng.choice(load.shape[0], n_mega, p=dens) + rng.random(n_mega))
    parts.append((times, rng.integers(16384, 32769, n_mega), rng.integers(100, 501, n_mega),
                  rng.choice([1, 2], n_mega)))
    return _assemble(parts, task.tenants, task.id), (PHASES, day_phase(hour))


# ---------------------------------------------------------------------------------- Mooncake
MOONCAKE_FILE = ("traces", "mooncake_conversation_trace.jsonl.gz")
# Long-context chat (Kimi): prompts of 12k tokens on average, up to 126k. A 12k-token prompt prefills
# in about 1.3 s on one A100, a 100k-token one in about 20 s: the first token within 10 s, answers at
# 100 ms per token, clients patient for a minute (our choice, as the other tasks' SLOs).
MOONCAKE_TENANT = Tenant("conversation", ttft_slo_ms=10000.0, tpot_slo_ms=100.0, priority=1, spec_acceptance=0.6,
                         timeout_s=API_TIMEOUT_S)
MOONCAKE_LOAD = 0.6  # the share of the replica's (or fleet's) capacity an episode offers


@lru_cache(maxsize=4)
def mooncake_trace(block_tokens: int = 16):
    """The shipped Mooncake conversation trace, parsed once per process, with its keys cut at
    `block_tokens`-token blocks and MOONCAKE_TENANT for every request."""
    from ..paths import data_path
    from .traces import parse_mooncake
    return parse_mooncake(data_path(*MOONCAKE_FILE), tenant=MOONCAKE_TENANT, block_tokens=block_tokens)


def mooncake_episode(task, rng) -> Workload:
    """About MOONCAKE_LOAD x capacity x horizon requests of the trace, whole conversations at the
    trace's own pace (``conversation_episode``): what one replica (or the task's fleet) of Kimi's
    service would have seen."""
    config = task.config if isinstance(task, TaskSpec) else task.cluster.configs[0]
    parsed = mooncake_trace(config.block_tokens)
    n = int(round(MOONCAKE_LOAD * task.capacity_rps * task.horizon_s))
    return conversation_episode(parsed, n, task.horizon_s, rng, task.id)


def conversation_rows(parsed, n: int, horizon: float, rng, rows: np.ndarray | None = None,
                      random_start: bool = True) -> tuple[np.ndarray, float, float]:
    """The rows ``conversation_episode`` plays, its stretch's start (trace seconds) and speed-up.
    `rows`: the segment to cut from (default: the whole trace); without `random_start` the stretch
    starts at the segment's first request."""
    conv = parsed.conversations()
    seg = np.arange(parsed.stamps.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    t0 = float(parsed.stamps[seg[0]])
    span = float(parsed.stamps[seg[-1]]) - t0
    rate = seg.size / span if span > 0 else float("inf")
    speed = max(1.0, n / (rate * horizon))
    length = min(span, horizon * speed) if span > 0 else horizon
    start = t0 + (float(rng.uniform(0.0, span - length)) if random_start and span > length else 0.0)
    stamps = parsed.stamps[seg]
    picked = seg[(stamps >= start) & (stamps < start + length) if span > 0 else np.ones(seg.size, dtype=bool)]
    # whole conversations in a random order, each taken if it still fits: never more than n requests
    ids, sizes = np.unique(conv[picked], return_counts=True)
    take = np.zeros(int(conv.max()) + 1, dtype=bool)
    total = 0
    for k in rng.permutation(ids.size):
        if total + sizes[k] <= n:
            take[ids[k]] = True
            total += int(sizes[k])
    return picked[take[conv[picked]]], start, speed


def conversation_episode(parsed, n: int, horizon: float, rng, name: str, rows: np.ndarray | None = None,
                         random_start: bool = True) -> Workload:
    """About `n` requests of a Mooncake trace over `horizon` seconds, conversations kept whole: from
    a random point of the trace, a stretch of `horizon` x speed-up seconds (speed-up 1, the trace's
    own time, unless the trace is too slow to give `n` requests in `horizon` seconds: then the least
    that does), time divided by the speed-up; of its conversations each kept with the same chance,
    so that n requests are expected. A conversation's turns keep their think times and its cached
    history: thinning the trace by conversation, as routing it across replicas would, and not by
    request (which would break every conversation) nor by squeezing its time (which would shrink
    the gaps between turns). `rows` / `random_start`: as ``conversation_rows``."""
    from ..sim.types import take_keys
    rows, start, speed = conversation_rows(parsed, n, horizon, rng, rows, random_start)
    ptr, keys = take_keys(parsed.key_ptr, parsed.block_keys, rows)
    arr = (parsed.stamps[rows] - start) / speed
    return Workload(arr, parsed.prompt[rows], np.maximum(parsed.output[rows], 1), parsed.tenant[rows], parsed.tenants,
                    name=name, key_ptr=ptr, block_keys=keys, key_block_tokens=parsed.key_block_tokens)


MOONCAKE_PROBE_REQUESTS = 1200


def _mooncake_capacity(task, seed: int = 0) -> float:
    """The replica's capacity for the trace's own requests (``measure_capacity_over``): 1,200
    consecutive requests from a seeded random point, in their order, caching included."""
    parsed = mooncake_trace(task.config.block_tokens)
    w = keyed_episode(parsed, np.arange(parsed.stamps.shape[0]), MOONCAKE_PROBE_REQUESTS, 1.0,
                      np.random.default_rng(seed), True, "capacity-probe")
    return measure_capacity_over(task.config, w, seed=seed)


# ---------------------------------------------------------------------------------- catalog
STATIC_TENANT = DEFAULT_TENANT
BURSTY_TENANTS = (CONVERSATION, API)
ADV_TENANTS = (Tenant("interactive", ttft_slo_ms=200.0, tpot_slo_ms=50.0, priority=2, spec_acceptance=0.6, weight=2.0,
                      timeout_s=USER_TIMEOUT_S),
               Tenant("standard", ttft_slo_ms=1000.0, tpot_slo_ms=100.0, priority=1, spec_acceptance=0.65, weight=1.0,
                      timeout_s=API_TIMEOUT_S),
               Tenant("batch", ttft_slo_ms=10000.0, tpot_slo_ms=300.0, priority=0, spec_acceptance=0.75, weight=0.5,
                      timeout_s=BATCH_TIMEOUT_S))

TASKS: dict[str, TaskSpec] = {
    "static_workload": TaskSpec(
        "static_workload", "Steady Poisson traffic at 60 % of capacity, one tenant, ShareGPT-like lengths.",
        window_s=5.0, episode_windows=200, tenants=(STATIC_TENANT,), capacity_rps=19.0, traffic=_static,
        length_mix=((SHAREGPT_LENGTHS, 1.0),), ttft_slo_ms=500.0),
    "bursty_workload": TaskSpec(
        "bursty_workload", "BurstGPT-shaped traffic: quiet phases and storms of 2-3x capacity, conversation "
        "and API tenants, long-tailed lengths.", window_s=5.0, episode_windows=120, tenants=BURSTY_TENANTS,
        capacity_rps=9.3, traffic=_bursty,
        capacity_probe=episode_capacity,
        ttft_slo_ms=300.0),
    "adversarial_multitenant": TaskSpec(
        "adversarial_multitenant", "Interactive, standard and batch tenants; sinusoidal load from 20 % to 130 % "
        "of capacity with storms on top and unannounced 16k-32k-token prompts near the peaks.",
        window_s=6.0, episode_windows=200, tenants=ADV_TENANTS, capacity_rps=6.15, traffic=_adversarial,
        capacity_probe=episode_capacity, ttft_slo_ms=200.0),
    "mooncake_conversation": TaskSpec(
        "mooncake_conversation", "Kimi's production conversation traffic (the Mooncake trace): long-context chat, "
        "12k-token prompts on average, a shared system prompt and conversations resending their history, at 60 % "
        "of the replica's capacity.", window_s=10.0, episode_windows=90, tenants=(MOONCAKE_TENANT,),
        capacity_rps=0.47, traffic=mooncake_episode, capacity_probe=_mooncake_capacity, ttft_slo_ms=10000.0),
}
ALIASES = {"static_uniform": "static_workload", "bursty_sharegpt": "bursty_workload"}
TASK_IDS = tuple(TASKS) + ("trace",)


TASK_FIELDS = tuple(f.name for f in fields(TaskSpec) if f.name != "id")  # what get_task may override


def get_task(task_id: str, **overrides) -> TaskSpec:
    """A task by id or alias; `overrides` replace TaskSpec fields (e.g. config=SimConfig(gpu="h100-80gb"),
    episode_windows=50). For ``trace`` see :func:`trace_task`."""
    if task_id == "trace":
        return trace_task(**overrides)
    key = ALIASES.get(task_id, task_id)
    if key not in TASKS:
        raise ValueError(f"task={task_id!r} is unknown; allowed: {', '.join(TASK_IDS)} "
                         f"(aliases: {', '.join(ALIASES)})")
    unknown = sorted(set(overrides) - set(TASK_FIELDS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for task {key!r}; allowed: {', '.join(TASK_FIELDS)}")
    return replace(TASKS[key], **overrides) if overrides else TASKS[key]


MAX_TRACE_WINDOWS = 100_000  # an episode longer than this is a corrupt stamp or a forgotten episode_windows
TRACE_PARSE_OPTIONS = {"burstgpt": ("models", "log_types", "tenant_map"), "azure": ("tenant",), "mooncake": ("tenant",)}
TRACE_WINDOW_OPTIONS = ("start_s", "duration_s", "speedup", "rate_scale", "keep_failed")


def _check_trace_load(path, load: float, capacity: float, config: SimConfig, prompts: np.ndarray, span_s: float,
                      window_s: float, horizon_s: float) -> None:
    """Refuse a `load` that the file cannot give a meaning, saying why in terms of the file."""
    from .traces import MAX_EPISODE_REQUESTS
    if span_s < window_s:
        raise ValueError(f"load={load:g} needs a trace whose segment spans at least one window ({window_s:g} s) to "
                         f"have a rate; {path}'s segment spans {span_s:.3g} s ({prompts.shape[0]:,} requests)")
    if not capacity > 0:
        raise ValueError(f"load={load:g} cannot be played from {path}: one replica ({config.model} on {config.tp} x "
                         f"{config.gpu}) serves none of its requests under vLLM's default knobs (prompts of up to "
                         f"{int(prompts.max()):,} tokens), so it has no capacity to scale to; replay it with "
                         f"rate_scale= instead")
    if load * capacity * horizon_s > MAX_EPISODE_REQUESTS:
        raise ValueError(f"load={load:g} asks for {load * capacity * horizon_s:,.0f} requests per episode "
                         f"({capacity:.3g} req/s x {horizon_s:g} s), more than {MAX_EPISODE_REQUESTS:,}")


def keyed_episode(parsed, rows: np.ndarray, n: int, horizon: float, rng, random_start: bool, name: str) -> Workload:
    """n consecutive requests of a keyed trace's `rows` (from a random point with `random_start`,
    else from the first), in their order with their keys, their arrival times squeezed or stretched
    so they fill `horizon` seconds, the last one a mean gap before its end."""
    from ..sim.types import take_keys
    first = int(rng.integers(0, rows.size - n + 1)) if random_start else 0
    pick = rows[first:first + n]
    t = parsed.stamps[pick] - parsed.stamps[pick[0]]
    span = t[-1] * n / (n - 1) if n > 1 else 0.0
    arr = t * (horizon / span) if span > 0 else np.arange(n) * (horizon / n)
    ptr, keys = take_keys(parsed.key_ptr, parsed.block_keys, pick)
    return Workload(arr, parsed.prompt[pick], np.maximum(parsed.output[pick], 1), parsed.tenant[pick], parsed.tenants,
                    name=name, key_ptr=ptr, block_keys=keys, key_block_tokens=parsed.key_block_tokens)


def _keyed_trace_task(path, format, parsed, in_seg, span, window_s, episode_windows, config, random_start, load, speedup,
                      lengths) -> "TaskSpec":
    """The trace task of a trace whose requests share prefixes (block keys: Mooncake's). With
    `load`, an episode holds about load x capacity x horizon requests: for a Mooncake trace, whole
    conversations at the trace's own pace (``conversation_episode``: time squeezed only when the
    segment is too slow to give that many), so every conversation keeps its turns and their think
    times; for other keyed traces, the next requests of the segment in their order, time squeezed
    or stretched to fill the episode. Without `load`, the segment's time (divided by `speedup`)."""
    from .traces import window
    from ..sim.types import take_keys
    rows = np.flatnonzero(in_seg)
    ptr, keys = take_keys(parsed.key_ptr, parsed.block_keys, rows)
    sub = Workload(parsed.stamps[rows] - parsed.stamps[rows[0]], parsed.prompt[rows], np.maximum(parsed.output[rows], 1),
                   parsed.tenant[rows], parsed.tenants, key_ptr=ptr, block_keys=keys,
                   key_block_tokens=parsed.key_block_tokens)
    capacity = measure_capacity_of(config, sub)
    horizon_s = episode_windows * window_s
    n_ep = 0
    if load is not None:
        if not capacity > 0:
            raise ValueError(f"load={load:g} cannot be played from {path}: one replica ({config.model} on {config.tp} x "
                             f"{config.gpu}) serves none of its requests under vLLM's default knobs (prompts of up to "
                             f"{int(parsed.prompt[rows].max()):,} tokens)")
        n_ep = int(round(load * capacity * horizon_s))
        if n_ep < 1 or n_ep > rows.size:
            raise ValueError(f"load={load:g} asks for {load * capacity * horizon_s:,.1f} requests per episode "
                             f"({capacity:.3g} req/s x {horizon_s:g} s); {path}'s segment holds {rows.size:,}: give a "
                             f"load or an episode that it can fill")

    def traffic(task: TaskSpec, rng) -> Workload:
        horizon = task.horizon_s
        if load is None:
            offset = rng.uniform(0.0, max(0.0, span - horizon)) if random_start else 0.0
            start = float(parsed.stamps[rows[0]]) + offset * speedup
            w, _ = window(parsed, start_s=start, duration_s=horizon * speedup, speedup=speedup, seed=rng)
            return w
        n = min(rows.size, int(round(load * capacity * horizon)))
        name = f"{format}:{Path(path).name}"
        if format == "mooncake":
            return conversation_episode(parsed, n, horizon, rng, name, rows, random_start)
        return keyed_episode(parsed, rows, n, horizon, rng, random_start, name)

    what = f"load {load:g} x capacity" if load is not None else f"speedup x{speedup:g}"
    return TaskSpec("trace", f"Replay of {path} ({format}, {rows.size} requests over {span:,.0f} s, {what}, block keys "
                             f"for prefix caching)", window_s=window_s, episode_windows=episode_windows,
                    tenants=parsed.tenants, capacity_rps=capacity, traffic=traffic, length_mix=((lengths, 1.0),),
                    config=config)


_TRACE_TASKS: dict = {}  # (file checksum, settings) -> TaskSpec: each trace task is built once per process
_TRACE_TASKS_KEPT = 8


def file_sha256(path) -> str:
    """The SHA-256 of a file's bytes (FileNotFoundError naming it if absent)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def trace_task(path=None, format: str = "auto", window_s: float = 5.0, episode_windows: int | None = None,
               config: SimConfig | None = None, random_start: bool = False, load: float | None = None,
               **options) -> TaskSpec:
    """Replay a trace file as a task; the file is parsed once, here, and every reset cuts its window.

    The task is built once per process for a given file content and settings: asking again (a
    training run resolves its task for every evaluation) returns the same TaskSpec without parsing
    the file or probing the replica's capacity again. The key is the file's SHA-256, so an edited
    file is read afresh.

    path: a BurstGPT CSV or an Azure LLM inference trace (processed or raw form).
    format: "auto" (from the header), "burstgpt" or "azure".
    window_s, episode_windows: the control window and the episode length; by default one episode
      replays the whole segment.
    random_start: each seed starts its episode at a different point of the segment (uniform over
      the starts whose episode fits in it).
    load: scale the request rate (Bernoulli thinning or jittered copies, timing kept) so that each
      episode's mean rate is this multiple of the replica's capacity, measured with the trace's own
      (prompt, output) pairs under vLLM's default knobs: the load of what is played, episode by
      episode (the bursts inside an episode are the trace's). Production traces are cluster
      aggregates: ``load=0.8`` replays one at a level one replica can serve. Not with `rate_scale`
      (which scales the trace as recorded, so episodes keep the trace's own ups and downs).
    options: the loader's -- start_s, duration_s (the segment, trace seconds), speedup (divide
      times), rate_scale, keep_failed; BurstGPT: models, log_types, tenant_map; Azure: tenant.

    Each seed spreads BurstGPT's tied timestamps differently and, with `random_start`, starts at a
    different point. A window with no request, or without some tenant, is a valid episode part.
    """
    if path is None:
        raise ValueError("task 'trace' needs path=<trace file> (a BurstGPT CSV or the Azure LLM trace; "
                         "format='auto' reads which from its header)")
    from .traces import regular_file
    regular_file(path)  # before reading: a FIFO would block, a directory cannot be hashed
    digest = file_sha256(path)
    key = (digest, format, repr(window_s), repr(episode_windows), repr(config), random_start, repr(load),
           repr(sorted(options.items())), str(path))
    if key not in _TRACE_TASKS:
        while len(_TRACE_TASKS) >= _TRACE_TASKS_KEPT:
            _TRACE_TASKS.pop(next(iter(_TRACE_TASKS)))
        _TRACE_TASKS[key] = _trace_task(path, format, window_s, episode_windows, config, random_start, load,
                                        **options)
    return _TRACE_TASKS[key]


def _check_trace_args(format, window_s, episode_windows, random_start, load, options) -> None:
    """trace_task's arguments, each refused by name before the file is read."""
    from .traces import TRACE_FORMATS
    if format not in ("auto", *TRACE_FORMATS):
        raise ValueError(f"format={format!r} is unknown; allowed: auto, {', '.join(TRACE_FORMATS)}")
    if isinstance(window_s, bool) or not isinstance(window_s, (int, float)) or not math.isfinite(window_s) \
            or window_s <= 0:
        raise ValueError(f"window_s={window_s!r} must be a positive number of seconds")
    if episode_windows is not None and (isinstance(episode_windows, bool) or
                                        not isinstance(episode_windows, (int, np.integer)) or episode_windows < 1):
        raise ValueError(f"episode_windows={episode_windows!r} must be an integer >= 1")
    if not isinstance(random_start, bool):
        raise ValueError(f"random_start={random_start!r} must be True or False")
    if load is not None:
        if isinstance(load, bool) or not isinstance(load, (int, float)) or not math.isfinite(load) or load <= 0:
            raise ValueError(f"load={load!r} must be a positive number (a multiple of the replica's capacity)")
        if "rate_scale" in options:
            raise ValueError("give load= (relative to the replica's capacity) or rate_scale= (relative to the "
                             "trace), not both")


def _parse_trace(path, format: str, config: SimConfig, parse: dict, rate_scaled: bool):
    """The file parsed by its format's loader (a Mooncake trace keyed in the config's blocks)."""
    from .traces import parse_azure, parse_burstgpt, parse_mooncake
    if format == "burstgpt":
        parsed = parse_burstgpt(path, **parse)
    elif format == "azure":
        parsed = parse_azure(path, **parse)
    else:
        parsed = parse_mooncake(path, block_tokens=config.block_tokens, **parse)
        if rate_scaled:
            raise ValueError(f"{path}: a Mooncake trace's requests share prefixes (their hash_ids); thinning or "
                             f"copying them (rate_scale) would break those: give load= (each episode's requests "
                             f"squeezed or stretched in time) or speedup=")
    return parsed


def _trace_task(path, format, window_s, episode_windows, config, random_start, load, **options) -> TaskSpec:
    """trace_task without its cache."""
    from .generators import EmpiricalLengths
    from .traces import _check_window_options, detect_format, rescale, window
    _check_trace_args(format, window_s, episode_windows, random_start, load, options)
    if format == "auto":
        format = detect_format(path)
    allowed = TRACE_PARSE_OPTIONS[format] + TRACE_WINDOW_OPTIONS
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for a {format} trace; allowed: path, format, window_s, "
                         f"episode_windows, config, random_start, load, {', '.join(allowed)}")
    if "keep_failed" in options and not isinstance(options["keep_failed"], bool):
        raise ValueError(f"keep_failed={options['keep_failed']!r} must be True or False")
    start_s = options.get("start_s", 0.0)
    duration_s = options.get("duration_s")
    speedup = options.get("speedup", 1.0)
    rate_scale = options.get("rate_scale", 1.0)
    keep_failed = options.get("keep_failed", False)
    _check_window_options(start_s, duration_s, speedup, rate_scale)
    parse = {k: v for k, v in options.items() if k in TRACE_PARSE_OPTIONS[format]}
    config = config if config is not None else SimConfig()
    parsed = _parse_trace(path, format, config, parse, "rate_scale" in options)

    # the segment to replay, in trace seconds, and its requests
    last = float(parsed.stamps[-1]) + 1.0 if parsed.integer_stamps else float(np.nextafter(parsed.stamps[-1], np.inf))
    if start_s >= last:
        raise ValueError(f"start_s={start_s!r} is at or after the trace's end ({last:g} s)")
    seg_end = last if duration_s is None else min(last, start_s + duration_s)
    in_seg = (parsed.stamps >= (math.floor(start_s) if parsed.integer_stamps else start_s)) & \
             (parsed.stamps < seg_end)
    if not keep_failed:
        in_seg &= parsed.output > 0
    n_seg = int(in_seg.sum())
    if n_seg == 0:
        raise ValueError(f"{path}: no request in the segment [{start_s:g}, {seg_end:g}) s")
    span = (seg_end - start_s) / speedup  # replay seconds
    if episode_windows is None:
        episode_windows = max(1, int(math.ceil(span / window_s)))
        if episode_windows > MAX_TRACE_WINDOWS:
            raise ValueError(f"{path}: the segment spans {span:,.0f} s of replay, {episode_windows:,} windows of "
                             f"{window_s:g} s (more than {MAX_TRACE_WINDOWS:,}); give episode_windows= or "
                             f"duration_s= (with random_start=True to see the whole trace over seeds)")
    lengths = EmpiricalLengths(parsed.prompt[in_seg], parsed.output[in_seg])
    horizon_s = episode_windows * float(window_s)
    if parsed.has_keys:
        return _keyed_trace_task(path, format, parsed, in_seg, span, float(window_s), int(episode_windows), config,
                                 random_start, load, speedup, lengths)
    capacity = measure_capacity_rps(config, [(lengths, 1.0)])
    if load is not None:
        _check_trace_load(path, load, capacity, config, parsed.prompt[in_seg], span, float(window_s), horizon_s)

    def traffic(task: TaskSpec, rng) -> Workload:
        # task.horizon_s, not the horizon above: an env that shortens the episode still starts it at random
        horizon = task.horizon_s
        offset = rng.uniform(0.0, max(0.0, span - horizon)) if random_start else 0.0
        start = start_s + offset * speedup
        played = min(horizon * speedup, seg_end - start)  # trace seconds
        w, _ = window(parsed, start_s=start, duration_s=played, speedup=speedup,
                      rate_scale=1.0 if load is not None else rate_scale, keep_failed=keep_failed, seed=rng)
        if load is not None and len(w):
            # `load` is the load of what is played: this episode's own requests are scaled to it
            w = rescale(w, load * capacity * (played / speedup) / len(w), rng)
        return w

    what = f"load {load:g} x capacity" if load is not None else f"rate x{rate_scale:g}"
    return TaskSpec("trace", f"Replay of {path} ({format}, {n_seg} requests over {span:,.0f} s, {what}, speedup "
                             f"x{speedup:g})", window_s=float(window_s), episode_windows=int(episode_windows),
                    tenants=parsed.tenants, capacity_rps=capacity, traffic=traffic, length_mix=((lengths, 1.0),),
                    config=config)
