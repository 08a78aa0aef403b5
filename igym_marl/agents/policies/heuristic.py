"""A tuned heuristic: per-component rules a serving engineer would write.

Each rule can be switched down to a constant, so the heuristic can always play any constant
configuration (``HeuristicParams.playing(knobs)``); its tuning starts there, from the task's
global best constant, and only keeps changes that score better on training seeds.

* **tenant_router** and **pressure**: the engine is *under pressure* when the highest-priority
  tenant sends more than ``pressure_load`` x the task's capacity (req/s), or its oldest waiting
  request has waited ``pressure_wait`` x its TTFT SLO, or its SLO attainment in the window fell
  below ``pressure_att`` (inf, inf and 0 switch a trigger off); it is *calm* again after
  ``calm_windows`` windows without pressure. Priority routing is ``priority``: "on", "off", or
  "pressure" (on while under pressure).
* **kv_manager** (vLLM's block manager; the pool size decides who gets preempted): the KV budget
  is ``kv_pressure`` under pressure and ``kv_calm`` when calm. A small pool with priority routing
  makes the lowest-priority work the first to be preempted, so the premium tenant keeps its
  SLOs through a storm; a large pool serves long prompts and big batches when nobody needs
  protecting. On top, while the largest waiting prompt would not fit the free pool, the budget
  grows ``kv_grow`` levels (0: never). The quantization tier is fixed (``tier``): switching
  pauses the engine to reload the weights.
* **batch_scheduler** (Orca's trade-off between batching and per-token latency): raise the batch
  cap one level while requests wait longer than ``drain_wait`` x the tightest TTFT SLO and
  decoding keeps its TPOT headroom; lower it one level when a tenant's p99 TPOT exceeds
  ``tpot_margin`` x its SLO and nothing waits that long; always within
  [``batch_min``, ``batch_max``] (equal: a constant cap). Chunked prefill is ``split``.
* **spec_controller**: speculate ``spec_depth`` tokens while at most ``spec_max_batch`` requests
  run (512: always) and, unless ``spec_when_queued``, nothing waits.

``igym_marl.agents.analysis.tuning.tune_heuristic`` tunes the parameters per task over ``HEURISTIC_GRID`` on training
seeds; the result is cached in ``igym_marl/agents/data/heuristic_params.json`` (docs/baselines.md).
"""

from __future__ import annotations

from igym_marl.paths import TUNED_DIR, shipped_json

from dataclasses import dataclass, fields
from pathlib import Path

from igym_marl.envs import AGENT_KNOBS
from igym_marl.sim import Knobs, level_index, nearest_level
from igym_marl.workloads import VLLM_DEFAULT

from igym_marl.agents.policies.base import KnobPolicy, metrics_of

PARAMS_FILE = TUNED_DIR / "heuristic_params.json"
BATCH_LEVELS = AGENT_KNOBS["batch_scheduler"].levels[0]
KV_LEVELS = AGENT_KNOBS["kv_manager"].levels[0]
TIERS = AGENT_KNOBS["kv_manager"].levels[1]
PRIORITY_MODES = ("off", "on", "pressure")

INF = float("inf")
HEURISTIC_GRID = {
    "pressure_load": (0.2, 0.3, 0.4, 0.6, INF),
    "kv_pressure": (0.1, 0.2, 0.3),
    "kv_calm": (0.1, 0.3, 0.5, 0.7, 0.9),
    "kv_grow": (0, 2),
    "priority": PRIORITY_MODES,
    "pressure_wait": (0.25, 0.5, 1.0, INF),
    "pressure_att": (0.0, 0.5, 0.8, 0.95),
    "calm_windows": (1, 3, 6, 12),
    "batch_min": (16, 32, 64, 128, 256, 512),
    "batch_max": (64, 128, 256, 512),
    "drain_wait": (0.25, 0.5, 1.0),
    "tpot_margin": (0.8, 1.0, 1.2),
    "split": (False, True),
    "tier": TIERS,
    "spec_depth": (0, 1, 2),
    "spec_max_batch": (4, 16, 512),
}


@dataclass(frozen=True)
class HeuristicParams:
    kv_pressure: float = 0.1
    kv_calm: float = 0.5
    kv_grow: int = 0
    priority: str = "pressure"
    pressure_load: float = 0.3
    pressure_wait: float = float("inf")
    pressure_att: float = 0.0
    calm_windows: int = 3
    batch_min: int = 64
    batch_max: int = 512
    batch_start: int = 256
    drain_wait: float = 0.5
    tpot_margin: float = 1.0
    split: bool = True
    tier: str = "FP16"
    spec_depth: int = 0
    spec_max_batch: int = 4
    spec_when_queued: bool = False

    def __post_init__(self):
        for name in ("batch_min", "batch_max", "batch_start"):
            if getattr(self, name) not in BATCH_LEVELS:
                raise ValueError(f"{name}={getattr(self, name)!r} is not allowed; allowed: {BATCH_LEVELS}")
        if not self.batch_min <= self.batch_max:
            raise ValueError(f"batch_min={self.batch_min} > batch_max={self.batch_max}")
        for name in ("kv_pressure", "kv_calm"):
            if level_index("kv_budget_fraction", getattr(self, name)) is None:
                raise ValueError(f"{name}={getattr(self, name)!r} is not allowed; allowed: {KV_LEVELS}")
        if self.tier not in TIERS:
            raise ValueError(f"tier={self.tier!r} is not allowed; allowed: {TIERS}")
        if self.priority not in PRIORITY_MODES:
            raise ValueError(f"priority={self.priority!r} is not allowed; allowed: {PRIORITY_MODES}")
        if self.spec_depth not in AGENT_KNOBS["spec_controller"].levels[0]:
            raise ValueError(f"spec_depth={self.spec_depth!r} is not allowed; allowed: 0..8")
        if self.kv_grow not in range(0, len(KV_LEVELS)):
            raise ValueError(f"kv_grow={self.kv_grow!r} is not allowed; allowed: 0..{len(KV_LEVELS) - 1}")

    @classmethod
    def from_dict(cls, d: dict) -> "HeuristicParams":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown heuristic parameter(s) {sorted(unknown)}; allowed: {sorted(names)}")
        return cls(**d)

    @classmethod
    def playing(cls, k: Knobs) -> "HeuristicParams":
        """The parameters with which the heuristic plays the constant `k` every window."""
        kv = round(k.kv_budget_fraction, 1)
        return cls(kv_pressure=kv, kv_calm=kv, kv_grow=0, priority="on" if k.priority_routing else "off",
                   pressure_load=float("inf"), pressure_wait=float("inf"), pressure_att=0.0,
                   batch_min=k.batch_cap, batch_max=k.batch_cap, batch_start=k.batch_cap,
                   split=k.prefill_decode_split, tier=k.quantization_tier, spec_depth=k.speculation_depth,
                   spec_max_batch=512, spec_when_queued=True)


# For a task nobody tuned (a trace) the heuristic plays vLLM's default configuration and says so
# (stats()["untuned"]): its rules are tuned per task, and rules tuned for another task's traffic
# measured worse than the default on the Azure trace (docs/baselines.md).
UNTUNED = HeuristicParams.playing(VLLM_DEFAULT)


def load_tuned(task_id: str) -> HeuristicParams:
    """The tuned parameters for a task; UNTUNED where none were tuned (e.g. `trace`). The file ships
    with the package: if it is missing, that is an error naming it."""
    data = shipped_json(PARAMS_FILE, "igym-marl tune heuristic")
    if task_id in data.get("params", {}):
        return HeuristicParams.from_dict(data["params"][task_id])
    return UNTUNED


class HeuristicPolicy(KnobPolicy):
    name = "heuristic"

    def __init__(self, params: HeuristicParams | None = None):
        self.fixed_params = params
        self.untuned = False

    def reset(self, task, seed):
        super().reset(task, seed)
        p = self.p = self.fixed_params if self.fixed_params is not None else load_tuned(task.id)
        self.untuned = self.fixed_params is None and p is UNTUNED
        self.b = BATCH_LEVELS.index(min(max(p.batch_start, p.batch_min), p.batch_max))
        self.b_lo, self.b_hi = BATCH_LEVELS.index(p.batch_min), BATCH_LEVELS.index(p.batch_max)
        self.grown = 0  # KV levels added for waiting long prompts
        self.pressure = False
        self.calm = 0
        self.min_ttft_ms = min(t.ttft_slo_ms for t in task.tenants)
        cap = task.capacity_rps
        self.capacity = cap if cap == cap and cap > 0 else 1.0  # trace tasks have no measured capacity
        self.top = max(range(len(task.tenants)), key=lambda i: task.tenants[i].priority)
        self.draft_depth = p.spec_depth if p.spec_max_batch >= 512 and p.spec_when_queued else 0

    def stats(self) -> dict:
        return {"untuned": 1} if self.untuned else {}

    def decide(self, infos) -> Knobs:
        m = metrics_of(infos)
        p = self.p
        if m is not None:
            self._pressure(m, p)
            self._batch(m, p)
            self._kv(m, p)
            self._speculation(m, p)
        kv = p.kv_pressure if self.pressure else p.kv_calm
        kv_level = min(nearest_level("kv_budget_fraction", kv) + self.grown, len(KV_LEVELS) - 1)
        priority = p.priority == "on" or (p.priority == "pressure" and self.pressure)
        return Knobs(batch_cap=BATCH_LEVELS[self.b], kv_budget_fraction=KV_LEVELS[kv_level],
                     speculation_depth=self.draft_depth, quantization_tier=p.tier, prefill_decode_split=p.split,
                     priority_routing=priority)

    # ---------------------------------------------------------------- components
    def _pressure(self, m, p):
        t = m.tenants[self.top]
        slo = self.task.tenants[self.top].ttft_slo_ms
        decided = t.slo_met + t.slo_missed
        loaded = t.arrived / m.seconds > p.pressure_load * self.capacity
        if loaded or t.oldest_wait_ms > p.pressure_wait * slo or (decided and t.slo_met / decided < p.pressure_att):
            self.pressure, self.calm = True, 0
        elif self.pressure:
            self.calm += 1
            if self.calm >= p.calm_windows:
                self.pressure = False

    def _batch(self, m, p):
        oldest = max(t.oldest_wait_ms for t in m.tenants)
        draining = m.queue_depth > 0 and oldest > p.drain_wait * self.min_ttft_ms
        slow = any(t.latency.tpot_p99_ms > p.tpot_margin * tenant.tpot_slo_ms
                   for t, tenant in zip(m.tenants, self.task.tenants) if t.finished)
        if draining and not slow:
            self.b = min(self.b + 1, self.b_hi)
        elif slow and not draining:
            self.b = max(self.b - 1, self.b_lo)

    def _kv(self, m, p):
        """Grow while the largest waiting prompt does not fit the free pool (read from the infos'
        metrics: blocks used and capacity at the window's end), shrink back once nothing waits."""
        free_tokens = (m.kv_capacity_blocks - m.kv_blocks_used) * self.task.config.block_tokens
        if p.kv_grow and m.max_waiting_prompt_tokens > free_tokens:
            self.grown = min(self.grown + p.kv_grow, len(KV_LEVELS) - 1)
        elif m.queue_depth == 0:
            self.grown = 0

    def _speculation(self, m, p):
        small = m.running <= p.spec_max_batch
        self.draft_depth = p.spec_depth if small and (p.spec_when_queued or m.queue_depth == 0) else 0


__all__ = ["HeuristicPolicy", "HeuristicParams", "HEURISTIC_GRID", "UNTUNED", "load_tuned", "PARAMS_FILE"]
