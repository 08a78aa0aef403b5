"""The episode score and its per-window decomposition (the team reward).

The score is the share of the episode's offered value that was served within SLO:

    score = sum over requests r that met all their SLOs of  v(r) x q(r) x m(r)
            -------------------------------------------------------------------
                      sum over all requests offered in the episode of  v(r)

* v(r) = w(tenant) x (prompt tokens + 4 x output tokens): what the request is worth to the
  operator. LLM APIs charge per token, output tokens at about four times input tokens (the ratio
  of OpenAI's list prices for GPT-4o and GPT-4o-mini, and Google's for Gemini; Anthropic's is 5),
  and a tier multiplier ``Tenant.weight`` (adversarial: interactive 2 for a premium latency tier,
  standard 1, batch 0.5 as OpenAI's Batch API discounts by half). A request that breaks its SLA
  earns nothing. Counting requests instead (every request worth w) would value a 20-token chat
  reply like a 16k-token document summary: no operator is paid that way.
* q(r): the answer-quality factor of the quantization tier in force in the window where r
  finished (FP16 1.0, INT8 0.995, INT4 0.97; docs/simulator.md gives the sources);
* m(r) = 1 - memory_cost x (GPU memory reserved / GPU memory installed) in that window: weights,
  activation reserve and the KV pool at the current budget. **memory_cost is 0 by default**, so
  m = 1: a replica owns its GPUs, and memory it leaves unreserved earns an operator nothing (vLLM
  reserves its pool at start-up whatever the traffic). A positive memory_cost models a GPU
  shared with another workload that can use what the replica leaves free (docs/tasks.md).

A request that misses an SLO (late first token, slow decoding, rejected) or is never served earns
nothing but stays in the denominator, so serving nothing scores 0 and the score is at most 1. The
denominator is known at reset (the episode's traffic is drawn then), so the window reward
``r_t`` = the score earned by the requests that met their SLOs in window t, and the rewards of an
episode sum to its score. The env multiplies rewards by ``reward_scale`` (default 100: an
episode's return is its score in percent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..sim.metrics import WindowMetrics
from ..sim.types import Workload

MEMORY_COST = 0.0  # the default memory_cost (see the module docstring)
OUTPUT_PRICE = 4.0  # value of an output token, in input tokens
VALUE_BASES = ("tokens", "requests")  # v(r) = w x (prompt + 4 output), or v(r) = w


def request_values(workload: Workload, value: str = "tokens") -> np.ndarray:
    """v(r) of every request of a workload (see the module docstring), float64[n]."""
    w = np.array([t.weight for t in workload.tenants])
    if value == "requests":
        return w[workload.tenant].astype(np.float64)
    return w[workload.tenant] * (workload.prompt_tokens + OUTPUT_PRICE * workload.output_tokens)


@dataclass
class ScoreKeeper:
    """Accumulates an episode's score window by window."""

    weights: tuple[float, ...]
    total_gpu_gb: float
    memory_cost: float = MEMORY_COST
    value: str = "tokens"
    offered_value: float = 0.0
    score: float = 0.0
    met_value: float = 0.0  # sum of v over requests that met their SLOs
    quality_sum: float = 0.0  # sum of v x q over them
    memory_sum: float = 0.0  # sum of v x m over them

    @classmethod
    def for_episode(cls, workload: Workload, horizon_s: float, total_gpu_gb: float,
                    memory_cost: float = MEMORY_COST, value: str = "tokens") -> "ScoreKeeper":
        if value not in VALUE_BASES:
            raise ValueError(f"value={value!r} is unknown; allowed: {', '.join(VALUE_BASES)}")
        keeper = cls(tuple(t.weight for t in workload.tenants), total_gpu_gb, memory_cost, value)
        keeper.offered_value = float(request_values(workload, value)[workload.arrival_s < horizon_s].sum())
        return keeper

    def memory_factor(self, m: WindowMetrics) -> float:
        return 1.0 - self.memory_cost * m.gpu_memory_used_gb / self.total_gpu_gb

    def window(self, m: WindowMetrics) -> float:
        """The score earned in this window (unscaled)."""
        if self.value == "requests":
            met_v = sum(w * t.slo_met for w, t in zip(self.weights, m.tenants))
        else:
            met_v = sum(w * (t.goodput_prompt_tokens + OUTPUT_PRICE * t.goodput_tokens)
                        for w, t in zip(self.weights, m.tenants))
        q = m.quality  # the tier in force in this window, as the simulator applied it
        mf = self.memory_factor(m)
        self.met_value += met_v
        self.quality_sum += met_v * q
        self.memory_sum += met_v * mf
        r = met_v * q * mf / self.offered_value if self.offered_value > 0 else 0.0
        self.score += r
        return r

    def components(self) -> dict:
        """goodput: the share of offered value served within SLO; quality and memory: the
        value-weighted means of q and m over it. score = goodput x quality x memory."""
        good = self.met_value / self.offered_value if self.offered_value else 0.0
        return {"score": self.score, "goodput": good,
                "quality": self.quality_sum / self.met_value if self.met_value else 0.0,
                "memory": self.memory_sum / self.met_value if self.met_value else 0.0}


CLUSTER_COST_WEIGHT = 0.5  # cluster mode's default cost_weight (docs/cluster.md)


@dataclass
class ClusterScoreKeeper:
    """Cluster mode's score: the single-replica score with the memory term replaced by a GPU cost
    term. A request r that met its SLOs earns v(r) x q(r) x c(r), where

        c(r) = 1 - cost_weight x (GPU cost billed in the window where r finished
                                  / GPU cost of the whole fleet in that window)

    (billed: replicas starting, active or draining). Serving everything within SLO on the whole
    fleet all the time scores 1 - cost_weight; on half the fleet's GPU-hours, 1 - cost_weight / 2.
    The score stays the share of the offered value served, each unit discounted by what the fleet
    cost while it was served; rewards per window sum to it."""

    weights: tuple[float, ...]
    cost_weight: float = CLUSTER_COST_WEIGHT
    offered_value: float = 0.0
    score: float = 0.0
    met_value: float = 0.0
    quality_sum: float = 0.0
    cost_sum: float = 0.0  # sum of v x c over requests that met their SLOs
    billed_usd: float = 0.0
    fleet_usd: float = 0.0

    @classmethod
    def for_episode(cls, workload: Workload, horizon_s: float, cost_weight: float = CLUSTER_COST_WEIGHT):
        keeper = cls(tuple(t.weight for t in workload.tenants), cost_weight)
        keeper.offered_value = float(request_values(workload)[workload.arrival_s < horizon_s].sum())
        return keeper

    def window(self, cw) -> float:
        """The score earned in a ClusterWindow (unscaled)."""
        c = 1.0 - self.cost_weight * cw.billed_usd / cw.fleet_usd if cw.fleet_usd > 0 else 1.0
        self.billed_usd += cw.billed_usd
        self.fleet_usd += cw.fleet_usd
        earned = 0.0
        for m in cw.replicas:
            met_v = sum(w * (t.goodput_prompt_tokens + OUTPUT_PRICE * t.goodput_tokens)
                        for w, t in zip(self.weights, m.tenants))
            self.met_value += met_v
            self.quality_sum += met_v * m.quality
            self.cost_sum += met_v * c
            earned += met_v * m.quality * c
        r = earned / self.offered_value if self.offered_value > 0 else 0.0
        self.score += r
        return r

    def components(self) -> dict:
        """score = goodput x quality x cost (the value-weighted means of q and c); gpu_share: the
        fleet's GPU cost actually billed, as a share of running every replica all episode."""
        good = self.met_value / self.offered_value if self.offered_value else 0.0
        return {"score": self.score, "goodput": good,
                "quality": self.quality_sum / self.met_value if self.met_value else 1.0,
                "cost": self.cost_sum / self.met_value if self.met_value else 1.0,
                "gpu_share": self.billed_usd / self.fleet_usd if self.fleet_usd else 0.0,
                "billed_usd": self.billed_usd}
