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


def tenant_offered(workload: Workload, horizon_s: float, value: str = "tokens") -> tuple[float, ...]:
    """The value each tenant offers over the horizon (the tenants sum to the offered value)."""
    live = workload.arrival_s < horizon_s
    per_tenant = np.bincount(workload.tenant[live], weights=request_values(workload, value)[live],
                             minlength=len(workload.tenants))
    return tuple(float(v) for v in per_tenant)


def tenant_shares(met: tuple, offered: tuple) -> list:
    """Each tenant's met value as a share of its own offered value (None if it offers none)."""
    return [m / off if off > 0 else None for m, off in zip(met, offered)]


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
    tenant_offered: tuple[float, ...] = ()  # offered value per tenant (sums to offered_value)
    tenant_met: tuple[float, ...] = ()  # met value per tenant so far (a tuple: copies of a keeper stay apart)

    @classmethod
    def for_episode(cls, workload: Workload, horizon_s: float, total_gpu_gb: float,
                    memory_cost: float = MEMORY_COST, value: str = "tokens") -> "ScoreKeeper":
        if value not in VALUE_BASES:
            raise ValueError(f"value={value!r} is unknown; allowed: {', '.join(VALUE_BASES)}")
        keeper = cls(tuple(t.weight for t in workload.tenants), total_gpu_gb, memory_cost, value)
        keeper.tenant_offered = tenant_offered(workload, horizon_s, value)
        keeper.tenant_met = (0.0,) * len(workload.tenants)
        keeper.offered_value = float(request_values(workload, value)[workload.arrival_s < horizon_s].sum())
        return keeper

    def memory_factor(self, m: WindowMetrics) -> float:
        return 1.0 - self.memory_cost * m.gpu_memory_used_gb / self.total_gpu_gb

    def window(self, m: WindowMetrics) -> float:
        """The score earned in this window (unscaled)."""
        if self.value == "requests":
            per_tenant = [w * t.slo_met for w, t in zip(self.weights, m.tenants)]
        else:
            per_tenant = [w * (t.goodput_prompt_tokens + OUTPUT_PRICE * t.goodput_tokens)
                          for w, t in zip(self.weights, m.tenants)]
        self.tenant_met = tuple(a + b for a, b in zip(self.tenant_met, per_tenant))
        met_v = sum(per_tenant)
        q = m.quality  # the tier in force in this window, as the simulator applied it
        mf = self.memory_factor(m)
        self.met_value += met_v
        self.quality_sum += met_v * q
        self.memory_sum += met_v * mf
        r = met_v * q * mf / self.offered_value if self.offered_value > 0 else 0.0
        self.score += r
        return r

    def tenant_shares(self) -> list:
        """Each tenant's met value so far as a share of its own offered value (None if it offers none)."""
        return tenant_shares(self.tenant_met, self.tenant_offered)

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
    """Cluster mode's score: the share of the offered value served within SLO (as in
    serving_v0, with the quality factor), minus the fleet's GPU cost in the same unit:

        score = sum over requests r that met their SLOs of v(r) x q(r) / offered value
                - cost_weight x (GPU cost billed over the episode / GPU cost of running every
                                 replica for the whole episode)

    billed: replicas starting, active or draining. cost_weight is what running the whole fleet
    for the whole episode costs, as a share of the value offered (0.5 by default, docs/cluster.md):
    serving everything within SLO on the whole fleet scores 0.5; on half its GPU-hours, 0.75; a
    fleet that serves nothing scores down to -cost_weight. GPU time is charged by the hour
    whatever it serves, as an operator pays for it: a per-request factor (like serving_v0's
    memory term) would charge idle replicas only through the few requests served beside them.
    The window reward is the window's served value minus its GPU cost; rewards sum to the score."""

    weights: tuple[float, ...]
    windows: int
    cost_weight: float = CLUSTER_COST_WEIGHT
    offered_value: float = 0.0
    score: float = 0.0
    met_value: float = 0.0
    quality_sum: float = 0.0
    billed_usd: float = 0.0
    fleet_usd: float = 0.0
    tenant_offered: tuple[float, ...] = ()  # offered value per tenant (sums to offered_value)
    tenant_met: tuple[float, ...] = ()  # met value per tenant so far, over the fleet

    @classmethod
    def for_episode(cls, workload: Workload, horizon_s: float, windows: int,
                    cost_weight: float = CLUSTER_COST_WEIGHT) -> "ClusterScoreKeeper":
        keeper = cls(tuple(t.weight for t in workload.tenants), windows, cost_weight)
        keeper.offered_value = float(request_values(workload)[workload.arrival_s < horizon_s].sum())
        keeper.tenant_offered = tenant_offered(workload, horizon_s)
        keeper.tenant_met = (0.0,) * len(workload.tenants)
        return keeper

    def tenant_shares(self) -> list:
        """Each tenant's met value so far, over the fleet, as a share of its own offered value
        (None if it offers none)."""
        return tenant_shares(self.tenant_met, self.tenant_offered)

    def window(self, cw) -> float:
        """The score earned in a ClusterWindow (unscaled): served value minus GPU cost."""
        self.billed_usd += cw.billed_usd
        self.fleet_usd += cw.fleet_usd
        earned = 0.0
        for m in cw.replicas:
            per_tenant = [w * (t.goodput_prompt_tokens + OUTPUT_PRICE * t.goodput_tokens)
                          for w, t in zip(self.weights, m.tenants)]
            self.tenant_met = tuple(a + b for a, b in zip(self.tenant_met, per_tenant))
            met_v = sum(per_tenant)
            self.met_value += met_v
            self.quality_sum += met_v * m.quality
            earned += met_v * m.quality
        r = earned / self.offered_value if self.offered_value > 0 else 0.0
        if cw.fleet_usd > 0:
            r -= self.cost_weight * cw.billed_usd / (cw.fleet_usd * self.windows)
        self.score += r
        return r

    def components(self) -> dict:
        """score = goodput x quality - cost, cost = cost_weight x gpu_share (the share of the
        fleet's GPU-hours billed, over the windows played)."""
        good = self.met_value / self.offered_value if self.offered_value else 0.0
        share = self.billed_usd / self.fleet_usd if self.fleet_usd else 0.0
        return {"score": self.score, "goodput": good,
                "quality": self.quality_sum / self.met_value if self.met_value else 1.0,
                "gpu_share": share, "cost": self.cost_weight * share, "billed_usd": self.billed_usd}
