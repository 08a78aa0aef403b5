"""The episode score and its per-window decomposition (the team reward).

    score = sum over requests r that met all their SLOs of  w(r) x q(r) x m(r)
            -------------------------------------------------------------------
                      sum over all requests offered in the episode of  w(r)

* w(r): the weight of r's tenant (``Tenant.weight``);
* q(r): the answer-quality factor of the quantization tier in force in the window where r
  finished (FP16 1.0, INT8 0.995, INT4 0.97; docs/simulator.md gives the sources);
* m(r) = 1 - MEMORY_COST x (GPU memory reserved / GPU memory installed) in that window: weights,
  activation reserve and the KV pool at the current budget; MEMORY_COST = 0.3.

A request that misses an SLO (late first token, slow decoding, rejected) or is never served earns
nothing but stays in the denominator, so serving nothing scores 0 and the score is at most
max(m) < 1. The denominator is known at reset (the episode's traffic is drawn then), so the
window reward ``r_t`` = the score earned by the requests that met their SLOs in window t, and
the rewards of an episode sum to its score. The env multiplies rewards by ``reward_scale``
(default 100: an episode's return is its score in percent).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..sim.metrics import WindowMetrics
from ..sim.profiles import get_tier
from ..sim.types import Workload

MEMORY_COST = 0.3


@dataclass
class ScoreKeeper:
    """Accumulates an episode's score window by window."""

    weights: tuple[float, ...]
    total_gpu_gb: float
    offered_weight: float = 0.0
    score: float = 0.0
    met_weight: float = 0.0  # sum of w over requests that met their SLOs
    quality_sum: float = 0.0  # sum of w x q over them
    memory_sum: float = 0.0  # sum of w x m over them

    @classmethod
    def for_episode(cls, workload: Workload, horizon_s: float, total_gpu_gb: float) -> "ScoreKeeper":
        w = tuple(t.weight for t in workload.tenants)
        keeper = cls(w, total_gpu_gb)
        inside = workload.arrival_s < horizon_s
        keeper.offered_weight = float(sum(w[t] for t in workload.tenant[inside]))
        return keeper

    def memory_factor(self, m: WindowMetrics) -> float:
        return 1.0 - MEMORY_COST * m.gpu_memory_used_gb / self.total_gpu_gb

    def window(self, m: WindowMetrics, tier: str) -> float:
        """The score earned in this window (unscaled)."""
        met_w = sum(w * t.slo_met for w, t in zip(self.weights, m.tenants))
        q = get_tier(tier).quality
        mf = self.memory_factor(m)
        self.met_weight += met_w
        self.quality_sum += met_w * q
        self.memory_sum += met_w * mf
        r = met_w * q * mf / self.offered_weight if self.offered_weight > 0 else 0.0
        self.score += r
        return r

    def components(self) -> dict:
        """goodput: weighted share of offered requests that met their SLOs; quality and memory: the
        weighted means of q and m over them. score = goodput x quality x memory."""
        good = self.met_weight / self.offered_weight if self.offered_weight else 0.0
        return {"score": self.score, "goodput": good,
                "quality": self.quality_sum / self.met_weight if self.met_weight else 0.0,
                "memory": self.memory_sum / self.met_weight if self.met_weight else 0.0}
