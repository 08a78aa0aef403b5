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
from .layout import (ABANDONED, ARR, BLOCKS, EMPTY_KEY, FINISH, FINISHED, FIRST, GEN, HIT, KIND_KEYED, KIND_RUN, LAST,
                     N_EV, N_ND, N_P, N_RF, N_RI, N_SI, N_TF, N_W, ND_COUNT, ND_KIND, ND_NEXT, ND_OWNER, ND_PREV, ND_REF,
                     NPRE, NSH, OUT, OWN_NODE, P_API_S, P_BLOCK_TOKENS, P_MAX_MODEL_LEN, P_CHUNK_BUDGET, P_DRAFT_RATIO, P_HALF_CTX,
                     P_PREFILL_BUDGET, P_PREFIX_CACHING, PROMPT, REJECTED, RUNNING, S_CACHED, S_CAP, S_CAP_NEXT,
                     S_FHEAD, S_FREE, S_FTAIL, S_HT_N, S_NDTOP, S_NEXT, S_NRUN, S_PEND_MAX, S_PEND_SUM, S_WATERMARK,
                     SLO, STATUS, TARGET, TEN, TF_ACC0, TF_PRIO, TF_TIMEOUT_S, TF_TPOT_S, TF_TTFT_S, W_MAX_ITER_S,
                     WAITING)
from .metrics import EpisodeMetrics, WindowMetrics, episode_metrics, itl_edges_ms, window_metrics
from .profiles import GB, QUANT_TIERS, get_engine, get_tier
from .types import Knobs, SimConfig, Workload, _float_in, check_block_keys

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
    kv_cached_blocks: int = 0  # free blocks that still hold reusable KV (prefix cache)


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
    cached_prompt_tokens: np.ndarray  # prompt tokens its first admission found in the prefix cache
    generated_tokens: np.ndarray  # output tokens streamed so far
    last_token_s: np.ndarray  # when its latest token streamed (NaN: none yet)

    @property
    def ttft_s(self) -> np.ndarray:
        return self.first_token_s - self.arrival_s


def _readonly(a: np.ndarray) -> np.ndarray:
    """The block-key arrays as the kernel always sees them, read-only: a workload's own arrays are
    read-only and the simulator's copies are not, and numba compiles the kernel once for each
    (about a minute each on a cold cache), so both are handed over as read-only views."""
    if not a.flags.writeable:
        return a
    v = a.view()
    v.flags.writeable = False
    return v


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
        self._prm[P_API_S] = get_engine(self.config.engine).api_overhead_s
        self.max_model_len = self.replica.model.max_model_len
        self._prm[P_MAX_MODEL_LEN] = self.max_model_len
        # the most blocks the pool can ever hold (budget 1.0, the lightest weights): nodes of the
        # prefix cache and hash-table slots are sized once for it
        self.max_blocks = max(self._capacity(Knobs(kv_budget_fraction=1.0, quantization_tier=t)) for t in QUANT_TIERS)
        self.workload: Workload | None = None

    # ------------------------------------------------------------------ lifecycle
    def reset(self, workload: Workload, seed=None, knobs: Knobs | None = None) -> None:
        """Load `workload` at clock 0 with the weights of `knobs.quantization_tier` (default FP16)."""
        if not isinstance(workload, Workload):
            raise ValueError(f"workload must be a Workload, got {type(workload).__name__}")
        knobs = knobs if knobs is not None else Knobs()
        if not isinstance(knobs, Knobs):
            raise ValueError(f"knobs must be a Knobs, got {type(knobs).__name__}")
        if workload.has_keys and workload.key_block_tokens != self.config.block_tokens:
            raise ValueError(f"the workload's block keys were cut at {workload.key_block_tokens}-token blocks; this "
                             f"simulator's blocks hold {self.config.block_tokens} tokens: regenerate the workload "
                             f"for block_tokens={self.config.block_tokens}")
        self.workload = workload
        self.seed = _seed_from(seed)
        n, n_t = len(workload), len(workload.tenants)
        self.n = n  # rows in use; add_requests() may append more (rows past n are padding, never arriving)
        self.ri = np.zeros((n, N_RI), dtype=np.int64)  # [request, field]
        self.rf = np.full((n, N_RF), np.nan)  # [request, field]
        self.ri[:, PROMPT] = workload.prompt_tokens
        self.ri[:, OUT] = self._generation_cap(workload.prompt_tokens, workload.output_tokens)
        self.ri[:, TEN] = workload.tenant
        self.ri[:, TARGET] = workload.prompt_tokens
        self.ri[:, OWN_NODE] = -1
        self.rf[:, ARR] = workload.arrival_s
        # block keys (CSR): shared with the workload (read-only) until add_requests() appends
        if workload.has_keys:
            self.kptr, self.keys = workload.key_ptr, workload.block_keys
        else:
            self.kptr, self.keys = np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
        self._keys_own = False
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
        # the prefix cache: nodes (a keyed block or a run of blocks: at most one per block), a stack
        # of spare nodes, and a hash table from keys to nodes at most half full
        n_nodes = self.max_blocks + 4
        self.nd = np.zeros((n_nodes, N_ND), dtype=np.int64)
        self.ndstack = np.arange(n_nodes, dtype=np.int64)[::-1].copy()
        self.ht = np.zeros((1 << max(4, int(2 * self.max_blocks).bit_length()), 2), dtype=np.int64)
        self.ht[:, 0] = EMPTY_KEY
        self.si[S_NDTOP] = n_nodes
        self.si[S_FHEAD] = self.si[S_FTAIL] = -1
        self.knobs = knobs
        self.t_nominal = 0.0
        self.windows = 0
        self.si[S_CAP_NEXT] = self._capacity(knobs)  # the kernel fills the empty pool to it
        self.si[S_WATERMARK] = int(self.config.watermark_fraction * self.si[S_CAP_NEXT])
        engine.announce_compilation()  # the first kernel call of a process compiles unless cached
        engine.resize_pool(self.ri, self.rf, self.si, self.run, self.q, self.qh, self.ql, self.tf, False, self.cnt,
                           self._prm, self.nd, self.ht, self.ndstack, _readonly(self.kptr), _readonly(self.keys))

    # the arrays the kernel mutates (everything else is immutable once reset: config, workload,
    # cost constants) -- clone() copies exactly these
    _STATE = ("ri", "rf", "si", "sf", "run", "q", "qh", "ql", "tf", "cnt", "totals", "ev", "ev_n", "itl",
              "itl_total", "oldest_arrival", "_pf_ids", "_pf_chunk", "nd", "ndstack", "ht")

    def clone(self) -> "Simulator":
        """An independent copy whose future is the same as this one's, for the same knobs.

        The state arrays are copied (a few hundred microseconds for thousands of requests); the
        config, workload and cost constants are immutable and shared."""
        self._require_reset()
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        for name in self._STATE:
            setattr(new, name, getattr(self, name).copy())
        new._keys_own = self._keys_own = False  # the key arrays are shared until one of them appends
        return new

    def clone_with_future(self, arrival_s, prompt_tokens, output_tokens, tenant, key_ptr=None,
                          block_keys=None) -> "Simulator":
        """A clone in which every request that has not arrived yet is replaced by the given ones:
        a what-if on traffic other than the workload's (a forecast). The requests already in the
        engine, their state, the prefix cache and the clock are the clone's as they are this
        simulator's; the new requests follow the rules of ``add_requests`` (sorted, no earlier than
        the last request that arrived; block keys optional). This simulator is left alone."""
        self._require_reset()
        new = self.clone()
        arrived = int(new.si[S_NEXT])
        new.ri[arrived:] = 0
        new.ri[arrived:, OWN_NODE] = -1
        new.rf[arrived:] = np.nan
        new.rf[arrived:, ARR] = np.inf
        new.n = arrived
        new._own_keys()
        new.kptr[arrived + 1:] = new.kptr[arrived]
        new.add_requests(arrival_s, prompt_tokens, output_tokens, tenant, key_ptr, block_keys)
        return new

    def add_requests(self, arrival_s, prompt_tokens, output_tokens, tenant, key_ptr=None,
                     block_keys=None) -> np.ndarray:
        """Append requests to this replica's workload after reset; returns their row ids.

        Cluster mode routes each window's arrivals to replicas this way. Arrivals must be sorted,
        no earlier than the current window's start and than the last request already held; tokens
        are integers >= 1 and tenants index the workload's tenants; `key_ptr` / `block_keys` (CSR,
        as Workload's) give their block keys, if any. Rows grow by doubling, so appending costs
        amortised O(1) per request. A replica given each request before its clock reaches the
        request's arrival follows exactly the trajectory it would with all of them loaded at reset.
        (A request added after the clock passed its arrival, when the window's last iteration
        overran the window's end, joins the queue at the next window's start: the same moment,
        counted in the next window's arrivals.)"""
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
        if (key_ptr is None) != (block_keys is None):
            raise ValueError("key_ptr and block_keys go together: give both or neither")
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
        if key_ptr is not None:
            ptr, keys = check_block_keys(key_ptr, block_keys, cols["prompt_tokens"], cols["output_tokens"],
                                         self.config.block_tokens, where="add_requests")
        else:
            ptr, keys = np.zeros(k + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
        if self.n + k > self.ri.shape[0]:
            self._grow(max(2 * self.ri.shape[0], self.n + k, 64))
        rows = np.arange(self.n, self.n + k)
        self.ri[rows, PROMPT] = cols["prompt_tokens"]
        self.ri[rows, OUT] = self._generation_cap(cols["prompt_tokens"], cols["output_tokens"])
        self.ri[rows, TEN] = cols["tenant"]
        self.ri[rows, TARGET] = cols["prompt_tokens"]
        self.ri[rows, OWN_NODE] = -1
        self.rf[rows, ARR] = arr
        self._own_keys()
        used = int(self.kptr[self.n])
        if used + keys.shape[0] > self.keys.shape[0]:
            grown = np.zeros(max(2 * self.keys.shape[0], used + keys.shape[0], 1024), dtype=np.int64)
            grown[:used] = self.keys[:used]
            self.keys = grown
        self.keys[used:used + keys.shape[0]] = keys
        self.kptr[self.n + 1:self.n + k + 1] = used + ptr[1:]
        self.kptr[self.n + k + 1:] = used + ptr[-1]
        self.n += k
        return rows

    def _generation_cap(self, prompt: np.ndarray, output: np.ndarray) -> np.ndarray:
        """Output tokens the engine generates: vLLM stops a request at its model's context
        (finish reason "length"), so prompt + output never pass max_model_len. (A prompt longer than
        the context is refused on arrival: the kernel sees to that.)"""
        return np.minimum(output, np.maximum(1, self.max_model_len - prompt))

    def _own_keys(self) -> None:
        """Copy the key arrays before writing to them (a clone, or the workload, may share them)."""
        if not self._keys_own:
            self.kptr, self.keys = self.kptr.copy(), self.keys.copy()
            self._keys_own = True

    def _grow(self, rows: int) -> None:
        """Room for `rows` requests: padding rows never arrive (arrival +inf); the per-tenant ring
        queues are re-laid from their heads."""
        old = self.ri.shape[0]
        ri = np.zeros((rows, N_RI), dtype=np.int64)
        ri[:old] = self.ri
        ri[old:, OWN_NODE] = -1
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
        self._own_keys()
        kptr = np.full(rows + 1, self.kptr[old], dtype=np.int64)
        kptr[: old + 1] = self.kptr
        self.ri, self.rf, self.q, self.ev, self.kptr = ri, rf, q, ev, kptr

    def _capacity(self, knobs: Knobs) -> int:
        if self.config.kv_pool_blocks is not None:  # the pool as configured (vLLM's num_gpu_blocks_override)
            return int(knobs.kv_budget_fraction * self.config.kv_pool_blocks)
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
        self.si[S_CAP_NEXT] = cap  # the kernel resizes the pool, preempting if it must
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
                          self._pf_chunk, self.oldest_arrival, self.nd, self.ht, self.ndstack, _readonly(self.kptr),
                          _readonly(self.keys))

    # ------------------------------------------------------------------ observation
    def _state_summary(self, arrived_before: int) -> dict:
        n_t = len(self.workload.tenants)
        run_ids = self.run[: self.si[S_NRUN]]
        running = np.bincount(self.ri[run_ids, TEN], minlength=n_t)
        waiting = np.isfinite(self.oldest_arrival)
        oldest = np.where(waiting, 1e3 * (self.sf[0] - np.where(waiting, self.oldest_arrival, 0.0)), 0.0)
        return {"arrived_range": (arrived_before, int(self.si[S_NEXT])), "queue_depth": self.ql.copy(),
                "running": running, "oldest_wait_ms": oldest, "capacity": int(self.si[S_CAP]),
                "pending": self.pending_prompts(), "cached": int(self.si[S_CACHED]),
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
            pending_prompt_tokens=pend_sum, max_waiting_prompt_tokens=pend_max,
            kv_cached_blocks=int(self.si[S_CACHED]))

    def requests(self) -> "RequestTable":
        """Every request of the workload so far, by name (copies; a request not yet arrived has
        status "future")."""
        self._require_reset()
        ri, rf = self.ri[: self.n], self.rf[: self.n]
        return RequestTable(arrival_s=rf[:, ARR].copy(), first_token_s=rf[:, FIRST].copy(),
                            finish_s=rf[:, FINISH].copy(), prompt_tokens=ri[:, PROMPT].copy(),
                            output_tokens=ri[:, OUT].copy(), tenant=ri[:, TEN].copy(), status=ri[:, STATUS].copy(),
                            slo=ri[:, SLO].copy(), preemptions=ri[:, NPRE].copy(),
                            cached_prompt_tokens=ri[:, HIT].copy(), generated_tokens=ri[:, GEN].copy(),
                            last_token_s=rf[:, LAST].copy())

    @property
    def arrived(self) -> int:
        """How many requests of the workload have arrived by the simulator's clock (rows
        ``0..arrived-1`` of :meth:`requests`)."""
        self._require_reset()
        return int(self.si[S_NEXT])

    def cached_prefix_blocks(self, keys) -> int:
        """How many leading blocks of a request with these block keys this replica's prefix cache
        holds now (what its admission would reuse, before its own limit of tokens less one)."""
        self._require_reset()
        if not self.config.prefix_caching:
            return 0
        return int(engine.cached_prefix(self.ht, np.asarray(keys, dtype=np.int64)))

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
        self._check_pool()
        fin = self.ri[:, STATUS] == FINISHED
        assert np.all(self.rf[fin, FIRST] <= self.rf[fin, FINISH]), "TTFT > end-to-end"
        assert np.all(self.rf[fin, FIRST] >= self.rf[fin, ARR]), "first token before arrival"
        assert np.all(self.ri[~(self.ri[:, STATUS] == RUNNING), BLOCKS] == 0), "a non-running request holds blocks"
        assert np.all(self.rf[fin, LAST] == self.rf[fin, FINISH])

    def _check_pool(self) -> None:
        """The pool adds up: blocks in use (each shared block once) plus the free queue make the
        capacity; reference counts equal the requests holding each keyed block; the free queue
        and the hash table agree with the nodes."""
        nd, si = self.nd, self.si
        run_ids = self.run[: si[S_NRUN]]
        refs: dict[int, int] = {}
        own = 0
        for rid in run_ids:
            nsh = int(self.ri[rid, NSH])
            assert 0 <= nsh <= self.ri[rid, BLOCKS], "a request holds more shared blocks than blocks"
            own += int(self.ri[rid, BLOCKS]) - nsh
            for j in range(nsh):
                node = engine.ht_find(self.ht, self.keys[self.kptr[rid] + j])
                assert node >= 0 and nd[node, ND_KIND] == KIND_KEYED, "a held keyed block is not in the cache"
                refs[node] = refs.get(node, 0) + 1
        queued, cached, node, prev, seen = 0, 0, int(si[S_FHEAD]), -1, set()
        while node >= 0:
            assert node not in seen, "the free queue has a cycle"
            seen.add(node)
            assert nd[node, ND_PREV] == prev, "the free queue's links disagree"
            if nd[node, ND_KIND] == KIND_KEYED:
                assert nd[node, ND_REF] == 0, "a keyed block in the free queue is in use"
                queued += 1
                cached += 1
            else:
                assert nd[node, ND_KIND] == KIND_RUN and nd[node, ND_COUNT] > 0, "an empty or spare run is queued"
                queued += int(nd[node, ND_COUNT])
                owner = int(nd[node, ND_OWNER])
                if owner >= 0:
                    cached += int(nd[node, ND_COUNT])
                    assert self.ri[owner, OWN_NODE] == node and self.ri[owner, STATUS] == WAITING, \
                        "a run of own blocks has lost its owner"
            prev, node = node, int(nd[node, ND_NEXT])
        assert prev == si[S_FTAIL], "the free queue's tail is wrong"
        keyed = np.flatnonzero(nd[:, ND_KIND] == KIND_KEYED)
        for node in keyed:
            assert nd[node, ND_REF] == refs.get(int(node), 0), "a reference count disagrees with its holders"
        in_use = own + len(refs)
        assert queued == si[S_FREE], "S_FREE disagrees with the free queue"
        assert cached == si[S_CACHED], "S_CACHED disagrees with the free queue"
        assert in_use + queued == si[S_CAP], f"blocks in use ({in_use}) + free ({queued}) != capacity ({si[S_CAP]})"
        assert 0 <= in_use <= si[S_CAP], "KV blocks in use exceed capacity"
        assert int(np.count_nonzero(self.ht[:, 0] != EMPTY_KEY)) == keyed.size == si[S_HT_N], \
            "the hash table and the keyed nodes disagree"
        spare = int(np.count_nonzero(nd[:, ND_KIND] == 0))
        assert spare == si[S_NDTOP], "nodes leaked"
