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
   again. With ``prefix_caching`` its full blocks of computed KV stay in the free pool as cached
   blocks, behind the blocks that were free before; fresh allocations take free blocks from the
   front, so the victim's cache survives until as many blocks have been allocated as were free
   ahead of it (its tail block goes first). When it is admitted again, the blocks still cached
   count as computed (block-aligned, at most its tokens less one).
5. The batch is priced by the cost model (plus k draft-model steps, each ``draft_cost_ratio`` of a
   decode step's GPU time plus a full engine step's CPU overhead) and the clock advances. A prefill that completes delivers one token; each decode pass
   delivers 1 + the accepted draft tokens (each accepted in turn with probability
   a = a0 x H / (H + context), H = ``acceptance_half_context``), capped at the output length.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass

import numpy as np

from . import cost_model as cm
from .layout import (ABANDONED, ADMIT, BLOCKS, CACHE_AT, CACHE_BLOCKS, DONE, DRAWS, EV_ABANDONED, EV_DECIDED, EV_FINISHED, EV_FIRST, FINISH,
                     FINISHED, FIRST, GEN, KEY, LAST, NPRE, REJECTED, RUNNING, S_ADMIT_CTR,
                     S_ALLOC_CTR, S_CAP, S_FREE, S_NEXT, S_NRUN, S_PEND_MAX, S_PEND_SUM, S_PRE_CTR, S_WATERMARK, SLO, SLO_MET, SLO_MISSED,
                     SLO_OPEN, STATUS, TARGET, W_ARRIVED, W_BUSY_S, W_DECODE_TOK, W_EVICT, W_ITERS,
                     W_ABANDONED, W_KV_BLOCK_S, W_MAX_ITER_S, W_PREFILL_ITERS, W_PREFILL_TOK, W_REJECTED,
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
    blocks: int = 0
    first_s: float = float("nan")
    finish_s: float = float("nan")
    last_s: float = float("nan")
    admit: int = 0
    preemptions: int = 0
    slo: int = SLO_OPEN
    key: int = 0
    draws: int = 0
    cache_at: int = 0  # the allocation count at which its cached blocks start being evicted
    cache_blocks: int = 0  # full blocks of computed KV left in the prefix cache at its preemption

    @property
    def decoding(self) -> bool:
        return self.done >= self.target


class ReferenceSimulator(Simulator):
    """Same API and results as :class:`Simulator`, computed by the plain-Python rules above."""

    def reset(self, workload, seed=None, knobs: Knobs | None = None) -> None:
        super().reset(workload, seed, knobs)
        self.reqs = [Request(i, int(workload.tenant[i]), float(workload.arrival_s[i]), int(workload.prompt_tokens[i]),
                             int(workload.output_tokens[i]), target=int(workload.prompt_tokens[i]))
                     for i in range(len(workload))]
        self.queues = [deque() for _ in workload.tenants]
        self.running: list[Request] = []
        self.next_arrival = 0
        self.admit_ctr = 0
        self.preempt_ctr = 0
        self.alloc_ctr = 0

    def clone(self) -> "ReferenceSimulator":
        new = super().clone()
        memo: dict = {}  # one memo: a request in a queue and in the running list stays one object
        new.reqs = copy.deepcopy(self.reqs, memo)
        new.queues = copy.deepcopy(self.queues, memo)
        new.running = copy.deepcopy(self.running, memo)
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

    def _preempt(self) -> None:
        victim = self.running[-1]
        if self._priority:
            victim = self.running[0]
            for r in self.running[1:]:
                if self._prio(r) < self._prio(victim) or (
                        self._prio(r) == self._prio(victim) and r.arrival_s > victim.arrival_s):
                    victim = r
        self.running.remove(victim)
        if self.config.prefix_caching:
            computed = victim.done if not victim.decoding else victim.prompt + victim.generated - 1
            victim.cache_blocks = min(computed // self.config.block_tokens, victim.blocks)
            victim.cache_at = self.alloc_ctr + self.free
        self.free += victim.blocks
        victim.blocks = 0
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
                r.cache_blocks = 0
                r.finish_s = clock
                self.cnt[W_ABANDONED] += 1
                self._events[EV_ABANDONED].append(r.rid)
                self._decide(r, SLO_MISSED)

    def _cached_tokens(self, r: Request) -> int:
        bt = self.config.block_tokens
        left = r.cache_blocks - max(0, self.alloc_ctr - r.cache_at)
        if r.cache_blocks <= 0 or left <= 0:
            return 0
        return min(left * bt, (r.target - 1) // bt * bt)

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
                r.cache_blocks = 0
                r.finish_s = clock
                self.cnt[W_REJECTED] += 1
                self._decide(r, SLO_MISSED)
                continue
            hit = self._cached_tokens(r)
            if token_room is not None and r.target - hit > token_room:
                return None
            need = self._blocks(r.target if chunk_room is None else min(r.target, hit + chunk_room))
            if self.free - need < self.watermark:
                return None
            self.queues[t].popleft()
            self.free -= need
            self.alloc_ctr += need - hit // bt
            r.blocks = need
            r.done = hit
            r.cache_blocks = 0
            r.status = RUNNING
            self.admit_ctr += 1
            r.admit = self.admit_ctr
            self.running.append(r)
            return r

    def _grow(self, r: Request, tokens: int) -> None:
        """Blocks for `tokens` for a running request, preempting while the pool is short."""
        extra = self._blocks(tokens) - r.blocks
        if extra <= 0:
            return
        while self.free < extra and r.status == RUNNING:
            self._preempt()
        if r.status == RUNNING:
            self.free -= extra
            self.alloc_ctr += extra
            r.blocks += extra

    def _grow_decodes(self, k: int) -> None:
        for r in list(self.running):
            if r.status == RUNNING and r.decoding:
                self._grow(r, r.prompt + r.generated + k)

    def _emit(self, r: Request, n_tokens: int, t1: float) -> None:
        ten = self.workload.tenants[r.tenant]
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
        r.finish_s = t1
        r.status = FINISHED
        self.free += r.blocks
        r.blocks = 0
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
        self.capacity, self.free, self.watermark = int(self.si[S_CAP]), int(self.si[S_FREE]), int(self.si[S_WATERMARK])
        c = self._consts[knobs.quantization_tier]
        cfg = self.config
        clock = float(self.sf[0])
        while self.free < 0 and self.running:
            self._preempt()
        while True:
            while self.next_arrival < len(self.reqs) and self.reqs[self.next_arrival].arrival_s <= clock:
                r = self.reqs[self.next_arrival]
                r.status = WAITING
                r.key = r.rid
                self.queues[r.tenant].append(r)
                self.next_arrival += 1
                self.cnt[W_ARRIVED] += 1
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
            self.cnt[W_KV_BLOCK_S] += float(self.capacity - self.free) * dt
            for r in decodes:
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
                r.done += ch
                self.cnt[W_PREFILL_TOK] += ch
                if r.decoding:
                    self.cnt[W_DECODE_TOK] += 1
                    self._emit(r, 1, t1)
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
                           (DRAWS, r.draws), (CACHE_AT, r.cache_at), (CACHE_BLOCKS, r.cache_blocks)):
                self.ri[i, row] = v
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
        self.si[S_FREE] = self.free
        self.si[S_ADMIT_CTR] = self.admit_ctr
        self.si[S_PRE_CTR] = self.preempt_ctr
        self.si[S_ALLOC_CTR] = self.alloc_ctr
        self.sf[0] = clock
