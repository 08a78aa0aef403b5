"""Window and episode metrics: pure functions of the request table and the window's events.

Definitions follow vLLM's benchmark: TTFT = first token - arrival; TPOT = (end-to-end - TTFT) /
(output tokens - 1); ITL = gaps between successive token deliveries of a request (a
speculative pass delivers several tokens at once: one gap); end-to-end = finish - arrival.
Latencies are reported in ms, percentiles with linear interpolation (numpy's default).

SLOs: every request is judged once. It *misses* as soon as it is known to: its first token came
later than the tenant's TTFT SLO, or it is still without a first token at a window's end past
that SLO, or it was rejected (prompt larger than the KV pool). It *meets* when it finishes
within both its TTFT and TPOT SLOs. Goodput counts requests (and their output tokens) that met.

Percentiles of TTFT/TPOT/end-to-end in a window are over the requests that reached that event in
the window; ITL percentiles come from a log-spaced histogram (bins 9 % wide, 0.1 ms to 100 s)
and are the bin's geometric centre.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numba import njit

from .layout import (ABANDONED, ARR, EV_ABANDONED, EV_DECIDED, EV_FINISHED, EV_FIRST, FINISH, FINISHED, FIRST, OUT,
                     REJECTED, RUNNING, SLO, SLO_MET, STATUS, TEN, W_BUSY_S, W_DECODE_TOK, W_EVICT, W_ITERS, W_KV_BLOCK_S, W_MAX_ITER_S,
                     W_PREFILL_ITERS, W_PREFILL_TOK, W_REJECTED, W_SPEC_ACCEPTED, W_SPEC_PROPOSED,
                     WAITING, PROMPT, W_ADMIT_PROMPT_TOK, W_CACHED_BLOCK_S, W_HIT_TOK)

NAN = float("nan")


def itl_edges_ms(n_bins: int) -> np.ndarray:
    """n_bins - 1 log-spaced edges from 0.1 ms to 100 s (bin b spans edges[b-1]..edges[b])."""
    return np.geomspace(0.1, 1e5, n_bins - 1)


@njit(cache=True)
def hist_percentile(counts, edges, q):
    """The q-th percentile of a histogram over `edges`: the geometric centre of its bin."""
    total = 0
    for c in counts:
        total += c
    if total == 0:
        return np.nan
    target = q / 100.0 * total
    acc = 0
    b = 0
    for i in range(counts.shape[0]):
        acc += counts[i]
        if acc >= target:
            b = i
            break
    if b == 0:
        return edges[0]
    if b >= edges.shape[0]:
        return edges[edges.shape[0] - 1]
    return np.sqrt(edges[b - 1] * edges[b])


@njit(cache=True)
def _pct_sorted(x, q):
    """Percentile with linear interpolation (numpy's default) of an already sorted array."""
    n = x.shape[0]
    if n == 0:
        return np.nan
    h = (n - 1) * q / 100.0
    lo = int(np.floor(h))
    hi = min(lo + 1, n - 1)
    return x[lo] + (h - lo) * (x[hi] - x[lo])


# columns of the latency table
L_TTFT50, L_TTFT99, L_TPOT50, L_TPOT99, L_ITL50, L_ITL99, L_E2E50, L_E2E99 = range(8)


@njit(cache=True)
def latency_table(first_ids, fin_ids, ri, rf, itl, edges):
    """p50/p99 (ms) of TTFT, TPOT, ITL and end-to-end, one row per tenant and a last row for all."""
    n_t = itl.shape[0]
    out = np.full((n_t + 1, 8), np.nan)
    for t in range(n_t + 1):
        ttft = np.empty(first_ids.shape[0])
        m = 0
        for rid in first_ids:
            if t == n_t or ri[rid, TEN] == t:
                ttft[m] = 1e3 * (rf[rid, FIRST] - rf[rid, ARR])
                m += 1
        x = np.sort(ttft[:m])
        out[t, L_TTFT50] = _pct_sorted(x, 50.0)
        out[t, L_TTFT99] = _pct_sorted(x, 99.0)
        e2e = np.empty(fin_ids.shape[0])
        tpot = np.empty(fin_ids.shape[0])
        m = 0
        m2 = 0
        for rid in fin_ids:
            if t == n_t or ri[rid, TEN] == t:
                e2e[m] = 1e3 * (rf[rid, FINISH] - rf[rid, ARR])
                m += 1
                if ri[rid, OUT] > 1:
                    tpot[m2] = 1e3 * (rf[rid, FINISH] - rf[rid, FIRST]) / (ri[rid, OUT] - 1)
                    m2 += 1
        x = np.sort(e2e[:m])
        out[t, L_E2E50] = _pct_sorted(x, 50.0)
        out[t, L_E2E99] = _pct_sorted(x, 99.0)
        x = np.sort(tpot[:m2])
        out[t, L_TPOT50] = _pct_sorted(x, 50.0)
        out[t, L_TPOT99] = _pct_sorted(x, 99.0)
        h = itl.sum(axis=0) if t == n_t else itl[t]
        out[t, L_ITL50] = hist_percentile(h, edges, 50.0)
        out[t, L_ITL99] = hist_percentile(h, edges, 99.0)
    return out


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


class _NanEqual:
    """Metrics compare equal field by field, with NaN equal to NaN ("no data" is the same fact)."""

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(_same(getattr(self, f), getattr(other, f)) for f in self.__dataclass_fields__)

    __hash__ = object.__hash__


@dataclass(frozen=True, eq=False)
class LatencyStats(_NanEqual):
    """p50/p99 in ms; NaN where no request reached the event."""

    ttft_p50_ms: float
    ttft_p99_ms: float
    tpot_p50_ms: float
    tpot_p99_ms: float
    itl_p50_ms: float
    itl_p99_ms: float
    e2e_p50_ms: float
    e2e_p99_ms: float


def _stats(row) -> LatencyStats:
    return LatencyStats(*(float(v) for v in row))


def latency_stats(first_ids, fin_ids, ri, rf, itl_counts, edges) -> LatencyStats:
    """Latency percentiles of the given requests (all tenants pooled), itl_counts: one histogram."""
    return _stats(latency_table(first_ids, fin_ids, ri, rf, itl_counts.reshape(1, -1), edges)[1])


@dataclass(frozen=True, eq=False)
class TenantWindow(_NanEqual):
    name: str
    arrived: int  # requests that arrived in the window
    first_tokens: int
    finished: int
    abandoned: int  # withdrawn by their clients in the window (waited past Tenant.timeout_s)
    slo_met: int  # requests whose SLO outcome was decided in the window, as met
    slo_missed: int
    goodput_tokens: int  # output tokens of the requests that met their SLOs
    goodput_prompt_tokens: int  # prompt tokens of the requests that met their SLOs
    slo_attainment: float  # met / (met + missed); NaN if nothing was decided
    queue_depth: int  # waiting at the window's end
    running: int
    oldest_wait_ms: float  # age of the oldest waiting request at the window's end (0 if none)
    latency: LatencyStats


@dataclass(frozen=True, eq=False)
class WindowMetrics(_NanEqual):
    """What happened in one window of `seconds` (the nominal window; see clock_s)."""

    t_start_s: float
    seconds: float
    clock_s: float  # where the engine clock stands (the last iteration may end past the window)
    arrived: int
    first_tokens: int
    finished: int
    rejected: int
    abandoned: int  # withdrawn by their clients (waited past Tenant.timeout_s without a first token)
    slo_met: int
    slo_missed: int
    goodput_requests: int
    goodput_tokens: int
    slo_attainment: float
    throughput_tps: float  # output tokens / s
    prefill_tps: float  # prompt tokens computed / s (recompute included)
    goodput_rps: float
    goodput_tps: float
    arrival_rate_rps: float
    mean_prompt_tokens: float  # of the window's arrivals (NaN if none)
    queue_depth: int
    running: int
    pending_prompt_tokens: int  # prompt tokens of the waiting requests at the window's end (recompute included)
    max_waiting_prompt_tokens: int  # the largest of them (0 if nothing waits)
    kv_blocks_used: int
    kv_capacity_blocks: int
    kv_occupancy: float  # used / capacity at the window's end
    kv_occupancy_mean: float  # time-averaged over the window's busy iterations and idle time
    kv_cached_blocks: int  # free blocks still holding reusable KV at the window's end (prefix cache)
    kv_cached_share: float  # their time-averaged share of the pool over the window
    prefix_hit_rate: float  # prompt tokens found cached / prompt tokens of the window's first admissions (NaN if none)
    gpu_memory_used_gb: float  # weights + activation reserve + KV pool at the budget, all GPUs
    kv_used_gb: float
    preemptions: int  # eviction events (recompute preemptions)
    spec_proposed_tokens: int
    spec_accepted_tokens: int
    spec_acceptance_rate: float  # accepted / proposed draft tokens; NaN if none proposed
    iterations: int
    prefill_only_iterations: int
    busy_fraction: float
    max_iteration_ms: float
    reload_s: float  # time lost to a quantization switch in this window
    cost_usd: float  # the replica's GPU cost over the window
    cost_per_1k_tokens: float  # cost_usd per 1,000 output tokens; NaN if none
    quality: float  # the answer-quality factor of the quantization tier in force
    quality_tokens: float  # output tokens x quality
    latency: LatencyStats
    tenants: tuple[TenantWindow, ...]

    def as_dict(self) -> dict:
        return asdict(self)


def window_metrics(*, t_start, seconds, clock, ri, rf, cnt, ev, ev_n, itl, edges, tenants, si_state,
                   gpu_memory_used_gb, kv_used_gb, reload_s, usd_per_hour, quality) -> WindowMetrics:
    n_t = len(tenants)
    first_ids = ev[EV_FIRST, : ev_n[EV_FIRST]]
    fin_ids = ev[EV_FINISHED, : ev_n[EV_FINISHED]]
    dec_ids = ev[EV_DECIDED, : ev_n[EV_DECIDED]]
    ab_ids = ev[EV_ABANDONED, : ev_n[EV_ABANDONED]]
    arr_lo, arr_hi = si_state["arrived_range"]
    arr_ids = np.arange(arr_lo, arr_hi)
    met_mask = ri[dec_ids, SLO] == SLO_MET
    met_ids = dec_ids[met_mask]
    queue = si_state["queue_depth"]  # per tenant
    running = si_state["running"]  # per tenant
    oldest = si_state["oldest_wait_ms"]
    lat = latency_table(first_ids, fin_ids, ri, rf, itl, edges)

    def per_tenant(ids, weights=None):
        return np.bincount(ri[ids, TEN], weights=weights, minlength=n_t)
    n_arr, n_first, n_fin = per_tenant(arr_ids), per_tenant(first_ids), per_tenant(fin_ids)
    n_ab = per_tenant(ab_ids)
    n_met, n_dec = per_tenant(met_ids), per_tenant(dec_ids)
    tok_met = per_tenant(met_ids, ri[met_ids, OUT])
    prompt_met = per_tenant(met_ids, ri[met_ids, PROMPT])
    per = tuple(TenantWindow(
        name=tenants[t].name, arrived=int(n_arr[t]), first_tokens=int(n_first[t]), finished=int(n_fin[t]),
        abandoned=int(n_ab[t]),
        slo_met=int(n_met[t]), slo_missed=int(n_dec[t] - n_met[t]), goodput_tokens=int(tok_met[t]),
        goodput_prompt_tokens=int(prompt_met[t]),
        slo_attainment=float(n_met[t] / n_dec[t]) if n_dec[t] else NAN,
        queue_depth=int(queue[t]), running=int(running[t]), oldest_wait_ms=float(oldest[t]),
        latency=_stats(lat[t])) for t in range(n_t))
    met = int(met_ids.size)
    miss = int(dec_ids.size - met)
    good_tok = int(ri[met_ids, OUT].sum())
    cap = int(si_state["capacity"])
    used = int(si_state["used"])
    tokens = float(cnt[W_DECODE_TOK])
    proposed = int(cnt[W_SPEC_PROPOSED])
    span = max(clock - t_start, seconds)
    return WindowMetrics(
        t_start_s=t_start, seconds=seconds, clock_s=clock,
        arrived=int(arr_ids.size), first_tokens=int(first_ids.size), finished=int(fin_ids.size),
        rejected=int(cnt[W_REJECTED]), abandoned=int(ab_ids.size), slo_met=met, slo_missed=miss, goodput_requests=met,
        goodput_tokens=good_tok, slo_attainment=met / (met + miss) if met + miss else NAN,
        throughput_tps=tokens / seconds, prefill_tps=float(cnt[W_PREFILL_TOK]) / seconds,
        goodput_rps=met / seconds, goodput_tps=good_tok / seconds, arrival_rate_rps=arr_ids.size / seconds,
        mean_prompt_tokens=float(ri[arr_ids, PROMPT].mean()) if arr_ids.size else NAN,
        queue_depth=int(queue.sum()), running=int(running.sum()),
        pending_prompt_tokens=int(si_state["pending"][0]), max_waiting_prompt_tokens=int(si_state["pending"][1]),
        kv_blocks_used=used, kv_capacity_blocks=cap,
        kv_occupancy=used / cap if cap else 0.0,
        kv_occupancy_mean=float(cnt[W_KV_BLOCK_S]) / span / cap if cap else 0.0,
        kv_cached_blocks=int(si_state["cached"]),
        kv_cached_share=float(cnt[W_CACHED_BLOCK_S]) / span / cap if cap else 0.0,
        prefix_hit_rate=float(cnt[W_HIT_TOK] / cnt[W_ADMIT_PROMPT_TOK]) if cnt[W_ADMIT_PROMPT_TOK] else NAN,
        gpu_memory_used_gb=gpu_memory_used_gb, kv_used_gb=kv_used_gb, preemptions=int(cnt[W_EVICT]),
        spec_proposed_tokens=proposed, spec_accepted_tokens=int(cnt[W_SPEC_ACCEPTED]),
        spec_acceptance_rate=cnt[W_SPEC_ACCEPTED] / proposed if proposed else NAN,
        iterations=int(cnt[W_ITERS]), prefill_only_iterations=int(cnt[W_PREFILL_ITERS]),
        busy_fraction=float(cnt[W_BUSY_S]) / span, max_iteration_ms=1e3 * float(cnt[W_MAX_ITER_S]),
        reload_s=reload_s, cost_usd=usd_per_hour * seconds / 3600.0,
        cost_per_1k_tokens=usd_per_hour * seconds / 3600.0 / (tokens / 1000.0) if tokens else NAN,
        quality=quality, quality_tokens=tokens * quality,
        latency=_stats(lat[n_t]), tenants=per)


@dataclass(frozen=True, eq=False)
class TenantEpisode(_NanEqual):
    name: str
    offered: int  # requests that arrived
    finished: int
    rejected: int
    abandoned: int
    slo_met: int
    slo_missed: int  # decided misses + requests still open but already late
    unfinished: int  # waiting or running at the end
    goodput_tokens: int
    slo_attainment: float  # met / offered (a request never served has missed)
    latency: LatencyStats


@dataclass(frozen=True, eq=False)
class EpisodeMetrics(_NanEqual):
    duration_s: float
    offered: int  # = finished + rejected + abandoned + unfinished
    finished: int
    rejected: int
    abandoned: int
    unfinished: int
    slo_met: int
    goodput_tokens: int
    slo_attainment: float  # met / offered
    throughput_tps: float
    preemptions: int
    spec_acceptance_rate: float
    cost_per_1k_tokens: float
    prefix_hit_rate: float  # prompt tokens found cached / prompt tokens of first admissions (NaN if none)
    latency: LatencyStats
    tenants: tuple[TenantEpisode, ...]

    def as_dict(self) -> dict:
        return asdict(self)


def episode_metrics(*, duration_s, ri, rf, n_arrived, totals, itl_total, edges, tenants, usd_per_hour):
    ids = np.arange(n_arrived)
    st = ri[ids, STATUS]
    fin = ids[st == FINISHED]
    first = ids[~np.isnan(rf[ids, FIRST])]
    met_ids = ids[ri[ids, SLO] == SLO_MET]
    per = []
    for t, ten in enumerate(tenants):
        sel = ri[ids, TEN] == t
        off = int(sel.sum())
        met = int(np.count_nonzero(sel & (ri[ids, SLO] == SLO_MET)))
        per.append(TenantEpisode(
            name=ten.name, offered=off, finished=int(np.count_nonzero(sel & (st == FINISHED))),
            rejected=int(np.count_nonzero(sel & (st == REJECTED))),
            abandoned=int(np.count_nonzero(sel & (st == ABANDONED))), slo_met=met, slo_missed=off - met,
            unfinished=int(np.count_nonzero(sel & ((st == WAITING) | (st == RUNNING)))),
            goodput_tokens=int(ri[ids[sel & (ri[ids, SLO] == SLO_MET)], OUT].sum()),
            slo_attainment=met / off if off else NAN,
            latency=latency_stats(first[ri[first, TEN] == t], fin[ri[fin, TEN] == t], ri, rf, itl_total[t], edges)))
    tokens = float(totals[W_DECODE_TOK])
    proposed = totals[W_SPEC_PROPOSED]
    return EpisodeMetrics(
        duration_s=duration_s, offered=int(n_arrived), finished=int(fin.size),
        rejected=int(np.count_nonzero(st == REJECTED)), abandoned=int(np.count_nonzero(st == ABANDONED)),
        unfinished=int(np.count_nonzero((st == WAITING) | (st == RUNNING))),
        slo_met=int(met_ids.size), goodput_tokens=int(ri[met_ids, OUT].sum()),
        slo_attainment=met_ids.size / n_arrived if n_arrived else NAN,
        throughput_tps=tokens / duration_s if duration_s else NAN, preemptions=int(totals[W_EVICT]),
        spec_acceptance_rate=float(totals[W_SPEC_ACCEPTED] / proposed) if proposed else NAN,
        cost_per_1k_tokens=usd_per_hour * duration_s / 3600.0 / (tokens / 1000.0) if tokens else NAN,
        prefix_hit_rate=float(totals[W_HIT_TOK] / totals[W_ADMIT_PROMPT_TOK]) if totals[W_ADMIT_PROMPT_TOK] else NAN,
        latency=latency_stats(first, fin, ri, rf, itl_total.sum(axis=0), edges), tenants=tuple(per))


__all__ = ["WindowMetrics", "TenantWindow", "EpisodeMetrics", "TenantEpisode", "LatencyStats",
           "window_metrics", "episode_metrics", "itl_edges_ms", "hist_percentile"]
