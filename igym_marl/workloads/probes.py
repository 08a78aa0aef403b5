"""Measurements that show the control problem is real (docs/tasks.md).

* :data:`TRADEOFFS`: for every knob, a phase where raising it helps and a phase where it hurts,
  each a small controlled experiment (steady traffic, one knob changed, the rest at vLLM's
  default), and for the KV budget a second phase where raising it helps: conversations whose
  cached prefixes a small pool evicts (with its control, the same traffic without block keys,
  where the budget buys almost nothing). :func:`measure_tradeoffs` runs them; the tests assert
  each direction.
* :func:`coordinate_search`: maximise a function over a grid one parameter at a time (the
  heuristic's tuning uses it; the global best constant is searched by igym_marl.agents.analysis.tuning).

Seeds: episodes for training/tuning use seeds in ``TRAIN_SEEDS``; evaluation uses
``EVAL_SEEDS``, disjoint by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from ..sim.profiles import get_tier
from ..sim.simulator import Simulator
from ..sim.types import Knobs, SimConfig, Tenant, Workload
from .generators import SHAREGPT_LENGTHS, _assemble, poisson_workload
from .sessions import SessionModel, session_workload
from .tasks import EVAL_SEEDS, TASKS, TRAIN_SEEDS, VLLM_DEFAULT  # noqa: F401 (seeds re-exported)


CAPACITY_RPS = TASKS["static_workload"].capacity_rps  # ShareGPT-like lengths, SimConfig() (Llama-3.1-8B, A100)
STANDARD = Tenant("standard", ttft_slo_ms=1000.0, tpot_slo_ms=100.0, spec_acceptance=0.6)
# A tight TPOT (30 ms): at 256 sequences a decode step of today's engine takes about 40 ms
TIGHT = Tenant("interactive", ttft_slo_ms=200.0, tpot_slo_ms=30.0, spec_acceptance=0.6)
TIGHT_HI = Tenant("interactive", ttft_slo_ms=300.0, tpot_slo_ms=30.0, priority=1, spec_acceptance=0.6)
INTERACTIVE_HI = Tenant("interactive", ttft_slo_ms=300.0, tpot_slo_ms=100.0, priority=1, spec_acceptance=0.6)
CHAT = Tenant("chat", ttft_slo_ms=300.0, tpot_slo_ms=100.0, spec_acceptance=0.6)
# Chat behind many applications: 64 system prompts of 1,000-3,000 tokens (Zipf 0.5), 3 turns on
# average 30 s apart, ShareGPT-like messages: a cache working set larger than a 20 % pool holds.
CHAT_APPS = SessionModel(system_prompts=64, system_prompt_tokens=(1000, 3000), mean_turns=3.0, think_s=(30.0, 0.93),
                         first=SHAREGPT_LENGTHS, followup=SHAREGPT_LENGTHS, popularity=0.5)
BATCH_LO = Tenant("batch", ttft_slo_ms=10000.0, tpot_slo_ms=300.0, priority=0, spec_acceptance=0.6)


# ---------------------------------------------------------------------------------- phases
def _steady(load: float, tenants=(STANDARD,), lengths=SHAREGPT_LENGTHS):
    def make(seed, seconds):
        return poisson_workload(load * CAPACITY_RPS, seconds, seed, lengths=lengths, tenants=tenants)
    return make


def _with_long(load: float, n: int, lo: int, hi: int, out=(100, 500)):
    """Steady ShareGPT-like traffic plus `n` prompts of lo..hi tokens at random times."""
    def make(seed, seconds):
        w = poisson_workload(load * CAPACITY_RPS, seconds, seed, tenants=(STANDARD,))
        rng = np.random.default_rng(seed + 7919)
        t = np.sort(rng.uniform(0, seconds, n))
        extra = (t, rng.integers(lo, hi + 1, n), rng.integers(out[0], out[1] + 1, n), np.zeros(n, np.int64))
        return _assemble([(w.arrival_s, w.prompt_tokens, w.output_tokens, w.tenant), extra], (STANDARD,), "long")
    return make


def _chat(load: float, keyed: bool = True):
    """CHAT_APPS conversations at `load` x CAPACITY_RPS requests/s; without `keyed`, the same
    requests without their block keys (nothing is found cached)."""
    def make(seed, seconds):
        w = session_workload(CHAT_APPS, load * CAPACITY_RPS, seconds, seed, tenant=CHAT, name="chat")
        return w if keyed else Workload(w.arrival_s, w.prompt_tokens, w.output_tokens, w.tenant, w.tenants, "chat")
    return make


@dataclass(frozen=True)
class Phase:
    name: str
    workload: Callable[[int, float], Workload]
    low: Knobs  # the knob at its lower setting
    high: Knobs  # raised
    metric: str  # what is compared (see run_phase)
    better: str  # "higher" or "lower"
    expect: str  # "helps" or "hurts": what raising the knob does to the metric


@dataclass(frozen=True)
class TradeOff:
    knob: str
    helps: Phase
    hurts: Phase
    also: tuple = ()  # more phases (Phase), each with its own expectation

    @property
    def phases(self) -> tuple:
        return (self.helps, self.hurts) + tuple(self.also)


def _k(**kw) -> Knobs:
    return replace(VLLM_DEFAULT, **kw)


TRADEOFFS = (
    TradeOff("batch_cap",
             Phase("near capacity (0.9x), standard SLOs", _steady(0.9), _k(batch_cap=64), _k(batch_cap=256),
                   "goodput_rps", "higher", "helps"),
             Phase("storm (2.5x), a tight TPOT SLO (30 ms)", _steady(2.5, (TIGHT,)), _k(batch_cap=128),
                   _k(batch_cap=256), "goodput_rps", "higher", "hurts")),
    TradeOff("kv_budget_fraction",
             Phase("0.5x load with six 16k-32k-token prompts", _with_long(0.5, 6, 16384, 32768),
                   _k(kv_budget_fraction=0.1), _k(kv_budget_fraction=0.5), "goodput_rps", "higher", "helps"),
             Phase("overload (1.2x), interactive (TPOT 30 ms) + batch tenants, priority on: interactive goodput (a "
                   "small pool keeps the batch small and preempts batch work)", _steady(1.2, (TIGHT_HI, BATCH_LO)),
                   _k(kv_budget_fraction=0.1, priority_routing=True), _k(kv_budget_fraction=0.9, priority_routing=True),
                   "tenant0_goodput_rps", "higher", "hurts"),
             also=(Phase("conversations behind 64 system prompts (0.2x): TTFT attainment (a small pool evicts the "
                         "cached prefixes)", _chat(0.2), _k(kv_budget_fraction=0.2), _k(kv_budget_fraction=0.9),
                         "tenant0_ttft_attainment", "higher", "helps"),
                   Phase("control: the same requests without block keys", _chat(0.2, keyed=False),
                         _k(kv_budget_fraction=0.2), _k(kv_budget_fraction=0.9), "tenant0_ttft_attainment", "higher",
                         "helps"))),
    TradeOff("speculation_depth",
             Phase("low load (0.05x)", _steady(0.05), _k(speculation_depth=0), _k(speculation_depth=1),
                   "tpot_p50_ms", "lower", "helps"),
             Phase("high load (0.9x)", _steady(0.9), _k(speculation_depth=0), _k(speculation_depth=2),
                   "goodput_rps", "higher", "hurts")),
    TradeOff("quantization_tier",  # raising = FP16 -> INT4 (fewer bits)
             Phase("low load (0.3x): speed", _steady(0.3), _k(quantization_tier="FP16"),
                   _k(quantization_tier="INT4"), "tpot_p99_ms", "lower", "helps"),
             Phase("overload (1.5x): quality-weighted goodput", _steady(1.5), _k(quantization_tier="FP16"),
                   _k(quantization_tier="INT4"), "quality_goodput_rps", "higher", "hurts")),
    TradeOff("prefill_decode_split",  # raising = off -> on (chunked prefill)
             Phase("0.3x load with 6k-8k-token prompts: decode smoothness", _with_long(0.3, 30, 6000, 8000, (50, 200)),
                   _k(prefill_decode_split=False), _k(prefill_decode_split=True), "tpot_p99_ms", "lower", "helps"),
             Phase("same traffic: first token of the long prompts", _with_long(0.3, 30, 6000, 8000, (50, 200)),
                   _k(prefill_decode_split=False), _k(prefill_decode_split=True), "long_prompt_ttft_p50_ms", "lower",
                   "hurts")),
    TradeOff("priority_routing",  # raising = off -> on
             Phase("overload (1.2x), interactive + batch tenants: interactive goodput",
                   _steady(1.2, (INTERACTIVE_HI, BATCH_LO)), _k(batch_cap=64, priority_routing=False),
                   _k(batch_cap=64, priority_routing=True), "tenant0_goodput_rps", "higher", "helps"),
             Phase("same traffic: batch tenant goodput (starvation)", _steady(1.2, (INTERACTIVE_HI, BATCH_LO)),
                   _k(batch_cap=64, priority_routing=False), _k(batch_cap=64, priority_routing=True),
                   "tenant1_goodput_rps", "higher", "hurts")),
)


def run_phase(phase: Phase, knobs: Knobs, seed: int, seconds: float = 300.0, drain_s: float = 120.0) -> dict:
    """Serve the phase's traffic for `seconds` (6-s windows) plus `drain_s`; return its metrics."""
    w = phase.workload(seed, seconds)
    sim = Simulator(SimConfig())
    sim.reset(w, seed=seed, knobs=knobs)
    mem = []
    for _ in range(int(seconds / 6.0)):
        mem.append(sim.advance(6.0, knobs).gpu_memory_used_gb)
    sim.advance(drain_s, knobs)
    e = sim.episode_metrics()
    req = sim.requests()
    ttft_long = 1e3 * req.ttft_s[req.prompt_tokens >= 6000]
    good = e.slo_met / seconds
    t0 = req.tenant == 0
    first_ok = np.nan_to_num(req.ttft_s[t0], nan=np.inf) <= w.tenants[0].ttft_slo_ms / 1e3
    return {
        "goodput_rps": good, "tpot_p50_ms": e.latency.tpot_p50_ms, "tpot_p99_ms": e.latency.tpot_p99_ms,
        "quality_goodput_rps": good * get_tier(knobs.quantization_tier).quality,
        "gpu_memory_gb": float(np.mean(mem)),
        "gpu_memory_gb_per_goodput_rps": float(np.mean(mem)) / good if good else float("inf"),
        "long_prompt_ttft_p50_ms": float(np.nanmedian(ttft_long)) if ttft_long.size else float("nan"),
        "tenant0_goodput_rps": e.tenants[0].slo_met / seconds,
        "tenant0_ttft_attainment": float(first_ok.mean()) if first_ok.size else float("nan"),
        "prefix_hit_rate": e.prefix_hit_rate,
        "tenant1_goodput_rps": e.tenants[1].slo_met / seconds if len(e.tenants) > 1 else float("nan"),
    }


def measure_tradeoffs(seeds=(0, 1, 2), seconds: float = 300.0) -> list[dict]:
    """One row per (knob, phase): the metric at the low and high setting (mean over seeds) and
    whether raising the knob helped."""
    rows = []
    for tr in TRADEOFFS:
        for phase in tr.phases:
            lo = float(np.mean([run_phase(phase, phase.low, s, seconds)[phase.metric] for s in seeds]))
            hi = float(np.mean([run_phase(phase, phase.high, s, seconds)[phase.metric] for s in seeds]))
            improved = hi > lo if phase.better == "higher" else hi < lo
            rows.append({"knob": tr.knob, "phase": phase.name, "metric": phase.metric, "better": phase.better,
                         "low_setting": getattr(phase.low, tr.knob), "high_setting": getattr(phase.high, tr.knob),
                         "low": lo, "high": hi, "raising": "helps" if improved else "hurts",
                         "expected": phase.expect})
    return rows


# ---------------------------------------------------------------------------------- search
def coordinate_search(start: dict, grid: dict, evaluate: Callable[[dict], float], passes: int = 2):
    """Maximise `evaluate` over the product of `grid`'s levels by coordinate search: from `start`,
    try every level of one parameter with the others fixed, keep the best (ties keep the current
    value), move to the next parameter; `passes` rounds. Returns (best, value, log of (point, value))."""
    cache: dict = {}
    log = []

    def score(point: dict) -> float:
        key = tuple(sorted(point.items()))
        if key not in cache:
            cache[key] = float(evaluate(point))
            log.append((dict(point), cache[key]))
        return cache[key]

    best = dict(start)
    for _ in range(passes):
        for name, levels in grid.items():
            cands = [{**best, name: v} for v in levels]
            best = max(cands, key=lambda c: (score(c), c == best))
    return best, score(best), log
