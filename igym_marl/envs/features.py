"""Observation features: simulator metrics -> normalized vectors in [0, 1].

One table drives both the code and the documentation: every feature is a :class:`Feature` with
the quantity the code computes, the scale it is divided by, and whether it is then squashed with
s(x) = x / (1 + x) (so s = 0.5 at the scale) or capped at 1. Latencies are divided by the
tenant's SLO first, so 0.5 means "at the SLO". :data:`SHARED`, :data:`TENANT`,
:data:`LAST_ACTION` and :data:`OWN` list them in vector order; ``serving_v0``'s docstring prints
their descriptions (a test checks it against this table).
"""

from __future__ import annotations

import numpy as np

from ..sim.metrics import WindowMetrics
from ..sim.types import KNOB_LEVELS
from .featurespec import Feature, finite
from .team import STANDARD, Team

MAX_TENANTS = 3


def _levels(knob: str) -> int:
    return len(KNOB_LEVELS[knob]) - 1


F = Feature
SHARED = (
    F("progress", "window index / episode windows"),
    F("arrival_load", "arrival rate / task capacity, in req/s", squash=True),
    F("queue", "waiting requests", 64, squash=True),
    F("running", "running requests", 512),
    F("kv_occupancy", "KV blocks used / capacity at the window's end"),
    F("memory", "GPU memory reserved / installed (weights + activations + KV pool)", cap=True),
    F("preemptions", "preemptions in the window", 4, squash=True),
    F("throughput", "output tokens/s", 2000, squash=True),
    F("rejected", "requests rejected in the window", squash=True),
    F("busy", "share of the window the engine was computing", cap=True),
    F("prefix_hit_rate", "prompt tokens found in the prefix cache / prompt tokens of the window's first "
                         "admissions", note="0 if none admitted"),
    F("kv_cached_share", "time-averaged share of the KV pool holding cached blocks no request uses"),
)
TENANT = (
    F("present", "1 if this tenant slot is used by the task"),
    F("arrival_share", "the tenant's share of the window's arrivals"),
    F("queue", "the tenant's waiting requests", 32, squash=True),
    F("ttft_p99", "p99 TTFT / TTFT SLO", squash=True, note="without first tokens, the oldest wait stands in"),
    F("tpot_p99", "p99 TPOT / TPOT SLO", squash=True, note="0 without finished requests"),
    F("attainment", "SLO met / decided in the window", note="0 if none decided"),
    F("decided", "1 if any of the tenant's requests was judged in the window"),
    F("oldest_wait", "age of the oldest waiting request / TTFT SLO", squash=True),
)
LAST_ACTION = (
    F("batch_level", "batch_cap level", _levels("batch_cap"), note="levels 1, 2, 4, ..., 512"),
    F("split", "prefill_decode_split (0/1)"),
    F("kv_level", "kv_budget_fraction level", _levels("kv_budget_fraction"), note="levels 0.1 .. 1.0"),
    F("tier", "quantization tier level", _levels("quantization_tier"),
      note=", ".join(KNOB_LEVELS["quantization_tier"])),
    F("spec_depth", "speculation_depth", _levels("speculation_depth")),
    F("priority", "priority_routing (0/1)"),
)
# each agent's own features, in the standard team's order (igym_marl/envs/team.py holds them)
OWN = {a.name: a.own for a in STANDARD.agents}
del F

N_SHARED = len(SHARED) + MAX_TENANTS * len(TENANT) + len(LAST_ACTION)
# the standard team's observation and state sizes (a FeatureBuilder computes its own team's)
OBS_DIM = {a: N_SHARED + len(OWN[a]) for a in STANDARD.names}
STATE_DIM = N_SHARED + sum(len(OWN[a]) for a in STANDARD.names)
_EMPTY_TENANT = [1.0] + [0.0] * (len(TENANT) - 1)  # present, nothing observed yet
_UNUSED_TENANT = [0.0] * len(TENANT)


def state_features(team: Team = STANDARD) -> tuple[Feature, ...]:
    """The state vector's features in order: the shared part, then every agent's own part."""
    return SHARED + TENANT * MAX_TENANTS + LAST_ACTION + tuple(f for a in team.agents for f in a.own)


STATE_FEATURES = state_features()


def observation_doc() -> str:
    """The observation tables of serving_v0's docstring, generated from this module's table (a
    test checks the docstring holds exactly this text)."""
    rule = "    =====  ======================  " + "=" * 70
    lines = [f"Shared part (every agent's first {N_SHARED} features; all in [0, 1], s(x) = x / (1 + x)):", "",
             rule, "    index  feature                 definition", rule]
    for i, f in enumerate(SHARED):
        lines.append(f"    {i:<5d}  {f.name:<22}  {f.description}")
    base = len(SHARED)
    ks = ", ".join(str(k) for k in range(MAX_TENANTS))
    for j, f in enumerate(TENANT):
        idx = f"{base + j}+{len(TENANT)}k"
        lines.append(f"    {idx:<5}  {'tenant[k].' + f.name:<22}  {f.description} (k = {ks}; zeros for an unused slot)")
    base += MAX_TENANTS * len(TENANT)
    for j, f in enumerate(LAST_ACTION):
        lines.append(f"    {base + j:<5d}  {'last.' + f.name:<22}  {f.description}")
    lines.append(rule)
    for a in STANDARD.names:
        n = len(OWN[a])
        lines += ["", f"Own part of ``{a}`` (indices {N_SHARED}..{N_SHARED + n - 1}; Box(0, 1, ({OBS_DIM[a]},), "
                      f"float32)):", ""]
        for j, f in enumerate(OWN[a]):
            lines.append(f"    {N_SHARED + j:<5d}  {f.name:<22}  {f.description}")
    return "\n".join(lines)


class FeatureBuilder:
    """Builds every agent's observation and the global state from one window's metrics, for a team
    (each agent's own part comes from its AgentSpec's features and measure)."""

    def __init__(self, tenants, capacity_rps: float, total_gpu_gb: float, weights_gb_fn, block_tokens: int,
                 episode_windows: int, team: Team = STANDARD):
        if len(tenants) > MAX_TENANTS:
            raise ValueError(f"the environment supports up to {MAX_TENANTS} tenants; the task has {len(tenants)}")
        self.team = team
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
        self.weights_frac = {q: weights_gb_fn(q) / total_gpu_gb for q in KNOB_LEVELS["quantization_tier"]}
        feats = state_features(team)
        self.obs_dim = {a.name: N_SHARED + len(a.own) for a in team.agents}
        self.state_dim = len(feats)
        self._scale = np.array([f.scale for f in feats])
        self._squash = np.array([f.squash for f in feats])
        self._cap = np.array([f.cap for f in feats])
        self._n_own = self.state_dim - N_SHARED
        self._slices, start = {}, N_SHARED
        for a in team.agents:
            self._slices[a.name] = slice(start, start + len(a.own))
            start += len(a.own)

    # the quantities own parts share
    def mean_iteration_s(self, m: WindowMetrics) -> float:
        iters = m.iterations
        return m.busy_fraction * max(m.seconds, m.clock_s - m.t_start_s) / iters if iters else 0.0

    def kv_tokens(self, m: WindowMetrics) -> int:
        """KV capacity in tokens (at least 1)."""
        return max(1, m.kv_capacity_blocks * self.block_tokens)

    def last_action(self, actions: dict) -> list:
        """Every knob's level index, in KNOB_LEVELS order (``Team.knob_levels``)."""
        return list(self.team.knob_levels(actions))

    def _tenant_block(self, m: WindowMetrics | None) -> list:
        out = []
        n_arr = m.arrived if m is not None else 0
        for i, tenant in enumerate(self.tenants):
            if m is None:
                out += _EMPTY_TENANT
                continue
            t = m.tenants[i]
            ttft = t.latency.ttft_p99_ms
            if ttft != ttft:
                ttft = t.oldest_wait_ms
            tpot = t.latency.tpot_p99_ms
            decided = t.slo_met + t.slo_missed
            out += [1.0, t.arrived / n_arr if n_arr else 0.0, t.queue_depth, ttft / tenant.ttft_slo_ms,
                    tpot / tenant.tpot_slo_ms if tpot == tpot else 0.0, t.slo_met / decided if decided else 0.0,
                    1.0 if decided else 0.0, t.oldest_wait_ms / tenant.ttft_slo_ms]
        out += _UNUSED_TENANT * (MAX_TENANTS - len(self.tenants))
        return out

    def shared(self, m: WindowMetrics | None, window: int, actions: dict) -> list:
        """The shared part's quantities (before scaling), in SHARED + TENANT + LAST_ACTION order."""
        if m is None:
            head = [window / self.episode_windows] + [0.0] * (len(SHARED) - 1)
        else:
            head = [window / self.episode_windows, m.arrival_rate_rps / self.capacity, m.queue_depth, m.running,
                    m.kv_occupancy, m.gpu_memory_used_gb / self.total_gpu_gb, m.preemptions, m.throughput_tps,
                    float(m.rejected), m.busy_fraction, finite(m.prefix_hit_rate), m.kv_cached_share]
        return head + self._tenant_block(m) + self.last_action(actions)

    def own(self, m: WindowMetrics | None, snap: tuple[int, int] | None, knobs) -> list:
        """The own parts' quantities (before scaling), concatenated in the team's order."""
        if m is None:
            return [0.0] * self._n_own
        out = []
        for a in self.team.agents:
            if a.measure is None:
                continue
            got = a.measure(self, m, snap, knobs)
            if len(got) != len(a.own):
                raise ValueError(f"agent {a.name!r}: measure returned {len(got)} quantities for its "
                                 f"{len(a.own)} own features")
            out += got
        return out

    def build(self, m, snap, window, actions, knobs):
        """-> ({agent: float32 observation}, float32 global state): the quantities, then the table's
        scales, squashes and caps."""
        x = np.array(self.shared(m, window, actions) + self.own(m, snap, knobs)) / self._scale
        sq_ = x[self._squash]
        x[self._squash] = sq_ / (1.0 + sq_)
        np.minimum(x, 1.0, out=x, where=self._cap)
        state = x.astype(np.float32)
        shared = state[:N_SHARED]
        obs = {a: np.concatenate((shared, state[sl])) for a, sl in self._slices.items()}
        return obs, state


def inferencegym_fields(m: WindowMetrics, window: int, cumulative_attainment: float) -> dict:
    """The 15 InferenceGym observation fields, by their original names and units."""
    ttft50, ttft99 = m.latency.ttft_p50_ms, m.latency.ttft_p99_ms
    if ttft50 != ttft50:  # no first token in the window: the oldest wait is a lower bound (0 if none waits)
        oldest = max((t.oldest_wait_ms for t in m.tenants), default=0.0)
        ttft50 = ttft99 = oldest
    return {
        "queue_depth": float(m.queue_depth), "active_requests": float(m.running),
        "kv_cache_occupancy": float(m.kv_occupancy), "mean_prompt_length": finite(m.mean_prompt_tokens),
        "p50_ttft_ms": float(ttft50), "p99_ttft_ms": float(ttft99), "p50_itl_ms": finite(m.latency.itl_p50_ms),
        "throughput_tps": float(m.throughput_tps), "slo_compliance_rate": float(cumulative_attainment),
        "gpu_memory_used_gb": float(m.gpu_memory_used_gb),
        # the simulator's cost per 1,000 tokens; a window without output tokens reports its whole cost
        # as if it had produced one (the original benchmark's convention)
        "estimated_cost_per_1k": finite(m.cost_per_1k_tokens, 1000.0 * m.cost_usd),
        "request_arrival_rate": float(m.arrival_rate_rps), "spec_acceptance_rate": finite(m.spec_acceptance_rate),
        "eviction_events": float(m.preemptions), "step_index": float(window),
    }


INFERENCEGYM_FIELDS = ("queue_depth", "active_requests", "kv_cache_occupancy", "mean_prompt_length", "p50_ttft_ms",
                       "p99_ttft_ms", "p50_itl_ms", "throughput_tps", "slo_compliance_rate", "gpu_memory_used_gb",
                       "estimated_cost_per_1k", "request_arrival_rate", "spec_acceptance_rate", "eviction_events",
                       "step_index")
