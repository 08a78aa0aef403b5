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

import math
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from ..sim.simulator import Simulator
from ..sim.types import Knobs, SimConfig, Tenant, Workload
from .generators import (API, API_TIMEOUT_S, BATCH_TIMEOUT_S, CONVERSATION, DEFAULT_TENANT, SHAREGPT_LENGTHS,
                         USER_TIMEOUT_S, BurstGPTLengths, LengthModel,
                         TenantStream, _assemble, _rng, gamma_arrivals, streams_workload)

VLLM_DEFAULT = Knobs(batch_cap=256, kv_budget_fraction=0.9, speculation_depth=0, quantization_tier="FP16",
                     prefill_decode_split=True, priority_routing=False)


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
    sim = Simulator(config)
    sim.reset(w, seed=seed)
    warm = seconds / 3.0
    sim.advance(warm, VLLM_DEFAULT)
    done_before = sim.snapshot().finished
    sim.advance(seconds - warm, VLLM_DEFAULT)
    return (sim.snapshot().finished - done_before) / (seconds - warm)


# ---------------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class TaskSpec:
    """One task. `capacity_rps` is the measured capacity that loads are relative to (the value
    recorded here is checked against a fresh measurement by the tests)."""

    id: str
    description: str
    window_s: float
    episode_windows: int
    tenants: tuple[Tenant, ...]
    capacity_rps: float
    traffic: Callable[["TaskSpec", np.random.Generator], Workload] = field(repr=False)
    length_mix: tuple = field(repr=False, default=())
    config: SimConfig = field(default_factory=SimConfig)
    ttft_slo_ms: float = 500.0  # the InferenceGym task's p99 TTFT SLO (its headline tenant)
    # (names, phase of every second) of an episode's traffic for an rng seeded like workload()'s
    phases: Callable[["TaskSpec", np.random.Generator], tuple[tuple[str, ...], np.ndarray]] | None = field(
        repr=False, default=None)

    @property
    def horizon_s(self) -> float:
        return self.window_s * self.episode_windows

    def workload(self, seed) -> Workload:
        """The episode's traffic for `seed` (int or numpy Generator)."""
        return self.traffic(self, _rng(seed))

    def phase_labels(self, seed) -> tuple[tuple[str, ...], np.ndarray]:
        """The phases of the episode drawn for `seed`: (names, int64[seconds] phase index of every
        second of the horizon). Tasks without phases have one, "all"."""
        if self.phases is None:
            return ("all",), np.zeros(int(math.ceil(self.horizon_s)), dtype=np.int64)
        return self.phases(self, _rng(seed))

    def measure_capacity(self, seed: int = 0) -> float:
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


def bursty_rate(task: TaskSpec, rng) -> np.ndarray:
    """Per-second total rate (req/s): quiet ~30 % of capacity with a slow wobble, 3-4 storms of
    10-30 s at 2-3x capacity."""
    cap = task.capacity_rps
    t = np.arange(int(math.ceil(task.horizon_s)), dtype=np.float64)
    quiet = 0.3 * cap * np.exp(rng.normal(0, 0.25) + 0.25 * np.sin(2 * np.pi * t / rng.uniform(150, 300)
                                                                      + rng.uniform(0, 2 * np.pi)))
    return _storms(rng, t, (3, 4), (10.0, 30.0), (2.0 * cap, 3.0 * cap), quiet)


def _bursty(task: TaskSpec, rng) -> Workload:
    total = bursty_rate(task, rng)
    conv, api = task.tenants
    return streams_workload([TenantStream(conv, BURSTY_CONV_SHARE * total, 0.529, BurstGPTLengths(chat=True)),
                             TenantStream(api, (1 - BURSTY_CONV_SHARE) * total, 1.416, BurstGPTLengths(chat=False))],
                            1.0, rng, name=task.id)


def _bursty_phases(task: TaskSpec, rng) -> tuple[tuple[str, ...], np.ndarray]:
    """quiet, or storm where the offered rate exceeds capacity."""
    return ("quiet", "storm"), (bursty_rate(task, rng) > task.capacity_rps).astype(np.int64)


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


def _adversarial_phases(task: TaskSpec, rng) -> tuple[tuple[str, ...], np.ndarray]:
    return PHASES, day_phase(adversarial_rates(task, rng)[-1])


def _adversarial(task: TaskSpec, rng) -> Workload:
    inter, std, summaries, documents, _ = adversarial_rates(task, rng)
    parts = []
    for ti, rate, shape, lengths in ((0, inter, 0.8, ADV_LENGTHS[0]), (1, std, 1.0, ADV_LENGTHS[1]),
                                     (2, summaries, 1.4, ADV_LENGTHS[2]), (2, documents, 1.4, ADV_DOCUMENTS)):
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
    return _assemble(parts, task.tenants, task.id)


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
        window_s=5.0, episode_windows=200, tenants=(STATIC_TENANT,), capacity_rps=6.72, traffic=_static,
        length_mix=((SHAREGPT_LENGTHS, 1.0),), ttft_slo_ms=500.0),
    "bursty_workload": TaskSpec(
        "bursty_workload", "BurstGPT-shaped traffic: quiet phases and storms of 2-3x capacity, conversation "
        "and API tenants, long-tailed lengths.", window_s=5.0, episode_windows=120, tenants=BURSTY_TENANTS,
        capacity_rps=7.65, traffic=_bursty, phases=_bursty_phases,
        length_mix=((BurstGPTLengths(chat=True), BURSTY_CONV_SHARE), (BurstGPTLengths(chat=False), 1 - BURSTY_CONV_SHARE)),
        ttft_slo_ms=300.0),
    "adversarial_multitenant": TaskSpec(
        "adversarial_multitenant", "Interactive, standard and batch tenants; sinusoidal load from 20 % to 130 % "
        "of capacity with storms on top and unannounced 16k-32k-token prompts near the peaks.",
        window_s=6.0, episode_windows=200, tenants=ADV_TENANTS, capacity_rps=5.70, traffic=_adversarial,
        phases=_adversarial_phases,
        length_mix=tuple(zip(ADV_LENGTHS, ADV_SHARES)), ttft_slo_ms=200.0),
}
ALIASES = {"static_uniform": "static_workload", "bursty_sharegpt": "bursty_workload"}
TASK_IDS = tuple(TASKS) + ("trace",)


def get_task(task_id: str, **overrides) -> TaskSpec:
    """A task by id or alias; `overrides` replace TaskSpec fields (e.g. config=SimConfig(gpu="h100-80gb"),
    episode_windows=50). For ``trace`` see :func:`trace_task`."""
    if task_id == "trace":
        return trace_task(**overrides)
    key = ALIASES.get(task_id, task_id)
    if key not in TASKS:
        raise ValueError(f"task={task_id!r} is unknown; allowed: {', '.join(TASK_IDS)} "
                         f"(aliases: {', '.join(ALIASES)})")
    return replace(TASKS[key], **overrides) if overrides else TASKS[key]


def trace_task(path, format: str = "auto", window_s: float = 5.0, episode_windows: int | None = None,
               config: SimConfig | None = None, random_start: bool = False, **loader_options) -> TaskSpec:
    """Replay a trace file as a task. `format`: "auto" (from the header), "burstgpt" or "azure".
    Each seed spreads BurstGPT's tied timestamps differently and, with `random_start`, starts the
    episode at a different point of the trace."""
    from .traces import TRACE_FORMATS, detect_format, load_azure, load_burstgpt
    loaders = {"burstgpt": load_burstgpt, "azure": load_azure}
    if format not in ("auto", *TRACE_FORMATS):
        raise ValueError(f"format={format!r} is unknown; allowed: auto, {', '.join(TRACE_FORMATS)}")
    if format == "auto":
        format = detect_format(path)
    full, _ = loaders[format](path, **loader_options)
    span = float(full.arrival_s[-1]) if len(full) else 0.0
    windows = episode_windows if episode_windows is not None else max(1, int(math.ceil(span / window_s)))
    horizon = windows * window_s

    opts = {k: v for k, v in loader_options.items() if k not in ("start_s", "duration_s", "seed")}
    base = float(loader_options.get("start_s", 0.0))
    speedup = float(loader_options.get("speedup", 1.0))

    def traffic(task: TaskSpec, rng) -> Workload:
        start = rng.uniform(0.0, max(0.0, span - horizon)) if random_start else 0.0
        # start and horizon are replay seconds; the loader's window is in trace seconds
        w, _ = loaders[format](path, start_s=base + start * speedup, duration_s=horizon * speedup, seed=rng, **opts)
        return w

    return TaskSpec("trace", f"Replay of {path} ({format})", window_s=window_s, episode_windows=windows,
                    tenants=full.tenants, capacity_rps=float("nan"), traffic=traffic,
                    config=config if config is not None else SimConfig())
