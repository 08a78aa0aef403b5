"""Observation features: simulator metrics -> normalized vectors in [0, 1].

Positive quantities without a natural bound are squashed with s(x) = x / (1 + x) after dividing by
a reference scale (so s = 0.5 at the reference); latencies are divided by the tenant's SLO first,
so 0.5 means "at the SLO". Every feature is listed in :data:`SHARED`, :data:`TENANT` and
:data:`OWN` with its source, unit and transform; the env docstring prints these tables.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..sim.metrics import WindowMetrics
from .actions import AGENTS, level_indices

MAX_TENANTS = 3


def sq(x: float) -> float:
    """x / (1 + x) for x >= 0: 0 -> 0, 1 -> 0.5, large -> 1."""
    return x / (1.0 + x)


def _finite(x: float, default: float = 0.0) -> float:
    return default if x != x or math.isinf(x) else x


# (name, description) in vector order
SHARED = (
    ("progress", "window index / episode windows"),
    ("arrival_load", "s(arrival rate / task capacity), req/s over req/s"),
    ("queue", "s(waiting requests / 64)"),
    ("running", "running requests / 512"),
    ("kv_occupancy", "KV blocks used / capacity at the window's end"),
    ("memory", "GPU memory reserved / installed (weights + activations + KV pool)"),
    ("preemptions", "s(preemptions in the window / 4)"),
    ("throughput", "s(output tokens/s / 2,000)"),
    ("rejected", "s(requests rejected in the window)"),
    ("busy", "share of the window the engine was computing"),
)
TENANT = (
    ("present", "1 if this tenant slot is used by the task"),
    ("arrival_share", "the tenant's share of the window's arrivals"),
    ("queue", "s(the tenant's waiting requests / 32)"),
    ("ttft_p99", "s(p99 TTFT / TTFT SLO); without first tokens, the oldest wait stands in"),
    ("tpot_p99", "s(p99 TPOT / TPOT SLO); 0 without finished requests"),
    ("attainment", "SLO met / decided in the window; 0 if none decided"),
    ("decided", "1 if any of the tenant's requests was judged in the window"),
    ("oldest_wait", "s(age of the oldest waiting request / TTFT SLO)"),
)
LAST_ACTION = (
    ("batch_level", "batch_cap level / 9 (levels 1, 2, 4, ..., 512)"),
    ("split", "prefill_decode_split (0/1)"),
    ("kv_level", "kv_budget_fraction level / 9 (0.1 .. 1.0)"),
    ("tier", "quantization tier / 2 (FP16, INT8, INT4)"),
    ("spec_depth", "speculation_depth / 8"),
    ("priority", "priority_routing (0/1)"),
)
OWN = {
    "batch_scheduler": (
        ("mean_iteration", "s(mean iteration time / 50 ms)"),
        ("prefill_only_share", "prefill-only iterations / iterations"),
        ("max_iteration", "s(longest iteration / 100 ms)"),
        ("itl_p99", "s(p99 inter-token latency / tightest TPOT SLO)"),
        ("cap_use", "running / batch_cap"),
        ("prefill_rate", "s(prompt tokens/s / 10,000)"),
    ),
    "kv_manager": (
        ("kv_occupancy_mean", "time-averaged KV occupancy in the window"),
        ("pending_prompt", "s(prompt tokens waiting / KV capacity in tokens)"),
        ("largest_waiting_prompt", "s(largest waiting prompt / KV capacity in tokens)"),
        ("reloaded", "1 if a quantization switch paused the engine in the window"),
        ("weights", "weight memory / installed GPU memory"),
        ("kv_capacity", "s(KV capacity in tokens / 100,000)"),
    ),
    "spec_controller": (
        ("acceptance", "accepted / proposed draft tokens (0 when not speculating)"),
        ("speculating", "1 if drafts were proposed in the window"),
        ("batch", "s(running requests / 16)"),
        ("prompt_length", "s(mean prompt of the window's arrivals / 1,024 tokens)"),
        ("tpot_p50", "s(p50 TPOT / tightest TPOT SLO)"),
    ),
    "tenant_router": (
        ("top_queue", "s(queue of the highest-priority tenant / 32)"),
        ("top_wait", "s(its oldest wait / its TTFT SLO)"),
        ("top_attainment", "its SLO attainment in the window (0 if none decided)"),
        ("bottom_queue", "s(queue of the lowest-priority tenant / 32)"),
        ("bottom_wait", "s(its oldest wait / its TTFT SLO)"),
        ("bottom_attainment", "its SLO attainment in the window (0 if none decided)"),
    ),
}
N_SHARED = len(SHARED) + MAX_TENANTS * len(TENANT) + len(LAST_ACTION)
_EMPTY_TENANT = [1.0] + [0.0] * (len(TENANT) - 1)  # present, nothing observed yet
_N_OWN = sum(len(v) for v in OWN.values())
# positions (in the concatenated own parts) of the features defined as s(...) in OWN
_OWN_SQUASHED = tuple(i for i, (_, d) in enumerate(f for a in OWN for f in OWN[a]) if d.startswith("s("))
_UNUSED_TENANT = [0.0] * len(TENANT)
OBS_DIM = {a: N_SHARED + len(OWN[a]) for a in AGENTS}
STATE_DIM = N_SHARED + sum(len(OWN[a]) for a in AGENTS)


@lru_cache(maxsize=None)
def _last_action(batch: int, kv: int, spec: int, router: int) -> tuple:
    b, s = level_indices("batch_scheduler", batch)
    k, q = level_indices("kv_manager", kv)
    return (b / 9.0, float(s), k / 9.0, q / 2.0, spec / 8.0, float(router))


class FeatureBuilder:
    """Builds every agent's observation and the global state from one window's metrics."""

    def __init__(self, tenants, capacity_rps: float, total_gpu_gb: float, weights_gb_fn, block_tokens: int,
                 episode_windows: int):
        if len(tenants) > MAX_TENANTS:
            raise ValueError(f"the environment supports up to {MAX_TENANTS} tenants; the task has {len(tenants)}")
        self.tenants = tenants
        self.capacity = capacity_rps if capacity_rps == capacity_rps and capacity_rps > 0 else 1.0
        self.total_gpu_gb = total_gpu_gb
        self.weights_gb_fn = weights_gb_fn
        self.block_tokens = block_tokens
        self.episode_windows = episode_windows
        self.min_tpot_s = min(t.tpot_slo_ms for t in tenants) / 1e3
        prio = [t.priority for t in tenants]
        self.top = int(np.argmax(prio))
        self.bottom = int(np.argmin(prio))
        self.top_ttft_ms = tenants[self.top].ttft_slo_ms
        self.bottom_ttft_ms = tenants[self.bottom].ttft_slo_ms
        self.weights_frac = {q: min(1.0, weights_gb_fn(q) / total_gpu_gb) for q in ("FP16", "INT8", "INT4")}

    @staticmethod
    def last_action(actions: dict) -> list:
        return list(_last_action(actions["batch_scheduler"], actions["kv_manager"], actions["spec_controller"],
                                 actions["tenant_router"]))

    def _tenant_block(self, m: WindowMetrics | None) -> list:
        out = []
        n_arr = m.arrived if m is not None else 0
        for i, spec in enumerate(self.tenants):
            if m is None:
                out += _EMPTY_TENANT
                continue
            t = m.tenants[i]
            ttft = t.latency.ttft_p99_ms
            if ttft != ttft:
                ttft = t.oldest_wait_ms
            tpot = t.latency.tpot_p99_ms
            decided = t.slo_met + t.slo_missed
            x_q, x_ttft = t.queue_depth / 32.0, ttft / spec.ttft_slo_ms
            x_tpot = tpot / spec.tpot_slo_ms if tpot == tpot else 0.0
            x_old = t.oldest_wait_ms / spec.ttft_slo_ms
            out += [1.0, t.arrived / n_arr if n_arr else 0.0, x_q / (1.0 + x_q), x_ttft / (1.0 + x_ttft),
                    x_tpot / (1.0 + x_tpot), t.slo_met / decided if decided else 0.0, 1.0 if decided else 0.0,
                    x_old / (1.0 + x_old)]
        out += _UNUSED_TENANT * (MAX_TENANTS - len(self.tenants))
        return out

    def shared(self, m: WindowMetrics | None, window: int, actions: dict) -> list:
        if m is None:
            head = [window / self.episode_windows] + [0.0] * (len(SHARED) - 1)
        else:
            head = [window / self.episode_windows, sq(m.arrival_rate_rps / self.capacity), sq(m.queue_depth / 64.0),
                    m.running / 512.0, m.kv_occupancy, min(1.0, m.gpu_memory_used_gb / self.total_gpu_gb),
                    sq(m.preemptions / 4.0), sq(m.throughput_tps / 2000.0), sq(float(m.rejected)),
                    min(1.0, m.busy_fraction)]
        return head + self._tenant_block(m) + self.last_action(actions)

    def own(self, m: WindowMetrics | None, snap: tuple[int, int] | None, knobs) -> list:
        """The four own parts, concatenated in agent order."""
        if m is None:
            return [0.0] * _N_OWN
        cap_tokens = max(1, m.kv_capacity_blocks * self.block_tokens)
        iters = m.iterations
        mean_iter = m.busy_fraction * max(m.seconds, m.clock_s - m.t_start_s) / iters if iters else 0.0
        top, bot = m.tenants[self.top], m.tenants[self.bottom]
        d_top, d_bot = top.slo_met + top.slo_missed, bot.slo_met + bot.slo_missed
        lat = m.latency
        itl, tpot50 = lat.itl_p99_ms, lat.tpot_p50_ms
        acc, prompt = m.spec_acceptance_rate, m.mean_prompt_tokens
        raw = [
            # batch_scheduler
            mean_iter / 0.05, m.prefill_only_iterations / iters if iters else 0.0, m.max_iteration_ms / 100.0,
            itl / 1e3 / self.min_tpot_s if itl == itl else 0.0, min(1.0, m.running / knobs.batch_cap),
            m.prefill_tps / 10000.0,
            # kv_manager
            min(1.0, m.kv_occupancy_mean), snap[0] / cap_tokens, snap[1] / cap_tokens, 1.0 if m.reload_s > 0 else 0.0,
            self.weights_frac[knobs.quantization_tier], cap_tokens / 100000.0,
            # spec_controller
            acc if acc == acc else 0.0, 1.0 if m.spec_proposed_tokens else 0.0, m.running / 16.0,
            prompt / 1024.0 if prompt == prompt else 0.0, tpot50 / 1e3 / self.min_tpot_s if tpot50 == tpot50 else 0.0,
            # tenant_router
            top.queue_depth / 32.0, top.oldest_wait_ms / self.top_ttft_ms, top.slo_met / d_top if d_top else 0.0,
            bot.queue_depth / 32.0, bot.oldest_wait_ms / self.bottom_ttft_ms, bot.slo_met / d_bot if d_bot else 0.0,
        ]
        for i in _OWN_SQUASHED:
            raw[i] = raw[i] / (1.0 + raw[i])
        return raw

    def build(self, m, snap, window, actions, knobs):
        """-> ({agent: float32 observation}, float32 global state)."""
        state = np.array(self.shared(m, window, actions) + self.own(m, snap, knobs), dtype=np.float32)
        shared = state[:N_SHARED]
        obs = {a: np.concatenate((shared, state[sl])) for a, sl in _OWN_SLICES.items()}
        return obs, state


def _own_slices() -> dict:
    out, start = {}, N_SHARED
    for a in AGENTS:
        out[a] = slice(start, start + len(OWN[a]))
        start += len(OWN[a])
    return out


_OWN_SLICES = _own_slices()


def inferencegym_fields(m: WindowMetrics, window: int, cumulative_attainment: float, seconds: float,
                        usd_per_hour: float) -> dict:
    """The 15 InferenceGym observation fields, by their original names and units."""
    ttft50, ttft99 = m.latency.ttft_p50_ms, m.latency.ttft_p99_ms
    if ttft50 != ttft50:  # no first token in the window: the oldest wait is a lower bound (0 if none waits)
        oldest = max((t.oldest_wait_ms for t in m.tenants), default=0.0)
        ttft50 = ttft99 = oldest
    tokens = m.throughput_tps * seconds
    return {
        "queue_depth": float(m.queue_depth), "active_requests": float(m.running),
        "kv_cache_occupancy": float(m.kv_occupancy), "mean_prompt_length": _finite(m.mean_prompt_tokens),
        "p50_ttft_ms": float(ttft50), "p99_ttft_ms": float(ttft99), "p50_itl_ms": _finite(m.latency.itl_p50_ms),
        "throughput_tps": float(m.throughput_tps), "slo_compliance_rate": float(cumulative_attainment),
        "gpu_memory_used_gb": float(m.gpu_memory_used_gb),
        "estimated_cost_per_1k": usd_per_hour * seconds / 3600.0 * 1000.0 / max(tokens, 1.0),
        "request_arrival_rate": float(m.arrival_rate_rps), "spec_acceptance_rate": _finite(m.spec_acceptance_rate),
        "eviction_events": float(m.preemptions), "step_index": float(window),
    }


INFERENCEGYM_FIELDS = ("queue_depth", "active_requests", "kv_cache_occupancy", "mean_prompt_length", "p50_ttft_ms",
                       "p99_ttft_ms", "p50_itl_ms", "throughput_tps", "slo_compliance_rate", "gpu_memory_used_gb",
                       "estimated_cost_per_1k", "request_arrival_rate", "spec_acceptance_rate", "eviction_events",
                       "step_index")
