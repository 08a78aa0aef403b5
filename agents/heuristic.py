"""A tuned heuristic: per-component rules a serving engineer would write.

* **batch_scheduler** (Orca's trade-off between batching and per-token latency): raise the batch
  cap one level (x2) while requests wait longer than ``drain_wait`` x the tightest TTFT SLO and
  decoding keeps its TPOT headroom; lower it one level when the p99 TPOT of a tenant exceeds
  ``tpot_margin`` x its SLO and nothing is waiting that long; never below ``batch_min``.
  Chunked prefill stays on (smooth decoding; Sarathi-Serve, Agrawal et al., OSDI 2024).
* **kv_manager** (vLLM's block manager): grow the KV budget by two levels on any preemption or
  rejection, or when the largest waiting prompt would not fit in the free share of the pool;
  shrink it by one level after ``kv_patience`` windows below ``kv_low`` occupancy (the pool costs
  memory), never below ``kv_min``. The quantization tier is fixed (``tier``): switching pauses
  the engine.
* **spec_controller**: speculate ``spec_depth`` tokens only while the batch is small
  (<= ``spec_max_batch`` running, nothing queued), where it pays (docs/tasks.md).
* **tenant_router**: turn priority routing on when the highest-priority tenant's oldest request
  has waited ``prio_on`` x its TTFT SLO or its window attainment fell below ``prio_att``; off
  again after ``prio_patience`` calm windows (priority starves the others).

The thresholds are tuned per task on training seeds by :func:`agents.tuning.tune_heuristic`
(a coordinate search over the small grid ``HEURISTIC_GRID``); the result is cached in
``agents/data/heuristic_params.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

from igym_marl.envs import SPECS
from igym_marl.envs.features import N_SHARED
from igym_marl.sim import Knobs

from .base import KnobPolicy, metrics_of

PARAMS_FILE = Path(__file__).parent / "data" / "heuristic_params.json"
BATCH_LEVELS = SPECS["batch_scheduler"].levels[0]
KV_LEVELS = SPECS["kv_manager"].levels[0]


@dataclass(frozen=True)
class HeuristicParams:
    batch_min: int = 32
    batch_start: int = 256
    drain_wait: float = 0.5
    tpot_margin: float = 1.0
    kv_min: float = 0.4
    kv_start: float = 0.9
    kv_low: float = 0.5
    kv_patience: int = 3
    tier: str = "FP16"
    spec_depth: int = 2
    spec_max_batch: int = 4
    prio_on: float = 0.5
    prio_att: float = 0.8
    prio_patience: int = 3

    def __post_init__(self):
        if self.batch_min not in BATCH_LEVELS or self.batch_start not in BATCH_LEVELS:
            raise ValueError(f"batch_min/batch_start must be batch levels {BATCH_LEVELS}")
        if round(self.kv_min, 1) not in KV_LEVELS or round(self.kv_start, 1) not in KV_LEVELS:
            raise ValueError(f"kv_min/kv_start must be KV levels {KV_LEVELS}")
        if self.tier not in SPECS["kv_manager"].levels[1]:
            raise ValueError(f"tier={self.tier!r}; allowed: {SPECS['kv_manager'].levels[1]}")
        if not 0 <= self.spec_depth <= 8:
            raise ValueError(f"spec_depth={self.spec_depth!r}; allowed: 0..8")

    @classmethod
    def from_dict(cls, d: dict) -> "HeuristicParams":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown heuristic parameter(s) {sorted(unknown)}; allowed: {sorted(names)}")
        return cls(**d)


def load_tuned(task_id: str) -> HeuristicParams:
    """The tuned parameters for a task; the defaults where none were tuned (e.g. `trace`)."""
    if PARAMS_FILE.exists():
        data = json.loads(PARAMS_FILE.read_text())
        if task_id in data.get("params", {}):
            return HeuristicParams.from_dict(data["params"][task_id])
    return HeuristicParams()


class HeuristicPolicy(KnobPolicy):
    name = "heuristic"

    def __init__(self, params: HeuristicParams | None = None):
        self.fixed_params = params

    def reset(self, task, seed):
        super().reset(task, seed)
        self.p = self.fixed_params if self.fixed_params is not None else load_tuned(task.id)
        self.b = BATCH_LEVELS.index(self.p.batch_start)
        self.k = KV_LEVELS.index(round(self.p.kv_start, 1))
        self.k_min = KV_LEVELS.index(round(self.p.kv_min, 1))
        self.b_min = BATCH_LEVELS.index(self.p.batch_min)
        self.low_windows = 0
        self.priority = False
        self.calm = 0
        self.min_ttft_ms = min(t.ttft_slo_ms for t in task.tenants)
        self.top = max(range(len(task.tenants)), key=lambda i: task.tenants[i].priority)
        self.multi = len({t.priority for t in task.tenants}) > 1
        self.spec = 0
        self._kv_obs = None

    def act(self, observations, infos, state=None):
        self._kv_obs = observations.get("kv_manager") if observations else None
        return super().act(observations, infos, state)

    def decide(self, infos) -> Knobs:
        m = metrics_of(infos)
        p = self.p
        if m is not None:
            self._batch(m, p)
            self._kv(m, p)
            self._spec(m, p)
            self._router(m, p)
        return Knobs(batch_cap=BATCH_LEVELS[self.b], kv_budget_fraction=KV_LEVELS[self.k],
                     speculation_depth=self.spec, quantization_tier=p.tier, prefill_decode_split=True,
                     priority_routing=self.priority)

    # ---------------------------------------------------------------- components
    def _batch(self, m, p):
        oldest = max(t.oldest_wait_ms for t in m.tenants)
        draining = m.queue_depth > 0 and oldest > p.drain_wait * self.min_ttft_ms
        slow = any(t.latency.tpot_p99_ms > p.tpot_margin * spec.tpot_slo_ms
                   for t, spec in zip(m.tenants, self.task.tenants) if t.finished)
        if draining and not slow:
            self.b = min(self.b + 1, len(BATCH_LEVELS) - 1)
        elif slow and not draining:
            self.b = max(self.b - 1, self.b_min)

    def _kv(self, m, p):
        largest = 0.0
        if self._kv_obs is not None:
            s = float(self._kv_obs[N_SHARED + 2])  # s(largest waiting prompt / KV capacity in tokens)
            largest = s / (1.0 - s) if s < 1.0 else float("inf")
        if m.preemptions or m.rejected or largest > 1.0 - m.kv_occupancy:
            self.k = min(self.k + 2, len(KV_LEVELS) - 1)
            self.low_windows = 0
        elif m.kv_occupancy_mean < p.kv_low:
            self.low_windows += 1
            if self.low_windows >= p.kv_patience:
                self.k = max(self.k - 1, self.k_min)
                self.low_windows = 0
        else:
            self.low_windows = 0

    def _spec(self, m, p):
        self.spec = p.spec_depth if (m.running <= p.spec_max_batch and m.queue_depth == 0) else 0

    def _router(self, m, p):
        if not self.multi:
            self.priority = False
            return
        t = m.tenants[self.top]
        slo = self.task.tenants[self.top].ttft_slo_ms
        decided = t.slo_met + t.slo_missed
        pressure = t.oldest_wait_ms > p.prio_on * slo or (decided and t.slo_met / decided < p.prio_att)
        if pressure:
            self.priority = True
            self.calm = 0
        elif self.priority:
            self.calm += 1
            if self.calm >= p.prio_patience:
                self.priority = False


__all__ = ["HeuristicPolicy", "HeuristicParams", "load_tuned", "PARAMS_FILE"]
