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
from .generators import (API, CONVERSATION, DEFAULT_TENANT, SHAREGPT_LENGTHS, BurstGPTLengths, LengthModel, TenantStream, _assemble, _rng,
                         gamma_arrivals, streams_workload)

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

    @property
    def horizon_s(self) -> float:
        return self.window_s * self.episode_windows

    def workload(self, seed) -> Workload:
        """The episode's traffic for `seed` (int or numpy Generator)."""
        return self.traffic(self, _rng(seed))

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


def _bursty(task: TaskSpec, rng) -> Workload:
    cap = task.capacity_rps
    t = np.arange(int(math.ceil(task.horizon_s)), dtype=np.float64)
    quiet = 0.3 * cap * np.exp(rng.normal(0, 0.25) + 0.25 * np.sin(2 * np.pi * t / rng.uniform(150, 300)
                                                                      + rng.uniform(0, 2 * np.pi)))
    total = _storms(rng, t, (3, 4), (10.0, 30.0), (2.0 * cap, 3.0 * cap), quiet)
    conv, api = task.tenants
    return streams_workload([TenantStream(conv, BURSTY_CONV_SHARE * total, 0.529, BurstGPTLengths(chat=True)),
                             TenantStream(api, (1 - BURSTY_CONV_SHARE) * total, 1.416, BurstGPTLengths(chat=False))],
                            1.0, rng, name=task.id)


ADV_SHARES = (0.4, 0.35, 0.25)  # interactive, standard, batch
ADV_LENGTHS = (LengthModel(161.31, 1.0, 337.99, 0.9),  # interactive chat: ShareGPT-like
               BurstGPTLengths(chat=False),  # standard API traffic: BurstGPT-like long tail
               LengthModel(2000.0, 0.6, 300.0, 0.5, prompt_max=8192, output_max=1024))  # batch: summarization


def adversarial_rate(task: TaskSpec, rng) -> np.ndarray:
    """Per-second total rate: a sinusoid between 20 % and 130 % of capacity plus storms."""
    cap = task.capacity_rps
    t = np.arange(int(math.ceil(task.horizon_s)), dtype=np.float64)
    period = rng.uniform(300.0, 500.0)
    base = cap * (0.75 + 0.55 * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)))
    return _storms(rng, t, (2, 4), (10.0, 40.0), (1.5 * cap, 2.5 * cap), base)


def _adversarial(task: TaskSpec, rng) -> Workload:
    total = adversarial_rate(task, rng)
    streams = [TenantStream(ten, share * total, shape, lengths)
               for ten, share, shape, lengths in zip(task.tenants, ADV_SHARES, (0.8, 1.0, 1.4), ADV_LENGTHS)]
    w = streams_workload(streams, 1.0, rng, name=task.id)
    # unannounced mega-prompts: 16k-32k tokens, arrival times drawn with density ~ rate^2 (peaks)
    n_mega = int(rng.integers(4, 9))
    dens = total ** 2 / (total ** 2).sum()
    times = np.sort(rng.choice(total.shape[0], n_mega, p=dens) + rng.random(n_mega))
    mega = (times, rng.integers(16384, 32769, n_mega), rng.integers(100, 501, n_mega),
            rng.choice([1, 2], n_mega))
    parts = [(w.arrival_s, w.prompt_tokens, w.output_tokens, w.tenant), mega]
    return _assemble(parts, task.tenants, task.id)


# ---------------------------------------------------------------------------------- catalog
STATIC_TENANT = DEFAULT_TENANT
BURSTY_TENANTS = (CONVERSATION, API)
ADV_TENANTS = (Tenant("interactive", ttft_slo_ms=200.0, tpot_slo_ms=50.0, priority=2, spec_acceptance=0.6, weight=2.0),
               Tenant("standard", ttft_slo_ms=1000.0, tpot_slo_ms=100.0, priority=1, spec_acceptance=0.65, weight=1.0),
               Tenant("batch", ttft_slo_ms=10000.0, tpot_slo_ms=300.0, priority=0, spec_acceptance=0.75, weight=0.5))

TASKS: dict[str, TaskSpec] = {
    "static_workload": TaskSpec(
        "static_workload", "Steady Poisson traffic at 60 % of capacity, one tenant, ShareGPT-like lengths.",
        window_s=5.0, episode_windows=200, tenants=(STATIC_TENANT,), capacity_rps=6.72, traffic=_static,
        length_mix=((SHAREGPT_LENGTHS, 1.0),), ttft_slo_ms=500.0),
    "bursty_workload": TaskSpec(
        "bursty_workload", "BurstGPT-shaped traffic: quiet phases and storms of 2-3x capacity, conversation "
        "and API tenants, long-tailed lengths.", window_s=5.0, episode_windows=120, tenants=BURSTY_TENANTS,
        capacity_rps=7.65, traffic=_bursty,
        length_mix=((BurstGPTLengths(chat=True), BURSTY_CONV_SHARE), (BurstGPTLengths(chat=False), 1 - BURSTY_CONV_SHARE)),
        ttft_slo_ms=300.0),
    "adversarial_multitenant": TaskSpec(
        "adversarial_multitenant", "Interactive, standard and batch tenants; sinusoidal load from 20 % to 130 % "
        "of capacity with storms on top and unannounced 16k-32k-token prompts near the peaks.",
        window_s=6.0, episode_windows=200, tenants=ADV_TENANTS, capacity_rps=5.70, traffic=_adversarial,
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


def trace_task(path, format: str = "burstgpt", window_s: float = 5.0, episode_windows: int | None = None,
               config: SimConfig | None = None, random_start: bool = False, **loader_options) -> TaskSpec:
    """Replay a trace file as a task. Each seed spreads BurstGPT's tied timestamps differently and,
    with `random_start`, starts the episode at a different point of the trace."""
    from .traces import load_azure, load_burstgpt
    loaders = {"burstgpt": load_burstgpt, "azure": load_azure}
    if format not in loaders:
        raise ValueError(f"format={format!r} is unknown; allowed: {', '.join(loaders)}")
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
