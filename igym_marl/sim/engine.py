"""The fast path: one simulation window as a numba-compiled loop over engine iterations.

This is the hot loop of RL training. It keeps all state in arrays (see layout.py) and
implements exactly the scheduling rules of :mod:`igym_marl.sim.reference`, whose readable
object-based code is the specification; tests assert that both give the same results.

Per iteration the kernel (1) moves arrived requests into their tenant queues, (2) schedules
one batch (chunked prefill or prefill-first), growing KV allocations and preempting when the
pool runs out, (3) prices the batch with the cost model, and (4) advances the clock and emits
tokens (speculative tokens sampled with a counter-based hash, so results do not depend on
evaluation order).

**The KV pool and its prefix cache** (vLLM V1's automatic prefix caching), kept compact:

* A request's blocks are its *keyed* prefix (``NSH`` blocks, each a node of the cache named by
  the workload's key for that position: blocks it found cached, or computed and registered)
  followed by its *own* unkeyed blocks (a count).
* The free queue is a doubly linked list of nodes in LRU order: a keyed node whose users all
  left (still reusable), or a *run* of unkeyed blocks: empty ones, or a preempted request's own
  computed blocks (reusable by it alone, its tail block first). Allocation takes blocks from the
  head, evicting what they held; a released request appends its blocks tail first (its own
  uncomputed or partial blocks, then its own computed ones, then its keyed prefix, last block
  first), so a prefix's head outlives its tail, as vLLM's free-block queue does.
* A hash table maps keys to nodes. Admission walks the request's keys from its first block and
  reuses the longest chain found (shared, reference counted: no compute, and taken out of the
  free queue if no one held it), then, after a preemption, its own computed blocks if they are
  still queued and start where the chain ends.

A workload without keys costs what it did before: its requests' blocks are counts and runs, O(1)
per allocation and release whatever their length.
"""

from __future__ import annotations

import functools
import hashlib
import sys
from pathlib import Path

import numpy as np
from numba import njit


def _drop_stale_cache() -> None:
    """numba keeps a compiled function on disk until the file that defines it changes; the kernel
    also compiles in the cost model's functions and the layout's constants, so a change there must
    drop it too. The fingerprint of those files is kept beside the cache; when it differs, the
    kernel's cache files are removed before anything is compiled. (Best effort: a read-only install
    never changes, so there is nothing to drop.)"""
    here = Path(__file__).resolve()
    fingerprint = hashlib.sha256(b"".join(here.with_name(n).read_bytes()
                                          for n in ("cost_model.py", "layout.py"))).hexdigest()[:16]
    cache = here.parent / "__pycache__"
    stamp = cache / "engine.deps"
    try:
        if stamp.read_text() == fingerprint:
            return
    except OSError:
        pass
    try:
        for f in cache.glob("engine.*.nb[ic]"):
            f.unlink(missing_ok=True)
        cache.mkdir(exist_ok=True)
        stamp.write_text(fingerprint)
    except OSError:
        pass


_drop_stale_cache()

from . import cost_model as _cm
from .layout import (ABANDONED, ADMIT, ARR, BLOCKS, DONE, DRAWS, EMPTY_KEY, EV_ABANDONED, EV_DECIDED, EV_FINISHED,
                     EV_FIRST, FINISH, FINISHED, FIRST, FROZEN, GEN, HIT, KEY, KIND_KEYED, KIND_RUN, KIND_SPARE, LAST,
                     ND_COUNT, ND_KEY, ND_KIND, ND_NEXT, ND_OWNER, ND_PREV, ND_REF, NPRE, NSH, OUT, OWN_NODE, OWN_START,
                     P_API_S, P_BLOCK_TOKENS, P_CHUNK_BUDGET, P_DRAFT_RATIO, P_HALF_CTX, P_MAX_MODEL_LEN,
                     P_PREFILL_BUDGET, P_PREFIX_CACHING, PROMPT, REJECTED, RUNNING, S_ADMIT_CTR, S_CACHED, S_CAP, S_CAP_NEXT, S_FHEAD,
                     S_FREE, S_FTAIL, S_HT_N, S_NDTOP, S_NEXT, S_NRUN, S_PEND_MAX, S_PEND_SUM, S_PRE_CTR, S_WATERMARK,
                     SLO, SLO_MET, SLO_MISSED, SLO_OPEN, STATUS, TARGET, TEN, TF_ACC0, TF_PRIO, TF_TIMEOUT_S, TF_TPOT_S,
                     TF_TTFT_S, W_ABANDONED, W_ADMIT_PROMPT_TOK, W_ARRIVED, W_BUSY_S, W_CACHED_BLOCK_S, W_DECODE_TOK,
                     W_EVICT, W_HIT_TOK, W_ITERS, W_KV_BLOCK_S, W_MAX_ITER_S, W_PREFILL_ITERS, W_PREFILL_TOK,
                     W_REJECTED, W_SPEC_ACCEPTED, W_SPEC_PROPOSED, WAITING)

_iteration_s = _cm.iteration_s

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, inline="always", error_model="numpy")
def uniform(seed, rid, draw):
    """A uniform in [0, 1) from (seed, request, draw) by splitmix64: reproducible anywhere."""
    z = np.uint64(seed) ^ (np.uint64(rid) * _M2) ^ (np.uint64(draw) * _M3)
    z = z + _M1
    z = (z ^ (z >> np.uint64(30))) * _M2
    z = (z ^ (z >> np.uint64(27))) * _M3
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always", error_model="numpy")
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


@njit(cache=True, inline="always", error_model="numpy")
def _push_front(q, qh, ql, t, rid):
    n = q.shape[1]
    qh[t] = (qh[t] - 1 + n) % n
    q[t, qh[t]] = rid
    ql[t] += 1


@njit(cache=True, inline="always", error_model="numpy")
def _push_back(q, qh, ql, t, rid):
    n = q.shape[1]
    q[t, (qh[t] + ql[t]) % n] = rid
    ql[t] += 1


@njit(cache=True, inline="always", error_model="numpy")
def _pop_front(q, qh, ql, t):
    n = q.shape[1]
    rid = q[t, qh[t]]
    qh[t] = (qh[t] + 1) % n
    ql[t] -= 1
    return rid


# ---------------------------------------------------------------------------------- the prefix cache
@njit(cache=True, inline="always", error_model="numpy")
def _slot(key, mask):
    z = np.uint64(key) * _M2
    z = z ^ (z >> np.uint64(29))
    return np.int64(z & np.uint64(mask))


@njit(cache=True, inline="always", error_model="numpy")
def ht_find(ht, key):
    """The node holding `key`, or -1 (open addressing, linear probing)."""
    mask = ht.shape[0] - 1
    i = _slot(key, mask)
    while ht[i, 0] != EMPTY_KEY:
        if ht[i, 0] == key:
            return ht[i, 1]
        i = (i + 1) & mask
    return -1


@njit(cache=True, error_model="numpy")
def _recount(ri, si, run, pf_ids, list_prefills):
    """After a preemption shifted the running list: (decodes, their KV tokens, prefills listed in
    pf_ids in running order when `list_prefills`)."""
    n_dec = 0
    kv = 0.0
    n_cand = 0
    for j in range(si[S_NRUN]):
        rid = run[j]
        if ri[rid, DONE] >= ri[rid, TARGET]:
            n_dec += 1
            kv += float(ri[rid, PROMPT] + ri[rid, GEN])
        elif list_prefills:
            pf_ids[n_cand] = rid
            n_cand += 1
    return n_dec, kv, n_cand


@njit(cache=True, error_model="numpy")
def cached_prefix(ht, keys):
    """How many of `keys`' leading blocks the cache holds (in use or free, still reusable): what
    admission would find, for a router that scores replicas by cached prefix."""
    m = 0
    while m < keys.shape[0] and ht_find(ht, keys[m]) >= 0:
        m += 1
    return m


@njit(cache=True, inline="always", error_model="numpy")
def _ht_insert(ht, si, key, node):
    mask = ht.shape[0] - 1
    i = _slot(key, mask)
    while ht[i, 0] != EMPTY_KEY:
        i = (i + 1) & mask
    ht[i, 0] = key
    ht[i, 1] = node
    si[S_HT_N] += 1


@njit(cache=True, inline="always", error_model="numpy")
def _ht_delete(ht, si, key):
    """Remove `key` (present), shifting later entries of its probe chain back (no tombstones)."""
    mask = ht.shape[0] - 1
    i = _slot(key, mask)
    while ht[i, 0] != key:
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        if ht[j, 0] == EMPTY_KEY:
            break
        k = _slot(ht[j, 0], mask)
        # the entry at j may move to the hole at i unless its home k lies cyclically in (i, j]
        if (i <= j and (k <= i or k > j)) or (i > j and k <= i and k > j):
            ht[i, 0] = ht[j, 0]
            ht[i, 1] = ht[j, 1]
            i = j
    ht[i, 0] = EMPTY_KEY
    si[S_HT_N] -= 1


@njit(cache=True, inline="always", error_model="numpy")
def _node_new(nd, stack, si, kind):
    si[S_NDTOP] -= 1
    node = stack[si[S_NDTOP]]
    nd[node, ND_KIND] = kind
    nd[node, ND_PREV] = -1
    nd[node, ND_NEXT] = -1
    nd[node, ND_REF] = 0
    nd[node, ND_COUNT] = 0
    nd[node, ND_OWNER] = -1
    return node


@njit(cache=True, inline="always", error_model="numpy")
def _node_free(nd, stack, si, node):
    nd[node, ND_KIND] = KIND_SPARE
    stack[si[S_NDTOP]] = node
    si[S_NDTOP] += 1


@njit(cache=True, inline="always", error_model="numpy")
def _fq_append(nd, si, node):
    tail = si[S_FTAIL]
    nd[node, ND_PREV] = tail
    nd[node, ND_NEXT] = -1
    if tail >= 0:
        nd[tail, ND_NEXT] = node
    else:
        si[S_FHEAD] = node
    si[S_FTAIL] = node


@njit(cache=True, inline="always", error_model="numpy")
def _fq_prepend(nd, si, node):
    head = si[S_FHEAD]
    nd[node, ND_NEXT] = head
    nd[node, ND_PREV] = -1
    if head >= 0:
        nd[head, ND_PREV] = node
    else:
        si[S_FTAIL] = node
    si[S_FHEAD] = node


@njit(cache=True, inline="always", error_model="numpy")
def _fq_remove(nd, si, node):
    p = nd[node, ND_PREV]
    n = nd[node, ND_NEXT]
    if p >= 0:
        nd[p, ND_NEXT] = n
    else:
        si[S_FHEAD] = n
    if n >= 0:
        nd[n, ND_PREV] = p
    else:
        si[S_FTAIL] = p


@njit(cache=True, inline="always", error_model="numpy")
def _fq_add_run(nd, stack, si, count, owner):
    """Append `count` unkeyed blocks at the tail: empty ones (owner -1, merged into an empty run at
    the tail) or `owner`'s own computed blocks (a run of their own). Returns the node."""
    si[S_FREE] += count
    tail = si[S_FTAIL]
    if owner < 0 and tail >= 0 and nd[tail, ND_KIND] == KIND_RUN and nd[tail, ND_OWNER] < 0:
        nd[tail, ND_COUNT] += count
        return tail
    node = _node_new(nd, stack, si, KIND_RUN)
    nd[node, ND_COUNT] = count
    nd[node, ND_OWNER] = owner
    if owner >= 0:
        si[S_CACHED] += count
    _fq_append(nd, si, node)
    return node


@njit(cache=True, inline="always", error_model="numpy")
def _disown(ri, nd, si, rid):
    """A waiting request's own cached blocks become empty free blocks (it will not reuse them)."""
    node = ri[rid, OWN_NODE]
    if node >= 0:
        si[S_CACHED] -= nd[node, ND_COUNT]
        nd[node, ND_OWNER] = -1
        ri[rid, OWN_NODE] = -1
        ri[rid, OWN_START] = 0


@njit(cache=True, inline="always", error_model="numpy")
def _fq_take(ri, nd, ht, stack, si, k):
    """Take `k` blocks (k <= S_FREE) from the free queue's head for new KV, evicting what they held."""
    si[S_FREE] -= k
    while k > 0:
        h = si[S_FHEAD]
        if nd[h, ND_KIND] == KIND_KEYED:
            _fq_remove(nd, si, h)
            _ht_delete(ht, si, nd[h, ND_KEY])
            _node_free(nd, stack, si, h)
            si[S_CACHED] -= 1
            k -= 1
        else:
            m = min(k, nd[h, ND_COUNT])
            nd[h, ND_COUNT] -= m
            k -= m
            owner = nd[h, ND_OWNER]
            if owner >= 0:
                si[S_CACHED] -= m
            if nd[h, ND_COUNT] == 0:
                _fq_remove(nd, si, h)
                if owner >= 0:
                    ri[owner, OWN_NODE] = -1
                    ri[owner, OWN_START] = 0
                _node_free(nd, stack, si, h)


@njit(cache=True, inline="always", error_model="numpy")
def _computed(ri, rid):
    """Tokens whose KV the request has computed (a decoding request's last token is not fed yet)."""
    if ri[rid, DONE] < ri[rid, TARGET]:
        return ri[rid, DONE]
    return ri[rid, PROMPT] + ri[rid, GEN] - 1


@njit(cache=True, inline="always", error_model="numpy")
def _release(ri, nd, ht, stack, si, kptr, keys, rid, bt, cache_own):
    """Return a request's blocks to the free queue, tail first. With `cache_own` (a preemption,
    prefix caching on) its own computed full blocks stay reusable by it."""
    nsh = ri[rid, NSH]
    own = ri[rid, BLOCKS] - nsh
    if own > 0:
        cached = 0
        if cache_own:
            cached = min(_computed(ri, rid) // bt, ri[rid, BLOCKS]) - nsh
            if cached < 0:
                cached = 0
        if own - cached > 0:
            _fq_add_run(nd, stack, si, own - cached, -1)
        if cached > 0:
            ri[rid, OWN_NODE] = _fq_add_run(nd, stack, si, cached, rid)
            ri[rid, OWN_START] = nsh
    base = kptr[rid]
    for j in range(nsh - 1, -1, -1):
        node = ht_find(ht, keys[base + j])
        nd[node, ND_REF] -= 1
        if nd[node, ND_REF] == 0:
            _fq_append(nd, si, node)
            si[S_FREE] += 1
            si[S_CACHED] += 1
    ri[rid, BLOCKS] = 0
    ri[rid, NSH] = 0
    ri[rid, FROZEN] = 0


@njit(cache=True, inline="always", error_model="numpy")
def _register(ri, nd, ht, stack, si, kptr, keys, rid, bt):
    """Name the request's newly computed full blocks by their keys, in order, so later requests
    can reuse them; a key someone registered meanwhile freezes it (its copy stays its own)."""
    base = kptr[rid]
    top = min(min(_computed(ri, rid) // bt, ri[rid, BLOCKS]), kptr[rid + 1] - base)
    while ri[rid, NSH] < top:
        key = keys[base + ri[rid, NSH]]
        if ht_find(ht, key) >= 0:
            ri[rid, FROZEN] = 1
            return
        node = _node_new(nd, stack, si, KIND_KEYED)
        nd[node, ND_KEY] = key
        nd[node, ND_REF] = 1
        _ht_insert(ht, si, key, node)
        ri[rid, NSH] += 1


# ---------------------------------------------------------------------------------- scheduling
@njit(cache=True, inline="always", error_model="numpy")
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
        kt = ri[q[t, qh[t]], KEY]
        kb = ri[q[best, qh[best]], KEY]
        if priority:
            if tf[TF_PRIO, t] > tf[TF_PRIO, best] or (tf[TF_PRIO, t] == tf[TF_PRIO, best] and kt < kb):
                best = t
        elif kt < kb:
            best = t
    return best


@njit(cache=True, inline="always", error_model="numpy")
def _decide(ri, rf, tf, rid, outcome, ev, ev_n):
    if ri[rid, SLO] == SLO_OPEN:
        ri[rid, SLO] = outcome
        ev[EV_DECIDED, ev_n[EV_DECIDED]] = rid
        ev_n[EV_DECIDED] += 1


@njit(cache=True, inline="always", error_model="numpy")
def _abandon_expired(ri, rf, q, qh, ql, tf, nd, si, clock, cnt, ev, ev_n):
    """Clients give up: a queue head that never got a first token and has waited longer than its
    tenant's patience (TF_TIMEOUT_S) is withdrawn, as vLLM aborts a request whose client closed
    the connection. Queues are in arrival order behind any preempted requests, so checking heads
    each iteration withdraws every expired request that could otherwise be admitted."""
    for t in range(ql.shape[0]):
        while ql[t] > 0:
            rid = q[t, qh[t]]
            if rf[rid, FIRST] == rf[rid, FIRST] or clock - rf[rid, ARR] <= tf[TF_TIMEOUT_S, t]:
                break
            _pop_front(q, qh, ql, t)
            ri[rid, STATUS] = ABANDONED
            _disown(ri, nd, si, rid)
            rf[rid, FINISH] = clock
            cnt[W_ABANDONED] += 1.0
            ev[EV_ABANDONED, ev_n[EV_ABANDONED]] = rid
            ev_n[EV_ABANDONED] += 1
            _decide(ri, rf, tf, rid, SLO_MISSED, ev, ev_n)


@njit(cache=True, inline="always", error_model="numpy")
def _blocks_for(tokens, bt):
    return (tokens + bt - 1) // bt


@njit(cache=True, inline="always", error_model="numpy")
def _victim(ri, rf, si, run, tf, priority):
    """Position in the running list of the request vLLM V1 preempts: the last one (FCFS) or, under
    priority routing, the lowest-priority one, the latest arrival among them (the first listed
    on an exact tie), as V1's max(running, key=(priority, arrival_time))."""
    nrun = si[S_NRUN]
    if not priority:
        return nrun - 1
    pos = 0
    for j in range(1, nrun):
        a = run[j]
        b = run[pos]
        pa = tf[TF_PRIO, ri[a, TEN]]
        pb = tf[TF_PRIO, ri[b, TEN]]
        if pa < pb or (pa == pb and rf[a, ARR] > rf[b, ARR]):
            pos = j
    return pos


@njit(cache=True, inline="always", error_model="numpy")
def _preempt_one(ri, rf, si, run, q, qh, ql, tf, priority, cnt, prm, nd, ht, stack, kptr, keys):
    """Preempt (by recompute) the running request vLLM would (see _victim). Its blocks return to
    the free queue, still cached (prefix caching); it goes back to the front of its queue.
    Returns its position in the running list (which it leaves)."""
    nrun = si[S_NRUN]
    pos = _victim(ri, rf, si, run, tf, priority)
    rid = run[pos]
    for j in range(pos, nrun - 1):
        run[j] = run[j + 1]
    si[S_NRUN] = nrun - 1
    _release(ri, nd, ht, stack, si, kptr, keys, rid, np.int64(prm[P_BLOCK_TOKENS]), prm[P_PREFIX_CACHING] != 0.0)
    ri[rid, TARGET] = ri[rid, PROMPT] + ri[rid, GEN]
    ri[rid, DONE] = 0
    ri[rid, STATUS] = WAITING
    ri[rid, NPRE] += 1
    si[S_PRE_CTR] += 1
    ri[rid, KEY] = -si[S_PRE_CTR]
    _push_front(q, qh, ql, ri[rid, TEN], rid)
    cnt[W_EVICT] += 1.0
    return pos


@njit(cache=True, inline="always", error_model="numpy")
def _try_admit(ri, rf, si, run, q, qh, ql, tf, priority, bt, token_room, chunk_room, clock, cnt, ev, ev_n,
               nd, ht, stack, kptr, keys, caching):
    """Admit the next queue head if its blocks fit above the watermark.

    Heads that can never fit (more blocks than capacity less watermark) are rejected (the pool's
    budget caps the model length, as vLLM refuses requests longer than its max_model_len). The
    head reuses its longest cached prefix (and, after a preemption, its own cached blocks): those
    tokens count as computed, at most its tokens less one (the last position is always computed).
    With `chunk_room` > 0 (chunked prefill, vLLM V1) it needs new blocks for its first chunk only;
    otherwise (prefill-first, vLLM V0) for its whole prompt. Cached blocks no one holds come out of
    the free queue, so they count against it. A head whose tokens still to compute exceed
    `token_room` (>= 0) is not admitted. Returns the admitted id or -1."""
    while True:
        t = _pick_tenant(ri, q, qh, ql, tf, priority)
        if t < 0:
            return -1
        rid = q[t, qh[t]]
        if _blocks_for(ri[rid, TARGET], bt) > si[S_CAP] - si[S_WATERMARK]:
            _pop_front(q, qh, ql, t)
            ri[rid, STATUS] = REJECTED
            _disown(ri, nd, si, rid)
            rf[rid, FINISH] = clock
            cnt[W_REJECTED] += 1.0
            _decide(ri, rf, tf, rid, SLO_MISSED, ev, ev_n)
            continue
        limit = (ri[rid, TARGET] - 1) // bt
        m = 0  # the cached chain
        m_free = 0  # of which no one holds (they leave the free queue)
        if caching:
            base = kptr[rid]
            nk = kptr[rid + 1] - base
            while m < nk and m < limit:
                node = ht_find(ht, keys[base + m])
                if node < 0:
                    break
                if nd[node, ND_REF] == 0:
                    m_free += 1
                m += 1
        own = 0
        if ri[rid, OWN_NODE] >= 0 and ri[rid, OWN_START] == m:
            own = nd[ri[rid, OWN_NODE], ND_COUNT]
        hit = (m + own) * bt
        if token_room >= 0 and ri[rid, TARGET] - hit > token_room:
            return -1
        upto = ri[rid, TARGET] if chunk_room <= 0 else min(ri[rid, TARGET], hit + chunk_room)
        need = _blocks_for(upto, bt)
        new = need - m - own
        if si[S_FREE] - (new + m_free + own) < si[S_WATERMARK]:
            return -1
        # ---- admit ----
        _pop_front(q, qh, ql, t)
        base = kptr[rid]
        for j in range(m):
            node = ht_find(ht, keys[base + j])
            if nd[node, ND_REF] == 0:
                _fq_remove(nd, si, node)
                si[S_FREE] -= 1
                si[S_CACHED] -= 1
            nd[node, ND_REF] += 1
        node = ri[rid, OWN_NODE]
        if own > 0:
            _fq_remove(nd, si, node)
            si[S_FREE] -= own
            si[S_CACHED] -= own
            _node_free(nd, stack, si, node)
            ri[rid, OWN_NODE] = -1
            ri[rid, OWN_START] = 0
        else:
            _disown(ri, nd, si, rid)  # its own blocks no longer follow its cached chain
        _fq_take(ri, nd, ht, stack, si, new)
        ri[rid, BLOCKS] = need
        ri[rid, NSH] = m
        ri[rid, FROZEN] = 0
        ri[rid, DONE] = hit
        ri[rid, STATUS] = RUNNING
        if ri[rid, ADMIT] == 0:  # a first admission: the prompt's own cache hit
            ri[rid, HIT] = hit
            cnt[W_ADMIT_PROMPT_TOK] += float(ri[rid, PROMPT])
            cnt[W_HIT_TOK] += float(hit)
        si[S_ADMIT_CTR] += 1
        ri[rid, ADMIT] = si[S_ADMIT_CTR]
        run[si[S_NRUN]] = rid
        si[S_NRUN] += 1
        return rid


@njit(cache=True, inline="always", error_model="numpy")
def _grow(ri, rf, si, run, q, qh, ql, tf, priority, cnt, prm, nd, ht, stack, kptr, keys, rid, j, tokens):
    """Give running request `rid` blocks for `tokens`, preempting while the pool is short. For a
    caller walking the running list at position j (the next to visit), returns j adjusted for
    requests before it that left (pass j = 0 when not walking). The request may itself be the
    victim (then it holds nothing)."""
    bt = np.int64(prm[P_BLOCK_TOKENS])
    if tokens <= ri[rid, BLOCKS] * bt:
        return j
    extra = _blocks_for(tokens, bt) - ri[rid, BLOCKS]
    while si[S_FREE] < extra and ri[rid, STATUS] == RUNNING:
        pos = _preempt_one(ri, rf, si, run, q, qh, ql, tf, priority, cnt, prm, nd, ht, stack, kptr, keys)
        if pos < j:  # the list shifted left under us
            j -= 1
    if ri[rid, STATUS] == RUNNING:
        _fq_take(ri, nd, ht, stack, si, extra)
        ri[rid, BLOCKS] += extra
    return j


@njit(cache=True, inline="always", error_model="numpy")
def _grow_decodes(ri, rf, si, run, q, qh, ql, tf, priority, k, cnt, prm, nd, ht, stack, kptr, keys):
    """Give every decode-ready running request the blocks its next pass needs (context + k draft
    slots), oldest first, preempting when the pool is exhausted."""
    bt = np.int64(prm[P_BLOCK_TOKENS])
    j = 0
    while j < si[S_NRUN]:
        rid = run[j]
        j += 1
        if ri[rid, DONE] < ri[rid, TARGET]:
            continue
        tokens = ri[rid, PROMPT] + ri[rid, GEN] + k
        if tokens <= ri[rid, BLOCKS] * bt:  # the common case: the last block has room
            continue
        j = _grow(ri, rf, si, run, q, qh, ql, tf, priority, cnt, prm, nd, ht, stack, kptr, keys, rid, j, tokens)


@njit(cache=True, inline="always", error_model="numpy")
def _finish(ri, rf, si, tf, rid, ts, ev, ev_n, nd, ht, stack, kptr, keys, bt):
    """A request's last token, delivered to its client at `ts`: its blocks go back, still cached."""
    rf[rid, FINISH] = ts
    ri[rid, STATUS] = FINISHED
    _release(ri, nd, ht, stack, si, kptr, keys, rid, bt, False)
    ev[EV_FINISHED, ev_n[EV_FINISHED]] = rid
    ev_n[EV_FINISHED] += 1
    t = ri[rid, TEN]
    ok = rf[rid, FIRST] - rf[rid, ARR] <= tf[TF_TTFT_S, t]
    if ri[rid, OUT] > 1:
        ok = ok and (rf[rid, FINISH] - rf[rid, FIRST]) / (ri[rid, OUT] - 1) <= tf[TF_TPOT_S, t]
    _decide(ri, rf, tf, rid, SLO_MET if ok else SLO_MISSED, ev, ev_n)


@njit(cache=True, inline="always", error_model="numpy")
def _emit(ri, rf, si, tf, rid, n_tokens, ts, ev, ev_n, itl, edges, last_gap, last_bin):
    """Deliver n_tokens (>= 1) to a request's client at ts. (last_gap, last_bin) is the last gap
    binned, returned updated: in a decode pass most requests share the same gap, so the histogram
    search is mostly skipped."""
    t = ri[rid, TEN]
    if ri[rid, GEN] == 0 and rf[rid, FIRST] != rf[rid, FIRST]:  # first token (FIRST is NaN)
        rf[rid, FIRST] = ts
        ev[EV_FIRST, ev_n[EV_FIRST]] = rid
        ev_n[EV_FIRST] += 1
        if ts - rf[rid, ARR] > tf[TF_TTFT_S, t]:
            _decide(ri, rf, tf, rid, SLO_MISSED, ev, ev_n)
    else:
        gap = 1e3 * (ts - rf[rid, LAST])
        if gap != last_gap:
            last_gap = gap
            last_bin = _hist_bin(edges, gap)
        itl[t, last_bin] += 1
    rf[rid, LAST] = ts
    ri[rid, GEN] += n_tokens
    return last_gap, last_bin


@njit(cache=True, error_model="numpy")
def resize_pool(ri, rf, si, run, q, qh, ql, tf, priority, cnt, prm, nd, ht, stack, kptr, keys):
    """Bring the pool to S_CAP_NEXT blocks: new empty blocks go to the free queue's head (used
    first); removed ones come from its head, preempting until the held blocks fit."""
    delta = si[S_CAP_NEXT] - si[S_CAP]
    if delta > 0:
        node = _node_new(nd, stack, si, KIND_RUN)
        nd[node, ND_COUNT] = delta
        _fq_prepend(nd, si, node)
        si[S_FREE] += delta
        si[S_CAP] += delta
    elif delta < 0:
        while si[S_FREE] < -delta and si[S_NRUN] > 0:
            _preempt_one(ri, rf, si, run, q, qh, ql, tf, priority, cnt, prm, nd, ht, stack, kptr, keys)
        _fq_take(ri, nd, ht, stack, si, -delta)
        si[S_CAP] += delta


@njit(cache=True, error_model="numpy", nogil=True)
def run_window(t_end, batch_cap, k, split, priority, c, prm, seed, tf,
               ri, rf, si, sf, run, q, qh, ql, cnt, ev, ev_n, itl, edges, pf_ids, pf_chunk, oldest_arr,
               nd, ht, stack, kptr, keys):
    """Simulate from sf[0] (the clock) until the clock reaches t_end (the last iteration may end
    after it). Counters and events of the window accumulate into cnt, ev/ev_n and itl."""
    bt = np.int64(prm[P_BLOCK_TOKENS])
    caching = prm[P_PREFIX_CACHING] != 0.0
    api = prm[P_API_S]
    max_len = np.int64(prm[P_MAX_MODEL_LEN])
    last_gap = -1.0
    last_bin = np.int64(0)
    n_req = ri.shape[0]
    resize_pool(ri, rf, si, run, q, qh, ql, tf, priority, cnt, prm, nd, ht, stack, kptr, keys)
    while True:
        clock = sf[0]
        # ---- arrivals (a prompt longer than the model's context is refused at once, as vLLM does) ----
        while si[S_NEXT] < n_req and rf[si[S_NEXT], ARR] <= clock:
            rid = si[S_NEXT]
            si[S_NEXT] += 1
            cnt[W_ARRIVED] += 1.0
            if ri[rid, PROMPT] > max_len:
                ri[rid, STATUS] = REJECTED
                rf[rid, FINISH] = rf[rid, ARR]
                cnt[W_REJECTED] += 1.0
                _decide(ri, rf, tf, rid, SLO_MISSED, ev, ev_n)
                continue
            ri[rid, STATUS] = WAITING
            ri[rid, KEY] = rid
            _push_back(q, qh, ql, ri[rid, TEN], rid)
        if clock >= t_end:
            break
        _abandon_expired(ri, rf, q, qh, ql, tf, nd, si, clock, cnt, ev, ev_n)
        # ---- schedule ----
        n_pf = 0
        pf_tokens = 0
        prefill_only = False
        n_dec = 0  # decoding sequences in this iteration
        kv = 0.0  # their context tokens (KV read by decode attention)
        if split:
            # chunked prefill (Sarathi-Serve; vLLM V1's KV allocation): decodes first, then the
            # running prefills' next chunks, then admissions, each allocating the blocks of the
            # tokens it computes, preempting when the pool is short
            evictions = cnt[W_EVICT]
            # one pass: grow the decodes' blocks, count them, list the unfinished prefills in running
            # order; a preemption on the way shifts the list, and then the counting pass is redone
            n_cand = 0
            j = 0
            while j < si[S_NRUN]:
                rid = run[j]
                j += 1
                if ri[rid, DONE] < ri[rid, TARGET]:
                    pf_ids[n_cand] = rid
                    n_cand += 1
                    continue
                tokens = ri[rid, PROMPT] + ri[rid, GEN] + k
                if tokens > ri[rid, BLOCKS] * bt:
                    j = _grow(ri, rf, si, run, q, qh, ql, tf, priority, cnt, prm, nd, ht, stack, kptr, keys, rid, j,
                              tokens)
                n_dec += 1
                kv += float(tokens - k)
            if cnt[W_EVICT] != evictions:
                n_dec, kv, n_cand = _recount(ri, si, run, pf_ids, True)
            room = np.int64(prm[P_CHUNK_BUDGET]) - n_dec * (1 + k)
            before = cnt[W_EVICT]
            for ci in range(n_cand):  # chunks are written back into pf_ids at n_pf <= ci
                if room <= 0:
                    break
                rid = pf_ids[ci]
                if ri[rid, STATUS] != RUNNING:
                    continue  # preempted for an earlier chunk
                ch = min(ri[rid, TARGET] - ri[rid, DONE], room)
                _grow(ri, rf, si, run, q, qh, ql, tf, priority, cnt, prm, nd, ht, stack, kptr, keys, rid, 0,
                      ri[rid, DONE] + ch)
                if ri[rid, STATUS] != RUNNING:
                    break  # it was its own victim: nothing more is scheduled (vLLM V1)
                pf_ids[n_pf] = rid
                pf_chunk[n_pf] = ch
                n_pf += 1
                room -= ch
            if cnt[W_EVICT] != before:  # chunks preempted victims: drop theirs, recount the decodes
                m = 0
                for j in range(n_pf):
                    if ri[pf_ids[j], STATUS] == RUNNING:
                        pf_ids[m] = pf_ids[j]
                        pf_chunk[m] = pf_chunk[j]
                        m += 1
                n_pf = m
                n_dec, kv, _ = _recount(ri, si, run, pf_ids, False)
            if cnt[W_EVICT] == evictions:  # vLLM V1 admits nobody in a step that preempted
                while room > 0 and si[S_NRUN] < batch_cap:
                    rid = _try_admit(ri, rf, si, run, q, qh, ql, tf, priority, bt, -1, room, clock, cnt, ev, ev_n,
                                     nd, ht, stack, kptr, keys, caching)
                    if rid < 0:
                        break
                    ch = min(ri[rid, TARGET] - ri[rid, DONE], room)
                    pf_ids[n_pf] = rid
                    pf_chunk[n_pf] = ch
                    n_pf += 1
                    room -= ch
        else:
            # prefill-first (vLLM V0): unfinished prompts (left by a switch from chunked prefill)
            # complete in one iteration and need all their blocks; admissions hold whole prompts
            budget = np.int64(prm[P_PREFILL_BUDGET])
            j = 0
            while j < si[S_NRUN]:
                rid = run[j]
                j += 1
                if ri[rid, DONE] < ri[rid, TARGET]:
                    j = _grow(ri, rf, si, run, q, qh, ql, tf, priority, cnt, prm, nd, ht, stack, kptr, keys, rid, j,
                              ri[rid, TARGET])
                    if ri[rid, STATUS] == RUNNING:
                        pf_ids[n_pf] = rid
                        pf_chunk[n_pf] = ri[rid, TARGET] - ri[rid, DONE]
                        n_pf += 1
            m = 0
            for j in range(n_pf):
                if ri[pf_ids[j], STATUS] == RUNNING:
                    pf_ids[m] = pf_ids[j]
                    pf_chunk[m] = pf_chunk[j]
                    pf_tokens += pf_chunk[j]
                    m += 1
            n_pf = m
            while si[S_NRUN] < batch_cap:
                room = budget - pf_tokens if n_pf > 0 else -1
                if n_pf > 0 and room <= 0:
                    break
                rid = _try_admit(ri, rf, si, run, q, qh, ql, tf, priority, bt, room, -1, clock, cnt, ev, ev_n,
                                 nd, ht, stack, kptr, keys, caching)
                if rid < 0:
                    break
                pf_ids[n_pf] = rid
                pf_chunk[n_pf] = ri[rid, TARGET] - ri[rid, DONE]
                pf_tokens += pf_chunk[n_pf]
                n_pf += 1
            prefill_only = n_pf > 0
            if not prefill_only:
                _grow_decodes(ri, rf, si, run, q, qh, ql, tf, priority, k, cnt, prm, nd, ht, stack, kptr, keys)
                for j in range(si[S_NRUN]):
                    rid = run[j]
                    n_dec += 1
                    kv += float(ri[rid, PROMPT] + ri[rid, GEN])
        # ---- price the batch ----
        lin = 0.0
        sampled = 0.0
        pairs = 0.0
        for j in range(n_pf):
            rid = pf_ids[j]
            ch = float(pf_chunk[j])
            lin += ch
            pairs += ch * (float(ri[rid, DONE]) + (ch + 1.0) / 2.0)
            if ri[rid, DONE] + pf_chunk[j] >= ri[rid, TARGET]:
                sampled += 1.0
        q_tok = float(n_dec * (1 + k))
        lin += q_tok
        sampled += q_tok
        if lin == 0.0:
            # ---- idle: jump to the next arrival ----
            nxt = t_end
            if si[S_NEXT] < n_req and rf[si[S_NEXT], ARR] < t_end:
                nxt = rf[si[S_NEXT], ARR]
            sf[0] = max(clock, nxt)
            continue
        dt = _iteration_s(c, lin, sampled, pairs, kv, kv * (1.0 + k), float(n_dec + n_pf))
        if k > 0 and n_dec > 0:
            dt += k * _cm.draft_step_s(c, float(n_dec), kv, prm[P_DRAFT_RATIO])
        t1 = clock + dt
        ts = t1 + api  # when the client sees what this iteration produced
        cnt[W_ITERS] += 1.0
        cnt[W_BUSY_S] += dt
        if dt > cnt[W_MAX_ITER_S]:
            cnt[W_MAX_ITER_S] = dt
        if prefill_only:
            cnt[W_PREFILL_ITERS] += 1.0
        cnt[W_KV_BLOCK_S] += float(si[S_CAP] - si[S_FREE]) * dt
        cnt[W_CACHED_BLOCK_S] += float(si[S_CACHED]) * dt
        # ---- emit tokens and retire finished requests, keeping admission order ----
        # Chunks are listed in running order, so one pointer walks them alongside.
        p = 0
        m = 0
        prefill_tok = 0.0  # summed here, added to the counters once (stores in the loop cost reloads)
        decode_tok = 0.0
        for j in range(si[S_NRUN]):
            rid = run[j]
            computed = False
            if p < n_pf and pf_ids[p] == rid:
                ch = pf_chunk[p]
                p += 1
                ri[rid, DONE] += ch
                prefill_tok += float(ch)
                computed = True
                if ri[rid, DONE] >= ri[rid, TARGET]:
                    decode_tok += 1.0
                    last_gap, last_bin = _emit(ri, rf, si, tf, rid, 1, ts, ev, ev_n, itl, edges, last_gap, last_bin)
            elif not prefill_only and ri[rid, DONE] >= ri[rid, TARGET]:
                computed = True
                ntok = 1
                if k > 0:
                    a = tf[TF_ACC0, ri[rid, TEN]] * prm[P_HALF_CTX] / (
                        prm[P_HALF_CTX] + float(ri[rid, PROMPT] + ri[rid, GEN]))
                    for d in range(k):
                        u = uniform(seed, rid, ri[rid, DRAWS])
                        ri[rid, DRAWS] += 1
                        if u < a:
                            ntok += 1
                        else:
                            break
                    cnt[W_SPEC_PROPOSED] += float(k)
                    cnt[W_SPEC_ACCEPTED] += float(ntok - 1)
                ntok = min(ntok, ri[rid, OUT] - ri[rid, GEN])
                decode_tok += float(ntok)
                last_gap, last_bin = _emit(ri, rf, si, tf, rid, ntok, ts, ev, ev_n, itl, edges, last_gap,
                                            last_bin)
            if computed and caching and ri[rid, FROZEN] == 0 and ri[rid, NSH] < kptr[rid + 1] - kptr[rid]:
                _register(ri, nd, ht, stack, si, kptr, keys, rid, bt)
            if ri[rid, GEN] >= ri[rid, OUT]:
                _finish(ri, rf, si, tf, rid, ts, ev, ev_n, nd, ht, stack, kptr, keys, bt)
            else:
                run[m] = rid
                m += 1
        cnt[W_PREFILL_TOK] += prefill_tok
        cnt[W_DECODE_TOK] += decode_tok
        si[S_NRUN] = m
        sf[0] = t1
    # ---- requests without a first token past their TTFT SLO are misses now ----
    # (the same pass sums the prompt tokens still waiting and finds each tenant's oldest arrival
    # among them, for observers)
    clock = sf[0]
    pend_sum = 0
    pend_max = 0
    for t in range(ql.shape[0]):
        oldest_arr[t] = np.inf
        for j in range(ql[t]):
            rid = q[t, (qh[t] + j) % q.shape[1]]
            oldest_arr[t] = min(oldest_arr[t], rf[rid, ARR])
            pend_sum += ri[rid, TARGET]
            pend_max = max(pend_max, ri[rid, TARGET])
            if rf[rid, FIRST] != rf[rid, FIRST] and clock - rf[rid, ARR] > tf[TF_TTFT_S, t]:
                _decide(ri, rf, tf, rid, SLO_MISSED, ev, ev_n)
    si[S_PEND_SUM] = pend_sum
    si[S_PEND_MAX] = pend_max
    for j in range(si[S_NRUN]):
        rid = run[j]
        if rf[rid, FIRST] != rf[rid, FIRST] and clock - rf[rid, ARR] > tf[TF_TTFT_S, ri[rid, TEN]]:
            _decide(ri, rf, tf, rid, SLO_MISSED, ev, ev_n)


@functools.cache
def announce_compilation() -> None:
    """Say so, once a process, when the kernel is about to be compiled rather than loaded from numba's
    on-disk cache (``cache=True``): the first run after installing or changing the package takes
    tens of seconds, later runs load the compiled kernel in a fraction of a second. The check reads
    numba's cache index; should numba's internals change, nothing is printed."""
    try:
        cached = bool(run_window.signatures) or bool(run_window._cache._cache_file._load_index())
        where = run_window._cache._cache_path
    except Exception:  # noqa: BLE001 - numba's private cache API; a missing message is harmless
        return
    if not cached:
        print(f"igym_marl: compiling the simulator's kernel (first run only, about a minute; cached in {where})",
              file=sys.stderr, flush=True)
