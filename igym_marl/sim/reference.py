"""The reference implementation: the scheduling rules written plainly, with request objects.

This is the specification of the engine's behaviour; the numba kernel (engine.py) must give the
same results, and the tests check that it does. It is slow (pure Python) and meant for tests and
for reading.

One scheduling step (vLLM-style, iteration-level):

1. Requests that have arrived join the back of their tenant's queue. A queue head that has had
   no first token and has waited longer than its tenant's ``timeout_s`` is withdrawn by its
   client (abandoned, an SLO miss), heads checked every iteration.
2. **Chunked prefill** (``prefill_decode_split=True``, Sarathi-Serve, with vLLM V1's KV
   allocation): every running request past its prefill decodes (1 + k query tokens with
   speculation depth k); its KV grows to hold prompt + generated + k tokens, oldest request
   first, preempting when the pool is short. The remaining token budget (``chunk_token_budget``
   less the decode tokens) goes to the unfinished prefills of running requests, in running
   order, each chunk allocating the blocks of the tokens it computes (preempting when short; a
   request that is its own victim ends the pass), then, if nobody was preempted in this
   iteration, to newly admitted requests, whose first chunk is all they need blocks for.
   **Prefill-first** (``False``, vLLM V0 default): if any prompt can run (unfinished prefills,
   then admissions while the prompt tokens fit in ``prefill_token_budget``, a single longer prompt
   alone), the iteration is prefill-only and every decode stalls; otherwise all decode. Admission
   needs blocks for the whole prompt.
3. Admission takes the queue head chosen by FCFS (smallest key: arrival order, preempted
   requests in front) or, under priority routing, the highest-priority tenant's head, with
   ``watermark`` blocks left free and ``batch_cap`` running sequences at most. A head whose
   prompt could never fit the pool is rejected (and has missed its SLO).
4. Preemption is by recompute (vLLM V1): the victim (the last in the running list; under
   priority routing the lowest-priority one, latest arrival among them) frees its blocks and
   returns to the front of its queue; it must prefill its prompt plus the tokens generated so far
   again.
5. **The KV pool and its prefix cache** (``prefix_caching``, vLLM V1's automatic prefix caching).
   Every block is explicit here. The free blocks form a queue in LRU order; allocation takes
   blocks from its head and evicts the KV they held. A computed full block whose position has a
   workload key is registered under it, unless a block with that key already exists (then the
   request registers nothing more this admission: its copy stays its own). A released request
   appends its blocks at the tail, its tail first: its own uncomputed or partial blocks, then (when
   preempted) its own computed blocks, still reusable by it alone, then its keyed blocks, last
   first, each as its last user lets go of it. Admission walks the request's keys from its first
   block and reuses the longest chain it finds (no compute; a block no one holds leaves the free
   queue), at most its tokens less one; then, if its own cached blocks start exactly where that
   chain ends, those too (otherwise it forgets them). Shrinking the budget takes blocks from the
   queue's head (preempting until the held blocks fit); growing it puts empty blocks at the head.
6. The batch is priced by the cost model (plus k draft-model steps, each ``draft_cost_ratio`` of a
   decode step's GPU time plus a full engine step's CPU overhead) and the clock advances. A prefill that completes delivers one token; each decode pass
   delivers 1 + the accepted draft tokens (each accepted in turn with probability
   a = a0 x H / (H + context), H = ``acceptance_half_context``), capped at the output length.
"""

from __future__ import annotations

import copy
from collections import OrderedDict, deque
from dataclasses import dataclass

import numpy as np

from . import cost_model as cm
from .layout import (ABANDONED, ADMIT, BLOCKS, DONE, DRAWS, EV_ABANDONED, EV_DECIDED, EV_FINISHED, EV_FIRST, FINISH,
                     FINISHED, FIRST, FROZEN, GEN, HIT, KEY, LAST, NPRE, NSH, OWN_NODE, OWN_START, REJECTED, RUNNING,
                     S_ADMIT_CTR, S_CACHED, S_CAP, S_CAP_NEXT, S_FREE, S_NEXT, S_NRUN, S_PEND_MAX, S_PEND_SUM,
                     S_PRE_CTR, S_WATERMARK, SLO, SLO_MET, SLO_MISSED, SLO_OPEN, STATUS, TARGET, W_ABANDONED,
                     W_ADMIT_PROMPT_TOK, W_ARRIVED, W_BUSY_S, W_CACHED_BLOCK_S, W_DECODE_TOK, W_EVICT, W_HIT_TOK,
                     W_ITERS, W_KV_BLOCK_S, W_MAX_ITER_S, W_PREFILL_ITERS, W_PREFILL_TOK, W_REJECTED,
                     W_SPEC_ACCEPTED, W_SPEC_PROPOSED, WAITING)
from .simulator import Simulator
from .types import Knobs

MASK = (1 << 64) - 1


def uniform(seed: int, rid: int, draw: int) -> float:
    """splitmix64 of (seed, request, draw) -> [0, 1); the same stream as the fast kernel."""
    z = (seed ^ ((rid * 0xBF58476D1CE4E5B9) & MASK) ^ ((draw * 0x94D049BB133111EB) & MASK)) & MASK
    z = (z + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    z = z ^ (z >> 31)
    return (z >> 11) * (1.0 / 9007199254740992.0)


@dataclass
class Request:
    rid: int
    tenant: int
    arrival_s: float
    prompt: int
    output: int
    status: int = 0
    target: int = 0  # tokens the current prefill must compute (prompt, + generated after preemption)
    done: int = 0  # prefill tokens computed so far
    generated: int = 0
    first_s: float = float("nan")
    finish_s: float = float("nan")
    last_s: float = float("nan")
    admit: int = 0
    preemptions: int = 0
    slo: int = SLO_OPEN
    key: int = 0
    draws: int = 0
    keys: tuple = ()  # the workload's keys of its blocks, in order
    table: list = None  # the blocks it holds, in order (its first nsh are keyed)
    nsh: int = 0
    frozen: bool = False
    own_start: int | None = None  # after a preemption: where its own cached blocks begin
    hit: int = 0  # prompt tokens its first admission found cached

    def __post_init__(self):
        self.table = []

    @property
    def blocks(self) -> int:
        return len(self.table)

    @property
    def decoding(self) -> bool:
        return self.done >= self.target


class ReferenceSimulator(Simulator):
    """Same API and results as :class:`Simulator`, computed by the plain-Python rules above."""

    def reset(self, workload, seed=None, knobs: Knobs | None = None) -> None:
        super().reset(workload, seed, knobs)
        self.reqs = [Request(i, int(workload.tenant[i]), float(workload.arrival_s[i]), int(workload.prompt_tokens[i]),
                             int(self.ri[i, 1]), target=int(workload.prompt_tokens[i]),
                             keys=tuple(int(k) for k in workload.keys_of(i)))
                     for i in range(len(workload))]
        self.queues = [deque() for _ in workload.tenants]
        self.running: list[Request] = []
        self.next_arrival = 0
        self.admit_ctr = 0
        self.preempt_ctr = 0
        # the pool, block by block: the free queue (LRU order), what each block holds, who uses it
        self.fq: OrderedDict = OrderedDict((b, None) for b in range(int(self.si[S_CAP])))
        self.reserve = list(range(int(self.si[S_CAP]), self.max_blocks))
        self.holds: dict[int, tuple] = {}  # block -> ("s", key) or ("p", rid, j)
        self.cache: dict[tuple, int] = {}  # ("s", key) / ("p", rid, j) -> block
        self.refs: dict[int, int] = {}  # keyed block -> requests holding it
        self.capacity = int(self.si[S_CAP])

    def add_requests(self, arrival_s, prompt_tokens, output_tokens, tenant, key_ptr=None, block_keys=None):
        rows = super().add_requests(arrival_s, prompt_tokens, output_tokens, tenant, key_ptr, block_keys)
        if rows.size:
            del self.reqs[int(rows[0]):]  # clone_with_future drops the requests not yet arrived
        for i in rows:
            i = int(i)
            self.reqs.append(Request(i, int(self.ri[i, 2]), float(self.rf[i, 0]), int(self.ri[i, 0]),
                                     int(self.ri[i, 1]), target=int(self.ri[i, 0]),
                                     keys=tuple(int(k) for k in self.keys[self.kptr[i]:self.kptr[i + 1]])))
        return rows

    def clone(self) -> "ReferenceSimulator":
        new = super().clone()
        memo: dict = {}  # one memo: a request in a queue and in the running list stays one object
        for name in ("reqs", "queues", "running", "fq", "reserve", "holds", "cache", "refs"):
            setattr(new, name, copy.deepcopy(getattr(self, name), memo))
        return new

    # ------------------------------------------------------------------ rules
    def _prio(self, r: Request) -> float:
        return self.workload.tenants[r.tenant].priority

    def _decide(self, r: Request, outcome: int) -> None:
        if r.slo == SLO_OPEN:
            r.slo = outcome
            self._events[EV_DECIDED].append(r.rid)

    def _blocks(self, tokens: int) -> int:
        return -(-tokens // self.config.block_tokens)

    # ---- the pool
    def _evict_head(self) -> int:
        b, _ = self.fq.popitem(last=False)
        held = self.holds.pop(b, None)
        if held is not None:
            del self.cache[held]
            self.refs.pop(b, None)
        return b

    def _cached_free(self) -> int:
        """Free blocks that still hold reusable KV: every block holding a key, but the keyed ones in use."""
        return len(self.holds) - sum(1 for n in self.refs.values() if n > 0)

    def _take(self, k: int) -> list[int]:
        return [self._evict_head() for _ in range(k)]

    def _computed(self, r: Request) -> int:
        return r.done if not r.decoding else r.prompt + r.generated - 1

    def _release(self, r: Request, cache_own: bool) -> None:
        bt = self.config.block_tokens
        own = r.table[r.nsh:]
        cached = max(0, min(self._computed(r) // bt, len(r.table)) - r.nsh) if cache_own else 0
        for b in own[cached:]:
            self.fq[b] = None
        for j in range(cached - 1, -1, -1):
            b = own[j]
            held = ("p", r.rid, r.nsh + j)
            self.holds[b] = held
            self.cache[held] = b
            self.fq[b] = None
        r.own_start = r.nsh if cached else None
        for b in reversed(r.table[: r.nsh]):
            self.refs[b] -= 1
            if self.refs[b] == 0:
                self.fq[b] = None
        r.table, r.nsh, r.frozen = [], 0, False

    def _disown(self, r: Request) -> None:
        if r.own_start is not None:
            j = r.own_start
            while ("p", r.rid, j) in self.cache:
                self.holds.pop(self.cache.pop(("p", r.rid, j)))
                j += 1
            r.own_start = None

    def _register(self, r: Request) -> None:
        bt = self.config.block_tokens
        top = min(min(self._computed(r) // bt, len(r.table)), len(r.keys))
        while r.nsh < top:
            key = ("s", r.keys[r.nsh])
            if key in self.cache:
                r.frozen = True
                return
            b = r.table[r.nsh]
            self.cache[key] = b
            self.holds[b] = key
            self.refs[b] = 1
            r.nsh += 1

    def _resize(self, target: int) -> None:
        if target > self.capacity:
            new = [self.reserve.pop() for _ in range(target - self.capacity)]
            for b in reversed(new):
                self.fq[b] = None
                self.fq.move_to_end(b, last=False)
        elif target < self.capacity:
            while len(self.fq) < self.capacity - target and self.running:
                self._preempt()
            self.reserve.extend(self._take(self.capacity - target))
        self.capacity = target

    def _preempt(self) -> None:
        victim = self.running[-1]
        if self._priority:
            victim = self.running[0]
            for r in self.running[1:]:
                if self._prio(r) < self._prio(victim) or (
                        self._prio(r) == self._prio(victim) and r.arrival_s > victim.arrival_s):
                    victim = r
        self.running.remove(victim)
        self._release(victim, self.config.prefix_caching)
        victim.target = victim.prompt + victim.generated
        victim.done = 0
        victim.status = WAITING
        victim.preemptions += 1
        self.preempt_ctr += 1
        victim.key = -self.preempt_ctr
        self.queues[victim.tenant].appendleft(victim)
        self.cnt[W_EVICT] += 1

    def _next_tenant(self):
        heads = [(t, q[0]) for t, q in enumerate(self.queues) if q]
        if not heads:
            return None
        if self._priority:
            return min(heads, key=lambda th: (-self._prio(th[1]), th[1].key))[0]
        return min(heads, key=lambda th: th[1].key)[0]

    def _abandon_expired(self, clock: float) -> None:
        """Withdraw queue heads that waited past their tenant's patience without a first token."""
        for t, q in enumerate(self.queues):
            timeout = self.workload.tenants[t].timeout_s
            while q and np.isnan(q[0].first_s) and clock - q[0].arrival_s > timeout:
                r = q.popleft()
                r.status = ABANDONED
                self._disown(r)
                r.finish_s = clock
                self.cnt[W_ABANDONED] += 1
                self._events[EV_ABANDONED].append(r.rid)
                self._decide(r, SLO_MISSED)

    def _admit(self, clock: float, token_room: int | None, chunk_room: int | None):
        bt = self.config.block_tokens
        while True:
            t = self._next_tenant()
            if t is None:
                return None
            r = self.queues[t][0]
            if self._blocks(r.target) > self.capacity - self.watermark:
                self.queues[t].popleft()
                r.status = REJECTED
                self._disown(r)
                r.finish_s = clock
                self.cnt[W_REJECTED] += 1
                self._decide(r, SLO_MISSED)
                continue
            limit = (r.target - 1) // bt
            chain = []
            if self.config.prefix_caching:
                for key in r.keys[:limit]:
                    b = self.cache.get(("s", key))
                    if b is None:
                        break
                    chain.append(b)
            m = len(chain)
            own = 0
            if r.own_start == m:
                while ("p", r.rid, m + own) in self.cache:
                    own += 1
            hit = (m + own) * bt
            if token_room is not None and r.target - hit > token_room:
                return None
            need = self._blocks(r.target if chunk_room is None else min(r.target, hit + chunk_room))
            new = need - m - own
            if len(self.fq) - (new + sum(b in self.fq for b in chain) + own) < self.watermark:
                return None
            self.queues[t].popleft()
            for b in chain:
                self.fq.pop(b, None)
                self.refs[b] += 1
            mine = []
            for j in range(m, m + own):
                b = self.cache.pop(("p", r.rid, j))
                del self.holds[b]
                del self.fq[b]
                mine.append(b)
            if not own:
                self._disown(r)
            r.own_start = None
            r.table = chain + mine + self._take(new)
            r.nsh, r.frozen = m, False
            r.done = hit
            r.status = RUNNING
            if r.admit == 0:
                r.hit = hit
                self.cnt[W_ADMIT_PROMPT_TOK] += r.prompt
                self.cnt[W_HIT_TOK] += hit
            self.admit_ctr += 1
            r.admit = self.admit_ctr
            self.running.append(r)
            return r

    def _grow(self, r: Request, tokens: int) -> None:
        """Blocks for `tokens` for a running request, preempting while the pool is short."""
        extra = self._blocks(tokens) - r.blocks
        if extra <= 0:
            return
        while len(self.fq) < extra and r.status == RUNNING:
            self._preempt()
        if r.status == RUNNING:
            r.table += self._take(extra)

    def _grow_decodes(self, k: int) -> None:
        for r in list(self.running):
            if r.status == RUNNING and r.decoding:
                self._grow(r, r.prompt + r.generated + k)

    def _emit(self, r: Request, n_tokens: int, t1: float) -> None:
        ten = self.workload.tenants[r.tenant]
        t1 += self._api
        if r.generated == 0 and np.isnan(r.first_s):
            r.first_s = t1
            self._events[EV_FIRST].append(r.rid)
            if t1 - r.arrival_s > ten.ttft_slo_ms / 1e3:
                self._decide(r, SLO_MISSED)
        else:
            b = int(np.searchsorted(self._edges, 1e3 * (t1 - r.last_s), side="right"))
            self.itl[r.tenant, b] += 1
        r.last_s = t1
        r.generated += n_tokens

    def _finish(self, r: Request, t1: float) -> None:
        ten = self.workload.tenants[r.tenant]
        r.finish_s = t1 + self._api
        r.status = FINISHED
        self._release(r, False)
        self._events[EV_FINISHED].append(r.rid)
        ok = r.first_s - r.arrival_s <= ten.ttft_slo_ms / 1e3
        if r.output > 1:
            ok = ok and (r.finish_s - r.first_s) / (r.output - 1) <= ten.tpot_slo_ms / 1e3
        self._decide(r, SLO_MET if ok else SLO_MISSED)

    # ------------------------------------------------------------------ one window
    def _run_window(self, t_end: float, knobs: Knobs) -> None:
        k = knobs.speculation_depth
        self._priority = knobs.priority_routing
        self._events = {EV_DECIDED: [], EV_FIRST: [], EV_FINISHED: [], EV_ABANDONED: []}
        self.watermark = int(self.si[S_WATERMARK])
        self._api = float(self._prm[6])
        c = self._consts[knobs.quantization_tier]
        cfg = self.config
        clock = float(self.sf[0])
        self._resize(int(self.si[S_CAP_NEXT]))
        while True:
            while self.next_arrival < len(self.reqs) and self.reqs[self.next_arrival].arrival_s <= clock:
                r = self.reqs[self.next_arrival]
                self.next_arrival += 1
                self.cnt[W_ARRIVED] += 1
                if r.prompt > self.max_model_len:  # longer than the model's context: refused at once
                    r.status = REJECTED
                    r.finish_s = r.arrival_s
                    self.cnt[W_REJECTED] += 1
                    self._decide(r, SLO_MISSED)
                    continue
                r.status = WAITING
                r.key = r.rid
                self.queues[r.tenant].append(r)
            if clock >= t_end:
                break
            self._abandon_expired(clock)
            chunks: list[tuple[Request, int]] = []
            prefill_only = False
            if knobs.prefill_decode_split:
                evictions = self.cnt[W_EVICT]
                self._grow_decodes(k)
                room = cfg.chunk_token_budget - sum(1 for r in self.running if r.decoding) * (1 + k)
                for r in list(self.running):
                    if room <= 0:
                        break
                    if r.status != RUNNING or r.decoding:
                        continue
                    ch = min(r.target - r.done, room)
                    self._grow(r, r.done + ch)
                    if r.status != RUNNING:
                        break
                    chunks.append((r, ch))
                    room -= ch
                chunks = [(r, ch) for r, ch in chunks if r.status == RUNNING]
                if self.cnt[W_EVICT] == evictions:
                    while room > 0 and len(self.running) < knobs.batch_cap:
                        r = self._admit(clock, None, room)
                        if r is None:
                            break
                        ch = min(r.target - r.done, room)
                        chunks.append((r, ch))
                        room -= ch
            else:
                for r in list(self.running):
                    if r.status == RUNNING and not r.decoding:
                        self._grow(r, r.target)
                        if r.status == RUNNING:
                            chunks.append((r, r.target - r.done))
                chunks = [(r, ch) for r, ch in chunks if r.status == RUNNING]
                tokens = sum(ch for _, ch in chunks)
                while len(self.running) < knobs.batch_cap:
                    room = cfg.prefill_token_budget - tokens if chunks else None
                    if chunks and room <= 0:
                        break
                    r = self._admit(clock, room, None)
                    if r is None:
                        break
                    chunks.append((r, r.target - r.done))
                    tokens += r.target - r.done
                prefill_only = bool(chunks)
                if not prefill_only:
                    self._grow_decodes(k)
            decodes = [] if prefill_only else [r for r in self.running if r.decoding]
            lin = sampled = pairs = 0.0
            for r, ch in chunks:
                lin += float(ch)
                pairs += float(ch) * (float(r.done) + (float(ch) + 1.0) / 2.0)
                if r.done + ch >= r.target:
                    sampled += 1.0
            kv = 0.0
            for r in decodes:
                kv += float(r.prompt + r.generated)
            q_tok = float(len(decodes) * (1 + k))
            lin += q_tok
            sampled += q_tok
            if lin == 0.0:
                nxt = t_end
                if self.next_arrival < len(self.reqs) and self.reqs[self.next_arrival].arrival_s < t_end:
                    nxt = self.reqs[self.next_arrival].arrival_s
                clock = max(clock, nxt)
                continue
            dt = cm.iteration_s(c, lin, sampled, pairs, kv, kv * (1.0 + k), float(len(decodes) + len(chunks)))
            if k > 0 and decodes:
                dt += k * cm.draft_step_s(c, float(len(decodes)), kv, cfg.draft_cost_ratio)
            t1 = clock + dt
            self.cnt[W_ITERS] += 1
            self.cnt[W_BUSY_S] += dt
            self.cnt[W_MAX_ITER_S] = max(self.cnt[W_MAX_ITER_S], dt)
            self.cnt[W_PREFILL_ITERS] += prefill_only
            self.cnt[W_KV_BLOCK_S] += float(self.capacity - len(self.fq)) * dt
            self.cnt[W_CACHED_BLOCK_S] += float(self._cached_free()) * dt
            computed = set()
            for r in decodes:
                computed.add(r.rid)
                n_tok = 1
                if k > 0:
                    h = cfg.acceptance_half_context
                    a = self.workload.tenants[r.tenant].spec_acceptance * h / (h + float(r.prompt + r.generated))
                    for _ in range(k):
                        u = uniform(self.seed, r.rid, r.draws)
                        r.draws += 1
                        if u >= a:
                            break
                        n_tok += 1
                    self.cnt[W_SPEC_PROPOSED] += k
                    self.cnt[W_SPEC_ACCEPTED] += n_tok - 1
                n_tok = min(n_tok, r.output - r.generated)
                self.cnt[W_DECODE_TOK] += n_tok
                self._emit(r, n_tok, t1)
            for r, ch in chunks:
                computed.add(r.rid)
                r.done += ch
                self.cnt[W_PREFILL_TOK] += ch
                if r.decoding:
                    self.cnt[W_DECODE_TOK] += 1
                    self._emit(r, 1, t1)
            if cfg.prefix_caching:
                for r in self.running:  # in running order, as the kernel
                    if r.rid in computed and not r.frozen and r.nsh < len(r.keys):
                        self._register(r)
                    if r.generated >= r.output:
                        self._finish(r, t1)
                self.running = [r for r in self.running if r.status == RUNNING]
            else:
                for r in [r for r in self.running if r.generated >= r.output]:
                    self.running.remove(r)
                    self._finish(r, t1)
            clock = t1
        for r in [r for q in self.queues for r in q] + self.running:
            if np.isnan(r.first_s) and clock - r.arrival_s > self.workload.tenants[r.tenant].ttft_slo_ms / 1e3:
                self._decide(r, SLO_MISSED)
        self._export(clock)

    def _export(self, clock: float) -> None:
        """Write the object state into the array layout the metrics (and tests) read."""
        for r in self.reqs[: self.next_arrival]:
            i = r.rid
            for row, v in ((STATUS, r.status), (TARGET, r.target), (DONE, r.done), (GEN, r.generated),
                           (BLOCKS, r.blocks), (ADMIT, r.admit), (NPRE, r.preemptions), (SLO, r.slo), (KEY, r.key),
                           (DRAWS, r.draws), (NSH, r.nsh), (FROZEN, int(r.frozen)), (HIT, r.hit)):
                self.ri[i, row] = v
            # OWN_NODE is the kernel's node id: here only whether there is one (>= 0) or not (-1)
            has_own = r.own_start is not None and ("p", r.rid, r.own_start) in self.cache
            self.ri[i, OWN_NODE] = 0 if has_own else -1
            self.ri[i, OWN_START] = r.own_start if has_own else 0
            self.rf[i, FIRST], self.rf[i, FINISH], self.rf[i, LAST] = r.first_s, r.finish_s, r.last_s
        for e, ids in self._events.items():
            self.ev_n[e] = len(ids)
            self.ev[e, : len(ids)] = ids
        n = self.q.shape[1]
        for t, q in enumerate(self.queues):
            self.ql[t] = len(q)
            self.q[t, (self.qh[t] + np.arange(len(q))) % n] = [r.rid for r in q]
        for t, q in enumerate(self.queues):
            self.oldest_arrival[t] = min((r.arrival_s for r in q), default=np.inf)
        waiting = [r.target for q in self.queues for r in q]
        self.si[S_PEND_SUM] = sum(waiting)
        self.si[S_PEND_MAX] = max(waiting, default=0)
        self.si[S_NRUN] = len(self.running)
        self.run[: len(self.running)] = [r.rid for r in self.running]
        self.si[S_NEXT] = self.next_arrival
        self.si[S_FREE] = len(self.fq)
        self.si[S_CAP] = self.capacity
        self.si[S_CACHED] = self._cached_free()
        self.si[S_ADMIT_CTR] = self.admit_ctr
        self.si[S_PRE_CTR] = self.preempt_ctr
        self.sf[0] = clock

    def _check_pool(self) -> None:
        """The explicit pool adds up: every block is free, reserved or held; a keyed block's count
        of holders is its reference count."""
        held: dict[int, int] = {}
        for r in self.running:
            for b in r.table:
                held[b] = held.get(b, 0) + 1
        assert not (set(held) & set(self.fq)), "a held block is in the free queue"
        assert len(held) + len(self.fq) == self.capacity, "blocks in use + free != capacity"
        assert len(held) + len(self.fq) + len(self.reserve) == self.max_blocks, "blocks were lost"
        for b, n in held.items():
            if n > 1 or b in self.refs and self.holds.get(b, ("p",))[0] == "s":
                assert self.refs.get(b) == n, "a reference count disagrees with its holders"
        for key, b in self.cache.items():
            assert self.holds[b] == key, "the cache and the blocks disagree"
