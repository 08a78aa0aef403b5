"""The steppable simulator of one vLLM-class serving replica.

>>> from igym_marl.sim import Simulator, SimConfig, Knobs, toy_workload
>>> sim = Simulator(SimConfig())
>>> sim.reset(toy_workload(), seed=0)
>>> m = sim.advance(5.0, Knobs(batch_cap=8))
>>> m.finished
3

``reset(workload, seed)`` loads a workload; ``advance(seconds, knobs)`` applies the knobs and
runs the engine for one window, returning that window's :class:`WindowMetrics`;
``snapshot()`` describes the current state; ``episode_metrics()`` summarises everything so far.

Knob changes take effect at the window's start. A new quantization tier costs a reload pause
(``SimConfig.reload_fixed_s`` plus the new weights over the host-to-device link) during which no
iteration runs; a smaller KV budget preempts requests until the held blocks fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import cost_model as cm
from . import engine
from .layout import (ARR, BLOCKS, FINISH, FIRST, LAST, N_EV, N_P, N_RF, N_RI, N_SI, N_TF, N_W, OUT,
                     P_BLOCK_TOKENS, P_CHUNK_BUDGET, P_DRAFT_RATIO, P_HALF_CTX, P_PREFILL_BUDGET, P_PREFIX_CACHING,
                     PROMPT, RUNNING, S_CAP, S_FREE, S_NEXT, S_NRUN, S_PEND_MAX, S_PEND_SUM, S_WATERMARK,
                     STATUS, TARGET,
                     TEN, TF_ACC0, TF_PRIO, TF_TIMEOUT_S, TF_TPOT_S, TF_TTFT_S, W_MAX_ITER_S, WAITING, FINISHED,
                     REJECTED, ABANDONED, NPRE, SLO)
from .metrics import EpisodeMetrics, WindowMetrics, episode_metrics, itl_edges_ms, window_metrics
from .profiles import GB, QUANT_TIERS, get_tier
from .types import Knobs, SimConfig, Workload, _float_in

MAX_RUNNING = 512  # batch_cap's upper bound: running sequences never exceed it


@dataclass(frozen=True)
class Snapshot:
    """The engine's state between windows."""

    clock_s: float
    knobs: Knobs
    arrived: int
    waiting: tuple[int, ...]  # per tenant
    running: tuple[int, ...]  # per tenant
    finished: int
    rejected: int
    abandoned: int
    kv_blocks_used: int
    kv_capacity_blocks: int
    pending_prompt_tokens: int  # prompt tokens of waiting requests (recompute included)
    max_waiting_prompt_tokens: int


def _seed_from(seed) -> int:
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63 - 1))
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
        return int(np.random.default_rng(seed).integers(0, 2**63 - 1))
    raise ValueError(f"seed={seed!r} must be a non-negative integer, a numpy Generator or None")


@dataclass(frozen=True, eq=False)
class RequestTable:
    """Per-request arrays, one row per request of the workload. status: 0 future, 1 waiting,
    2 running, 3 finished, 4 rejected, 5 abandoned (``igym_marl.sim.layout``); slo: 0 open, 1 met,
    2 missed. Times in simulated seconds (NaN: not yet)."""

    arrival_s: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    tenant: np.ndarray
    status: np.ndarray
    slo: np.ndarray
    preemptions: np.ndarray

    @property
    def ttft_s(self) -> np.ndarray:
        return self.first_token_s - self.arrival_s


class Simulator:
    """One serving replica, advanced window by window (fast numba kernel)."""

    def __init__(self, config: SimConfig | None = None):
        self.config = config if config is not None else SimConfig()
        if not isinstance(self.config, SimConfig):
            raise ValueError(f"config must be a SimConfig, got {type(self.config).__name__}")
        self.replica = self.config.replica()
        self.usd_per_hour = self.config.gpu_hour_usd * self.replica.tp  # the replica's GPUs' rent
        self._consts = {t: cm.cost_constants(self.replica, t, self.config.engine) for t in QUANT_TIERS}
        self._edges = itl_edges_ms(self.config.itl_hist_bins)
        self._prm = np.zeros(N_P)
        self._prm[P_CHUNK_BUDGET] = self.config.chunk_token_budget
        self._prm[P_PREFILL_BUDGET] = self.config.prefill_token_budget
        self._prm[P_BLOCK_TOKENS] = self.config.block_tokens
        self._prm[P_DRAFT_RATIO] = self.config.draft_cost_ratio
        self._prm[P_HALF_CTX] = self.config.acceptance_half_context
        self._prm[P_PREFIX_CACHING] = 1.0 if self.config.prefix_caching else 0.0
        self.workload: Workload | None = None

    # ------------------------------------------------------------------ lifecycle
    def reset(self, workload: Workload, seed=None, knobs: Knobs | None = None) -> None:
        """Load `workload` at clock 0 with the weights of `knobs.quantization_tier` (default FP16)."""
        if not isinstance(workload, Workload):
            raise ValueError(f"workload must be a Workload, got {type(workload).__name__}")
        knobs = knobs if knobs is not None else Knobs()
        if not isinstance(knobs, Knobs):
            raise ValueError(f"knobs must be a Knobs, got {type(knobs).__name__}")
        self.workload = workload
        self.seed = _seed_from(seed)
        n, n_t = len(workload), len(workload.tenants)
        self.n = n  # rows in use; add_requests() may append more (rows past n are padding, never arriving)
        self.ri = np.zeros((n, N_RI), dtype=np.int64)  # [request, field]
        self.rf = np.full((n, N_RF), np.nan)  # [request, field]
        self.ri[:, PROMPT] = workload.prompt_tokens
        self.ri[:, OUT] = workload.output_tokens
        self.ri[:, TEN] = workload.tenant
        self.ri[:, TARGET] = workload.prompt_tokens
        self.rf[:, ARR] = workload.arrival_s
        self.si = np.zeros(N_SI, dtype=np.int64)
        self.sf = np.zeros(1)
        self.run = np.zeros(MAX_RUNNING + 1, dtype=np.int64)
        self.q = np.zeros((n_t, max(n, 1)), dtype=np.int64)
        self.qh = np.zeros(n_t, dtype=np.int64)
        self.ql = np.zeros(n_t, dtype=np.int64)
        self.tf = np.zeros((N_TF, n_t))
        for t, ten in enumerate(workload.tenants):
            self.tf[TF_PRIO, t] = ten.priority
            self.tf[TF_TTFT_S, t] = ten.ttft_slo_ms / 1e3
            self.tf[TF_TPOT_S, t] = ten.tpot_slo_ms / 1e3
            self.tf[TF_ACC0, t] = ten.spec_acceptance
            self.tf[TF_TIMEOUT_S, t] = ten.timeout_s
        self.cnt = np.zeros(N_W)
        self.totals = np.zeros(N_W)
        self.ev = np.zeros((N_EV, max(n, 1)), dtype=np.int64)
        self.ev_n = np.zeros(N_EV, dtype=np.int64)
        self.itl = np.zeros((n_t, self.config.itl_hist_bins), dtype=np.int64)
        self.itl_total = np.zeros_like(self.itl)
        self.oldest_arrival = np.full(n_t, np.inf)  # per tenant, among waiting requests (inf: none)
        self._pf_ids = np.zeros(MAX_RUNNING + 1, dtype=np.int64)
        self._pf_chunk = np.zeros(MAX_RUNNING + 1, dtype=np.int64)
        self.knobs = knobs
        self.t_nominal = 0.0
        self.windows = 0
        cap = self._capacity(knobs)
        self.si[S_CAP] = cap
        self.si[S_FREE] = cap
        self.si[S_WATERMARK] = int(self.config.watermark_fraction * cap)

    # the arrays the kernel mutates (everything else is immutable once reset: config, workload,
    # cost constants) -- clone() copies exactly these
    _STATE = ("ri", "rf", "si", "sf", "run", "q", "qh", "ql", "tf", "cnt", "totals", "ev", "ev_n", "itl",
              "itl_total", "oldest_arrival", "_pf_ids", "_pf_chunk")

    def clone(self) -> "Simulator":
        """An independent copy whose future is the same as this one's, for the same knobs.

        The state arrays are copied (a few hundred microseconds for thousands of requests); the
        config, workload and cost constants are immutable and shared."""
        self._require_reset()
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        for name in self._STATE:
            setattr(new, name, getattr(self, name).copy())
        return new

    def clone_with_future(self, arrival_s, prompt_tokens, output_tokens, tenant) -> "Simulator":
        """A clone in which every request that has not arrived yet is replaced by the given ones:
        a what-if on traffic other than the workload's (a forecast). The requests already in the
        engine, their state and the clock are the clone's as they are this simulator's; the new
        requests follow the rules of ``add_requests`` (sorted, no earlier than the last request
        that arrived). This simulator is left alone."""
        self._require_reset()
        new = self.clone()
        arrived = int(new.si[S_NEXT])
        new.ri[arrived:] = 0
        new.rf[arrived:] = np.nan
        new.rf[arrived:, ARR] = np.inf
        new.n = arrived
        new.add_requests(arrival_s, prompt_tokens, output_tokens, tenant)
        return new

    def add_requests(self, arrival_s, prompt_tokens, output_tokens, tenant) -> np.ndarray:
        """Append requests to this replica's workload after reset; returns their row ids.

        Cluster mode routes each window's arrivals to replicas this way. Arrivals must be sorted,
        no earlier than the current window's start and than the last request already held; tokens
        are integers >= 1 and tenants index the workload's tenants. Rows grow by doubling, so
        appending costs amortised O(1) per request. A replica given each request before its clock
        reaches the request's arrival follows exactly the trajectory it would with all of them
        loaded at reset. (A request added after the clock passed its arrival, when the window's
        last iteration overran the window's end, joins the queue at the next window's start: the
        same moment, counted in the next window's arrivals.)"""
        self._require_reset()
        arr = np.asarray(arrival_s, dtype=np.float64).reshape(-1)
        k = arr.shape[0]
        cols = {}
        for name, v in (("prompt_tokens", prompt_tokens), ("output_tokens", output_tokens), ("tenant", tenant)):
            a = np.asarray(v)
            if a.shape != (k,):
                raise ValueError(f"{name} has shape {a.shape}; expected ({k},) like arrival_s")
            if k and not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
            cols[name] = a.astype(np.int64)
        if k == 0:
            return np.zeros(0, dtype=np.int64)
        floor = max(self.t_nominal, float(self.rf[self.n - 1, ARR]) if self.n else 0.0)
        if not np.all(np.isfinite(arr)) or arr[0] < floor or np.any(np.diff(arr) < 0):
            raise ValueError(f"arrival_s must be finite, sorted and >= {floor} (the window start and the last "
                             f"request held); got {arr[:5].tolist()}{'...' if k > 5 else ''}")
        for name in ("prompt_tokens", "output_tokens"):
            if cols[name].min() < 1:
                raise ValueError(f"{name} must be >= 1; got {int(cols[name].min())}")
        n_t = len(self.workload.tenants)
        if cols["tenant"].min() < 0 or cols["tenant"].max() >= n_t:
            bad = cols["tenant"][(cols["tenant"] < 0) | (cols["tenant"] >= n_t)][0]
            raise ValueError(f"tenant={int(bad)} is out of range; allowed 0..{n_t - 1}")
        if self.n + k > self.ri.shape[0]:
            self._grow(max(2 * self.ri.shape[0], self.n + k, 64))
        rows = np.arange(self.n, self.n + k)
        self.ri[rows, PROMPT] = cols["prompt_tokens"]
        self.ri[rows, OUT] = cols["output_tokens"]
        self.ri[rows, TEN] = cols["tenant"]
        self.ri[rows, TARGET] = cols["prompt_tokens"]
        self.rf[rows, ARR] = arr
        self.n += k
        return rows

    def _grow(self, rows: int) -> None:
        """Room for `rows` requests: padding rows never arrive (arrival +inf); the per-tenant ring
        queues are re-laid from their heads."""
        old = self.ri.shape[0]
        ri = np.zeros((rows, N_RI), dtype=np.int64)
        ri[:old] = self.ri
        rf = np.full((rows, N_RF), np.nan)
        rf[:old] = self.rf
        rf[old:, ARR] = np.inf
        q = np.zeros((self.q.shape[0], rows), dtype=np.int64)
        width = self.q.shape[1]
        for t in range(self.q.shape[0]):
            idx = (self.qh[t] + np.arange(self.ql[t])) % width
            q[t, : self.ql[t]] = self.q[t, idx]
        self.qh[:] = 0
        ev = np.zeros((N_EV, rows), dtype=np.int64)
        ev[:, : self.ev.shape[1]] = self.ev
        self.ri, self.rf, self.q, self.ev = ri, rf, q, ev

    def _capacity(self, knobs: Knobs) -> int:
        return self.replica.kv_capacity_blocks(knobs.quantization_tier, knobs.kv_budget_fraction,
                                               self.config.block_tokens)

    def _require_reset(self):
        if self.workload is None:
            raise RuntimeError("call reset(workload, seed) before advance()")

    # ------------------------------------------------------------------ stepping
    def advance(self, seconds: float, knobs: Knobs) -> WindowMetrics:
        """Apply `knobs`, run the engine for `seconds` of simulated time, return the window's metrics."""
        self._require_reset()
        seconds = _float_in("seconds", seconds, 1e-6, 1e7)
        if not isinstance(knobs, Knobs):
            raise ValueError(f"knobs must be a Knobs (validated dataclass), got {type(knobs).__name__}")
        t_start = self.t_nominal
        t_end = t_start + seconds
        reload_s = 0.0
        if knobs.quantization_tier != self.knobs.quantization_tier:
            reload_s = self.config.reload_fixed_s + (
                self.replica.weights_gb(knobs.quantization_tier) / self.replica.tp / self.config.host_to_device_gb_per_s)
            self.sf[0] += reload_s
        cap = self._capacity(knobs)
        self.si[S_FREE] += cap - self.si[S_CAP]
        self.si[S_CAP] = cap
        self.si[S_WATERMARK] = int(self.config.watermark_fraction * cap)
        self.knobs = knobs
        self.cnt[:] = 0.0
        self.ev_n[:] = 0
        self.itl[:] = 0
        arrived_before = int(self.si[S_NEXT])
        self._run_window(t_end, knobs)
        max_iter = max(self.totals[W_MAX_ITER_S], self.cnt[W_MAX_ITER_S])
        self.totals += self.cnt
        self.totals[W_MAX_ITER_S] = max_iter
        self.itl_total += self.itl
        self.t_nominal = t_end
        self.windows += 1
        return self._window_metrics(t_start, seconds, arrived_before, reload_s, knobs)

    def _run_window(self, t_end: float, knobs: Knobs) -> None:
        engine.run_window(t_end, knobs.batch_cap, knobs.speculation_depth, knobs.prefill_decode_split,
                          knobs.priority_routing, self._consts[knobs.quantization_tier], self._prm,
                          np.uint64(self.seed), self.tf, self.ri, self.rf, self.si, self.sf, self.run, self.q,
                          self.qh, self.ql, self.cnt, self.ev, self.ev_n, self.itl, self._edges, self._pf_ids,
                          self._pf_chunk, self.oldest_arrival)

    # ------------------------------------------------------------------ observation
    def _state_summary(self, arrived_before: int) -> dict:
        n_t = len(self.workload.tenants)
        run_ids = self.run[: self.si[S_NRUN]]
        running = np.bincount(self.ri[run_ids, TEN], minlength=n_t)
        waiting = np.isfinite(self.oldest_arrival)
        oldest = np.where(waiting, 1e3 * (self.sf[0] - np.where(waiting, self.oldest_arrival, 0.0)), 0.0)
        return {"arrived_range": (arrived_before, int(self.si[S_NEXT])), "queue_depth": self.ql.copy(),
                "running": running, "oldest_wait_ms": oldest, "capacity": int(self.si[S_CAP]),
                "pending": self.pending_prompts(),
                "used": int(self.si[S_CAP] - self.si[S_FREE])}

    def _memory_gb(self, knobs: Knobs) -> tuple[float, float]:
        r, used = self.replica, int(self.si[S_CAP] - self.si[S_FREE])
        bb = r.block_bytes(self.config.block_tokens) / GB
        reserved = r.weights_gb(knobs.quantization_tier) + r.activation_reserve_gb * r.tp + self.si[S_CAP] * bb
        return float(reserved), float(used * bb)

    def _window_metrics(self, t_start, seconds, arrived_before, reload_s, knobs) -> WindowMetrics:
        mem, kv_used = self._memory_gb(knobs)
        return window_metrics(
            t_start=t_start, seconds=seconds, clock=float(self.sf[0]), ri=self.ri, rf=self.rf, cnt=self.cnt,
            ev=self.ev, ev_n=self.ev_n, itl=self.itl, edges=self._edges, tenants=self.workload.tenants,
            si_state=self._state_summary(arrived_before), gpu_memory_used_gb=mem, kv_used_gb=kv_used,
            reload_s=reload_s, usd_per_hour=self.usd_per_hour,
            quality=get_tier(knobs.quantization_tier).quality)

    def snapshot(self) -> Snapshot:
        self._require_reset()
        n_t = len(self.workload.tenants)
        n_arr = int(self.si[S_NEXT])
        st = self.ri[:n_arr, STATUS]
        pend_sum, pend_max = self.pending_prompts()
        run_ids = self.run[: self.si[S_NRUN]]
        return Snapshot(
            clock_s=float(self.sf[0]), knobs=self.knobs, arrived=n_arr,
            waiting=tuple(int(x) for x in self.ql),
            running=tuple(int(x) for x in np.bincount(self.ri[run_ids, TEN], minlength=n_t)),
            finished=int(np.count_nonzero(st == FINISHED)), rejected=int(np.count_nonzero(st == REJECTED)),
            abandoned=int(np.count_nonzero(st == ABANDONED)),
            kv_blocks_used=int(self.si[S_CAP] - self.si[S_FREE]), kv_capacity_blocks=int(self.si[S_CAP]),
            pending_prompt_tokens=pend_sum, max_waiting_prompt_tokens=pend_max)

    def requests(self) -> "RequestTable":
        """Every request of the workload so far, by name (copies; a request not yet arrived has
        status "future")."""
        self._require_reset()
        ri, rf = self.ri[: self.n], self.rf[: self.n]
        return RequestTable(arrival_s=rf[:, ARR].copy(), first_token_s=rf[:, FIRST].copy(),
                            finish_s=rf[:, FINISH].copy(), prompt_tokens=ri[:, PROMPT].copy(),
                            output_tokens=ri[:, OUT].copy(), tenant=ri[:, TEN].copy(), status=ri[:, STATUS].copy(),
                            slo=ri[:, SLO].copy(), preemptions=ri[:, NPRE].copy())

    def pending_prompts(self) -> tuple[int, int]:
        """(prompt tokens waiting, largest waiting prompt) at the last window's end, recompute included."""
        return int(self.si[S_PEND_SUM]), int(self.si[S_PEND_MAX])

    def episode_metrics(self) -> EpisodeMetrics:
        """Everything since reset: every arrived request is accounted for (finished, rejected or open)."""
        self._require_reset()
        return episode_metrics(duration_s=self.t_nominal, ri=self.ri, rf=self.rf, n_arrived=int(self.si[S_NEXT]),
                               totals=self.totals, itl_total=self.itl_total, edges=self._edges,
                               tenants=self.workload.tenants,
                               usd_per_hour=self.usd_per_hour)

    @property
    def clock_s(self) -> float:
        return float(self.sf[0])

    def check_invariants(self) -> None:
        """Raise AssertionError if the state is inconsistent (used by tests; cheap enough to call often)."""
        n_arr = int(self.si[S_NEXT])
        st = self.ri[:n_arr, STATUS]
        n_wait = int(np.count_nonzero(st == WAITING))
        n_run = int(np.count_nonzero(st == RUNNING))
        assert n_wait == int(self.ql.sum()), "queue lengths disagree with waiting requests"
        assert n_run == int(self.si[S_NRUN]), "running list disagrees with running requests"
        assert n_wait + n_run + np.count_nonzero(st == FINISHED) + np.count_nonzero(st == REJECTED) + \
            np.count_nonzero(st == ABANDONED) == n_arr
        held = int(self.ri[:, BLOCKS].sum())
        assert held == self.si[S_CAP] - self.si[S_FREE], "blocks held != blocks in use"
        assert 0 <= held <= self.si[S_CAP], "KV blocks in use exceed capacity"
        assert np.all(self.ri[n_arr:, STATUS] == 0), "a future request changed state"
        fin = self.ri[:, STATUS] == FINISHED
        assert np.all(self.rf[fin, FIRST] <= self.rf[fin, FINISH]), "TTFT > end-to-end"
        assert np.all(self.rf[fin, FIRST] >= self.rf[fin, ARR]), "first token before arrival"
        assert np.all(self.ri[~(self.ri[:, STATUS] == RUNNING), BLOCKS] == 0), "a non-running request holds blocks"
        assert np.all(self.rf[fin, LAST] == self.rf[fin, FINISH])
