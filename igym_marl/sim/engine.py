"""The fast path: one simulation window as a numba-compiled loop over engine iterations.

This is the hot loop of RL training. It keeps all state in arrays (see layout.py) and
implements exactly the scheduling rules of :mod:`igym_marl.sim.reference`, whose readable
object-based code is the specification; tests assert that both give the same results.

Per iteration the kernel (1) moves arrived requests into their tenant queues, (2) schedules
one batch (chunked prefill or prefill-first), growing KV allocations and preempting when the
pool runs out, (3) prices the batch with the cost model, and (4) advances the clock and emits
tokens (speculative tokens sampled with a counter-based hash, so results do not depend on
evaluation order).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import cost_model as _cm
from .layout import (ADMIT, ARR, BLOCKS, DONE, DRAWS, EV_DECIDED, EV_FINISHED, EV_FIRST, FINISH,
                     FINISHED, FIRST, GEN, KEY, LAST, NPRE, OUT, P_BLOCK_TOKENS, P_CHUNK_BUDGET,
                     P_DRAFT_RATIO, P_HALF_CTX, P_PREFILL_BUDGET, PROMPT, REJECTED, RUNNING,
                     S_ADMIT_CTR, S_CAP, S_FREE, S_NEXT, S_NRUN, S_PRE_CTR, S_WATERMARK, SLO,
                     SLO_MET, SLO_MISSED, SLO_OPEN, STATUS, TARGET, TEN, TF_ACC0, TF_PRIO,
                     TF_TPOT_S, TF_TTFT_S, W_ARRIVED, W_BUSY_S, W_DECODE_TOK, W_EVICT, W_ITERS,
                     W_KV_BLOCK_S, W_MAX_ITER_S, W_PREFILL_ITERS, W_PREFILL_TOK, W_REJECTED,
                     W_SPEC_ACCEPTED, W_SPEC_PROPOSED, WAITING)

_iteration_s = _cm.iteration_s

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


@njit(cache=True)
def uniform(seed, rid, draw):
    """A uniform in [0, 1) from (seed, request, draw) by splitmix64: reproducible anywhere."""
    z = np.uint64(seed) ^ (np.uint64(rid) * _M2) ^ (np.uint64(draw) * _M3)
    z = z + _M1
    z = (z ^ (z >> np.uint64(30))) * _M2
    z = (z ^ (z >> np.uint64(27))) * _M3
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def _hist_bin(edges, x):
    lo = 0
    hi = edges.shape[0]
    while lo < hi:  # first edge > x  (searchsorted 'right')
        mid = (lo + hi) // 2
        if edges[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _push_front(q, qh, ql, t, rid):
    n = q.shape[1]
    qh[t] = (qh[t] - 1 + n) % n
    q[t, qh[t]] = rid
    ql[t] += 1


@njit(cache=True)
def _push_back(q, qh, ql, t, rid):
    n = q.shape[1]
    q[t, (qh[t] + ql[t]) % n] = rid
    ql[t] += 1


@njit(cache=True)
def _pop_front(q, qh, ql, t):
    n = q.shape[1]
    rid = q[t, qh[t]]
    qh[t] = (qh[t] + 1) % n
    ql[t] -= 1
    return rid


@njit(cache=True)
def _pick_tenant(ri, q, qh, ql, tf, priority):
    """Tenant whose queue head is admitted next, or -1. FCFS: smallest head key; priority:
    highest tenant priority, then smallest head key."""
    best = -1
    for t in range(ql.shape[0]):
        if ql[t] == 0:
            continue
        if best < 0:
            best = t
            continue
        kt = ri[KEY, q[t, qh[t]]]
        kb = ri[KEY, q[best, qh[best]]]
        if priority:
            if tf[TF_PRIO, t] > tf[TF_PRIO, best] or (tf[TF_PRIO, t] == tf[TF_PRIO, best] and kt < kb):
                best = t
        elif kt < kb:
            best = t
    return best


@njit(cache=True)
def _decide(ri, rf, tf, rid, outcome, ev, ev_n):
    if ri[SLO, rid] == SLO_OPEN:
        ri[SLO, rid] = outcome
        ev[EV_DECIDED, ev_n[EV_DECIDED]] = rid
        ev_n[EV_DECIDED] += 1


@njit(cache=True)
def _blocks_for(tokens, bt):
    return (tokens + bt - 1) // bt


@njit(cache=True)
def _preempt_one(ri, rf, si, run, q, qh, ql, tf, priority, cnt):
    """Preempt (by recompute) the running request vLLM would: the last admitted, or under
    priority routing the lowest-priority one (last admitted among them). Returns its id."""
    nrun = si[S_NRUN]
    pos = nrun - 1
    if priority:
        for j in range(nrun - 1, -1, -1):
            if tf[TF_PRIO, ri[TEN, run[j]]] < tf[TF_PRIO, ri[TEN, run[pos]]]:
                pos = j
    rid = run[pos]
    for j in range(pos, nrun - 1):
        run[j] = run[j + 1]
    si[S_NRUN] = nrun - 1
    si[S_FREE] += ri[BLOCKS, rid]
    ri[BLOCKS, rid] = 0
    ri[TARGET, rid] = ri[PROMPT, rid] + ri[GEN, rid]
    ri[DONE, rid] = 0
    ri[STATUS, rid] = WAITING
    ri[NPRE, rid] += 1
    si[S_PRE_CTR] += 1
    ri[KEY, rid] = -si[S_PRE_CTR]
    _push_front(q, qh, ql, ri[TEN, rid], rid)
    cnt[W_EVICT] += 1.0
    return rid


@njit(cache=True)
def _try_admit(ri, rf, si, run, q, qh, ql, tf, priority, bt, token_room, clock, cnt, ev, ev_n):
    """Admit the next queue head if its prompt blocks fit above the watermark.

    Heads that can never fit (more blocks than capacity less watermark) are rejected, as vLLM
    rejects prompts longer than the cache. A head longer than `token_room` (>= 0) is not admitted.
    Returns the admitted id or -1."""
    while True:
        t = _pick_tenant(ri, q, qh, ql, tf, priority)
        if t < 0:
            return -1
        rid = q[t, qh[t]]
        need = _blocks_for(ri[TARGET, rid], bt)
        if need > si[S_CAP] - si[S_WATERMARK]:
            _pop_front(q, qh, ql, t)
            ri[STATUS, rid] = REJECTED
            rf[FINISH, rid] = clock
            cnt[W_REJECTED] += 1.0
            _decide(ri, rf, tf, rid, SLO_MISSED, ev, ev_n)
            continue
        if token_room >= 0 and ri[TARGET, rid] > token_room:
            return -1
        if si[S_FREE] - need < si[S_WATERMARK]:
            return -1
        _pop_front(q, qh, ql, t)
        si[S_FREE] -= need
        ri[BLOCKS, rid] = need
        ri[STATUS, rid] = RUNNING
        si[S_ADMIT_CTR] += 1
        ri[ADMIT, rid] = si[S_ADMIT_CTR]
        run[si[S_NRUN]] = rid
        si[S_NRUN] += 1
        return rid


@njit(cache=True)
def _grow_decodes(ri, rf, si, run, q, qh, ql, tf, priority, bt, k, cnt, scratch):
    """Give every decode-ready running request the blocks its next pass needs (context + k draft
    slots), oldest first, preempting when the pool is exhausted."""
    nrun = si[S_NRUN]
    for j in range(nrun):
        scratch[j] = run[j]
    for j in range(nrun):
        rid = scratch[j]
        if ri[STATUS, rid] != RUNNING or ri[DONE, rid] < ri[TARGET, rid]:
            continue
        need = _blocks_for(ri[PROMPT, rid] + ri[GEN, rid] + k, bt)
        extra = need - ri[BLOCKS, rid]
        if extra <= 0:
            continue
        while si[S_FREE] < extra and ri[STATUS, rid] == RUNNING:
            _preempt_one(ri, rf, si, run, q, qh, ql, tf, priority, cnt)
        if ri[STATUS, rid] == RUNNING:
            si[S_FREE] -= extra
            ri[BLOCKS, rid] = need


@njit(cache=True)
def _finish(ri, rf, si, tf, rid, t1, ev, ev_n):
    rf[FINISH, rid] = t1
    ri[STATUS, rid] = FINISHED
    si[S_FREE] += ri[BLOCKS, rid]
    ri[BLOCKS, rid] = 0
    ev[EV_FINISHED, ev_n[EV_FINISHED]] = rid
    ev_n[EV_FINISHED] += 1
    t = ri[TEN, rid]
    ok = rf[FIRST, rid] - rf[ARR, rid] <= tf[TF_TTFT_S, t]
    if ri[OUT, rid] > 1:
        ok = ok and (rf[FINISH, rid] - rf[FIRST, rid]) / (ri[OUT, rid] - 1) <= tf[TF_TPOT_S, t]
    _decide(ri, rf, tf, rid, SLO_MET if ok else SLO_MISSED, ev, ev_n)


@njit(cache=True)
def _emit(ri, rf, si, tf, rid, n_tokens, t1, ev, ev_n, itl, edges):
    """Deliver n_tokens (>= 1) to a request at time t1."""
    t = ri[TEN, rid]
    if ri[GEN, rid] == 0 and rf[FIRST, rid] != rf[FIRST, rid]:  # first token (FIRST is NaN)
        rf[FIRST, rid] = t1
        ev[EV_FIRST, ev_n[EV_FIRST]] = rid
        ev_n[EV_FIRST] += 1
        if t1 - rf[ARR, rid] > tf[TF_TTFT_S, t]:
            _decide(ri, rf, tf, rid, SLO_MISSED, ev, ev_n)
    else:
        itl[t, _hist_bin(edges, 1e3 * (t1 - rf[LAST, rid]))] += 1
    rf[LAST, rid] = t1
    ri[GEN, rid] += n_tokens


@njit(cache=True)
def run_window(t_end, batch_cap, k, split, priority, c, prm, seed, tf,
               ri, rf, si, sf, run, q, qh, ql, cnt, ev, ev_n, itl, edges, pf_ids, pf_chunk, scratch):
    """Simulate from sf[0] (the clock) until the clock reaches t_end (the last iteration may end
    after it). Counters and events of the window accumulate into cnt, ev/ev_n and itl."""
    bt = np.int64(prm[P_BLOCK_TOKENS])
    n_req = ri.shape[1]
    # A shrunken budget forces preemptions until the held blocks fit.
    while si[S_CAP] - si[S_FREE] > si[S_CAP] and si[S_NRUN] > 0:
        _preempt_one(ri, rf, si, run, q, qh, ql, tf, priority, cnt)
    while True:
        clock = sf[0]
        # ---- arrivals ----
        while si[S_NEXT] < n_req and rf[ARR, si[S_NEXT]] <= clock:
            rid = si[S_NEXT]
            ri[STATUS, rid] = WAITING
            ri[KEY, rid] = rid
            _push_back(q, qh, ql, ri[TEN, rid], rid)
            si[S_NEXT] += 1
            cnt[W_ARRIVED] += 1.0
        if clock >= t_end:
            break
        # ---- schedule ----
        n_pf = 0
        pf_tokens = 0
        prefill_only = False
        if split:
            _grow_decodes(ri, rf, si, run, q, qh, ql, tf, priority, bt, k, cnt, scratch)
            n_dec = 0
            for j in range(si[S_NRUN]):
                if ri[DONE, run[j]] >= ri[TARGET, run[j]]:
                    n_dec += 1
            room = np.int64(prm[P_CHUNK_BUDGET]) - n_dec * (1 + k)
            for j in range(si[S_NRUN]):
                rid = run[j]
                if room > 0 and ri[DONE, rid] < ri[TARGET, rid]:
                    ch = min(ri[TARGET, rid] - ri[DONE, rid], room)
                    pf_ids[n_pf] = rid
                    pf_chunk[n_pf] = ch
                    n_pf += 1
                    room -= ch
            while room > 0 and si[S_NRUN] < batch_cap:
                rid = _try_admit(ri, rf, si, run, q, qh, ql, tf, priority, bt, -1, clock, cnt, ev, ev_n)
                if rid < 0:
                    break
                ch = min(ri[TARGET, rid], room)
                pf_ids[n_pf] = rid
                pf_chunk[n_pf] = ch
                n_pf += 1
                room -= ch
        else:
            budget = np.int64(prm[P_PREFILL_BUDGET])
            for j in range(si[S_NRUN]):
                rid = run[j]
                if ri[DONE, rid] < ri[TARGET, rid]:
                    pf_ids[n_pf] = rid
                    pf_chunk[n_pf] = ri[TARGET, rid] - ri[DONE, rid]
                    pf_tokens += pf_chunk[n_pf]
                    n_pf += 1
            while si[S_NRUN] < batch_cap:
                room = budget - pf_tokens if n_pf > 0 else -1
                if n_pf > 0 and room <= 0:
                    break
                rid = _try_admit(ri, rf, si, run, q, qh, ql, tf, priority, bt, room, clock, cnt, ev, ev_n)
                if rid < 0:
                    break
                pf_ids[n_pf] = rid
                pf_chunk[n_pf] = ri[TARGET, rid]
                pf_tokens += pf_chunk[n_pf]
                n_pf += 1
            prefill_only = n_pf > 0
            if not prefill_only:
                _grow_decodes(ri, rf, si, run, q, qh, ql, tf, priority, bt, k, cnt, scratch)
        # ---- price the batch ----
        lin = 0.0
        sampled = 0.0
        pairs = 0.0
        for j in range(n_pf):
            rid = pf_ids[j]
            ch = float(pf_chunk[j])
            lin += ch
            pairs += ch * (float(ri[DONE, rid]) + (ch + 1.0) / 2.0)
            if ri[DONE, rid] + pf_chunk[j] >= ri[TARGET, rid]:
                sampled += 1.0
        n_dec = 0
        kv = 0.0
        if not prefill_only:
            for j in range(si[S_NRUN]):
                rid = run[j]
                if ri[DONE, rid] >= ri[TARGET, rid]:
                    n_dec += 1
                    kv += float(ri[PROMPT, rid] + ri[GEN, rid])
        q_tok = float(n_dec * (1 + k))
        lin += q_tok
        sampled += q_tok
        if lin == 0.0:
            # ---- idle: jump to the next arrival ----
            nxt = t_end
            if si[S_NEXT] < n_req and rf[ARR, si[S_NEXT]] < t_end:
                nxt = rf[ARR, si[S_NEXT]]
            sf[0] = max(clock, nxt)
            continue
        dt = _iteration_s(c, lin, sampled, pairs, kv, kv * (1.0 + k), float(n_dec + n_pf))
        if k > 0 and n_dec > 0:
            fn = float(n_dec)
            dt += k * prm[P_DRAFT_RATIO] * _iteration_s(c, fn, fn, 0.0, kv, kv, fn)
        t1 = clock + dt
        cnt[W_ITERS] += 1.0
        cnt[W_BUSY_S] += dt
        if dt > cnt[W_MAX_ITER_S]:
            cnt[W_MAX_ITER_S] = dt
        if prefill_only:
            cnt[W_PREFILL_ITERS] += 1.0
        cnt[W_KV_BLOCK_S] += float(si[S_CAP] - si[S_FREE]) * dt
        # ---- emit tokens ----
        for j in range(si[S_NRUN]):
            rid = run[j]
            if prefill_only or ri[DONE, rid] < ri[TARGET, rid]:
                continue
            ntok = 1
            if k > 0:
                a = tf[TF_ACC0, ri[TEN, rid]] * prm[P_HALF_CTX] / (
                    prm[P_HALF_CTX] + float(ri[PROMPT, rid] + ri[GEN, rid]))
                for d in range(k):
                    u = uniform(seed, rid, ri[DRAWS, rid])
                    ri[DRAWS, rid] += 1
                    if u < a:
                        ntok += 1
                    else:
                        break
                cnt[W_SPEC_PROPOSED] += float(k)
                cnt[W_SPEC_ACCEPTED] += float(ntok - 1)
            ntok = min(ntok, ri[OUT, rid] - ri[GEN, rid])
            cnt[W_DECODE_TOK] += float(ntok)
            _emit(ri, rf, si, tf, rid, ntok, t1, ev, ev_n, itl, edges)
        for j in range(n_pf):
            rid = pf_ids[j]
            ri[DONE, rid] += pf_chunk[j]
            cnt[W_PREFILL_TOK] += float(pf_chunk[j])
            if ri[DONE, rid] >= ri[TARGET, rid]:
                cnt[W_DECODE_TOK] += 1.0
                _emit(ri, rf, si, tf, rid, 1, t1, ev, ev_n, itl, edges)
        # ---- retire finished requests, keeping admission order ----
        m = 0
        for j in range(si[S_NRUN]):
            rid = run[j]
            if ri[GEN, rid] >= ri[OUT, rid]:
                _finish(ri, rf, si, tf, rid, t1, ev, ev_n)
            else:
                run[m] = rid
                m += 1
        si[S_NRUN] = m
        sf[0] = t1
    # ---- requests without a first token past their TTFT SLO are misses now ----
    clock = sf[0]
    for t in range(ql.shape[0]):
        for j in range(ql[t]):
            rid = q[t, (qh[t] + j) % q.shape[1]]
            if rf[FIRST, rid] != rf[FIRST, rid] and clock - rf[ARR, rid] > tf[TF_TTFT_S, t]:
                _decide(ri, rf, tf, rid, SLO_MISSED, ev, ev_n)
    for j in range(si[S_NRUN]):
        rid = run[j]
        if rf[FIRST, rid] != rf[FIRST, rid] and clock - rf[ARR, rid] > tf[TF_TTFT_S, ri[TEN, rid]]:
            _decide(ri, rf, tf, rid, SLO_MISSED, ev, ev_n)
