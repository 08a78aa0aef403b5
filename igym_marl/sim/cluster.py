"""A cluster of serving replicas behind a router, with an autoscaler (cluster mode's engine).

>>> from igym_marl.sim.cluster import Cluster, ClusterConfig, Routing
>>> from igym_marl.sim import Knobs, toy_workload
>>> c = Cluster(ClusterConfig(replicas=2))
>>> c.reset(toy_workload(), seed=0)
>>> w = c.advance(5.0, [Knobs(batch_cap=8)] * 2, Routing("round_robin"), target_active=2)
>>> [sum(r) for r in w.routed]
[2, 1]

Each replica is an ordinary :class:`~igym_marl.sim.simulator.Simulator`; the cluster owns the
traffic and hands every window's arrivals to replicas with ``Simulator.add_requests``, so a
request lives on exactly one replica from its arrival on.

**Replica states.** ``off`` (no GPUs billed), ``starting`` (billed; loading weights and warming
the engine), ``active`` (billed; receives traffic) and ``draining`` (billed; receives no new
traffic, finishes what it holds, then turns off).

**Autoscaling.** ``target_active`` (1..N) is the number of replicas wanted up (starting or
active). Raising it first recalls draining replicas (they are warm: back to active at once), then
starts off replicas in index order; a start is a cold start of
``ClusterConfig.engine_start_s + weights / storage_gb_per_s`` seconds (its weights at the knobs'
quantization tier), and the replica turns active at the first window boundary after it. Lowering
it first cancels starting replicas (highest index first), then drains active ones (highest index
first). A draining replica keeps serving its waiting and running requests under its knobs and
turns off at the first window boundary where it holds none: requests are never lost or moved.

**Routing.** Arrivals of the window ``[t, t + seconds)`` go to active replicas by one rule
(:data:`ROUTING_RULES`):

* ``round_robin``: in turn, continuing from the last window;
* ``least_outstanding``: each request to the replica with the fewest outstanding tokens (prompt +
  output tokens of its waiting and running requests at the window's start, plus what this window
  already sent it), the join-the-shortest-queue rule of production LLM routers;
* ``tenant_pinning``: replica i serves tenant i mod T (T tenants), least outstanding within the
  tenant's replicas; a tenant with no active replica of its own falls back to all of them;
* ``weighted``: ``Routing.weights[t, i]``, tenant t's share for replica i (renormalised over the
  active replicas; each request drawn from the cluster's seeded generator);
* ``prefix_affinity``: cache affinity with a load guard, in the manner of vLLM's router and
  SGLang's gateway (their ``cache_aware`` policy and its defaults): a request goes to the replica
  holding the longest cached prefix of it (its blocks cached there now, or sent there earlier in
  this window; ties by least outstanding tokens) when that prefix is at least
  ``CACHE_THRESHOLD`` (0.3) of its prompt, else to the replica with the least outstanding tokens;
  and once the busiest replica holds more than ``BALANCE_ABS`` (64) outstanding requests over the
  idlest and more than ``BALANCE_REL`` (1.5) times as many, to the least loaded whatever it
  caches. (Below the threshold, SGLang sends a request to the replica whose cache names the fewest
  blocks; on cluster_conversation that fallback, blind to load, queues requests behind 100k-token
  prefills: TTFT attainment 0.859 against least outstanding's 0.923 over seeds 1,000,000-002.
  The bare rule, always the longest prefix, sends every request to the first replica that cached
  the system prompt all of them share.)
* ``scored``: llm-d's scheduler's way: every active replica scores ``prefix_weight`` x its prefix
  score (the share of the request's prompt blocks it holds, as above) + half the rest x its queue
  score ((most waiting - its waiting) / (most - fewest), 1 when all are equal; waiting counts what
  this window sent it) + half the rest x its KV score (1 - KV occupancy), and the best score wins
  (ties: the lowest index). llm-d-router's profile weighs the prefix-cache, queue and
  KV-utilisation scorers 3, 2 and 2: ``prefix_weight`` 3/7 (``LLM_D_PREFIX_WEIGHT``).

Everything is deterministic under the seed, and :meth:`Cluster.clone` copies the whole state
(every replica, the router's turn and generator) for look-ahead controllers.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from .layout import ARR, OUT, PROMPT, RUNNING, S_CAP, S_FREE, S_NEXT, STATUS, WAITING
from .metrics import WindowMetrics
from .simulator import Simulator
from .types import Knobs, SimConfig, Workload, _float_in, take_keys

MAX_REPLICAS = 64
ROUTING_RULES = ("round_robin", "least_outstanding", "tenant_pinning", "weighted", "prefix_affinity", "scored")
# llm-d-router's scoring profile: prefix-cache match weight 3, queue depth 2, KV-cache utilisation 2
# (GPUStack's model-deployment routing docs, "Each router's default"; Red Hat OpenShift AI 3.4 names
# the same prefix and queue weights for llm-d's default profile): the prefix score's share is 3 / 7.
LLM_D_PREFIX_WEIGHT = 3 / 7
# vLLM's router and SGLang's gateway, cache_aware policy defaults (the same page): --cache-threshold,
# --balance-abs-threshold, --balance-rel-threshold.
CACHE_THRESHOLD, BALANCE_ABS, BALANCE_REL = 0.3, 64, 1.5
STATES = ("off", "starting", "active", "draining")
OFF, STARTING, ACTIVE, DRAINING = range(4)
BILLED = (STARTING, ACTIVE, DRAINING)


@dataclass(frozen=True)
class ClusterConfig:
    """The replicas and what a cold start costs.

    replicas: N (identical replicas of ``replica``) or a tuple of SimConfig, one per replica
      (heterogeneous clusters, e.g. A100 and H100 replicas), 1..64.
    storage_gb_per_s: read bandwidth of the weights' store at a cold start (2 GB/s: one local NVMe
      SSD, or a fast network object store, read with safetensors).
    engine_start_s: the engine's start-up before it serves: process start, memory profiling and
      CUDA-graph capture (vLLM's start-up takes tens of seconds beyond loading weights).
    initial_active: replicas active at reset (None: all).
    """

    replicas: int | tuple[SimConfig, ...] = 4
    replica: SimConfig = field(default_factory=SimConfig)
    storage_gb_per_s: float = 2.0
    engine_start_s: float = 20.0
    initial_active: int | None = None

    def __post_init__(self):
        r = self.replicas
        if isinstance(r, bool) or not isinstance(r, (int, tuple)):
            raise ValueError(f"replicas={r!r} must be a count 1..{MAX_REPLICAS} or a tuple of SimConfig")
        if isinstance(r, int):
            if not 1 <= r <= MAX_REPLICAS:
                raise ValueError(f"replicas={r} must be in 1..{MAX_REPLICAS}")
            if not isinstance(self.replica, SimConfig):
                raise ValueError(f"replica must be a SimConfig, got {type(self.replica).__name__}")
        else:
            if not 1 <= len(r) <= MAX_REPLICAS or not all(isinstance(c, SimConfig) for c in r):
                raise ValueError(f"replicas must hold 1..{MAX_REPLICAS} SimConfig; got {len(r)} item(s)")
        for name in ("storage_gb_per_s", "engine_start_s"):
            v = getattr(self, name)
            lo = 0.0 if name == "engine_start_s" else 1e-3
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < lo:
                raise ValueError(f"{name}={v!r} must be a finite number >= {lo}")
        a = self.initial_active
        if a is not None and (isinstance(a, bool) or not isinstance(a, int) or not 1 <= a <= self.n):
            raise ValueError(f"initial_active={a!r} must be None or an integer in 1..{self.n}")

    @property
    def n(self) -> int:
        return self.replicas if isinstance(self.replicas, int) else len(self.replicas)

    @property
    def configs(self) -> tuple[SimConfig, ...]:
        return (self.replica,) * self.replicas if isinstance(self.replicas, int) else self.replicas


@dataclass(frozen=True, eq=False)
class Routing:
    """How a window's arrivals are spread (see the module docstring). ``weights``: float[T, N],
    only for rule ``weighted``: finite, >= 0, every tenant's row with a positive sum.
    ``prefix_weight``: only for rule ``scored``, in [0, 1]."""

    rule: str = "least_outstanding"
    weights: np.ndarray | None = None
    prefix_weight: float | None = None

    def __post_init__(self):
        if self.rule not in ROUTING_RULES:
            raise ValueError(f"rule={self.rule!r} is unknown; allowed: {', '.join(ROUTING_RULES)}")
        if self.rule == "scored":
            v = self.prefix_weight
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise ValueError(f"prefix_weight={v!r} must be a number in [0, 1] for rule 'scored' (llm-d's "
                                 f"default: {LLM_D_PREFIX_WEIGHT})")
        elif self.prefix_weight is not None:
            raise ValueError(f"prefix_weight is for rule 'scored' only; rule is {self.rule!r}")
        if self.rule != "weighted":
            if self.weights is not None:
                raise ValueError(f"weights are for rule 'weighted' only; rule is {self.rule!r}")
            return
        if self.weights is None:
            raise ValueError("rule 'weighted' needs weights: float[tenants, replicas]")
        w = np.array(self.weights, dtype=np.float64)
        if w.ndim != 2:
            raise ValueError(f"weights must be 2-D [tenants, replicas]; got shape {w.shape}")
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            t, i = (int(x) for x in np.argwhere(bad)[0])
            raise ValueError(f"weights[{t}, {i}]={float(w[t, i])!r} must be finite and >= 0")
        zero = np.flatnonzero(w.sum(axis=1) <= 0)
        if zero.size:
            raise ValueError(f"weights[{int(zero[0])}] are all zero: tenant {int(zero[0])} could go nowhere")
        w.setflags(write=False)
        object.__setattr__(self, "weights", w)


@dataclass(frozen=True)
class ClusterWindow:
    """One window of the cluster: per replica its metrics, its state during the window, and the
    arrivals it was sent per tenant; the GPU cost billed."""

    t_start_s: float
    seconds: float
    replicas: tuple[WindowMetrics, ...]
    states: tuple[str, ...]  # each replica's state during the window
    routed: tuple[tuple[int, ...], ...]  # per replica, per tenant: arrivals sent to it in the window
    billed_usd: float  # GPU cost of the window's billed replicas (starting, active, draining)
    fleet_usd: float  # GPU cost of the window had every replica been billed



def _least_loaded(dest, load, groups, ten, size) -> None:
    """Send request j to the least loaded replica of groups[ten[j]] (ties: the lowest index),
    adding its size to that replica's load. Groups that are identical or disjoint share a heap
    per group (O(log N) per request); groups that overlap otherwise fall back to a scan."""
    distinct = {id(g): g for g in groups}
    members = np.concatenate(list(distinct.values()))
    if members.size == np.unique(members).size:  # every replica in one group only
        heaps = {k: [(load[i], int(i)) for i in g] for k, g in distinct.items()}
        for h in heaps.values():
            heapq.heapify(h)
        by_tenant = [heaps[id(g)] for g in groups]
        for j in range(dest.shape[0]):
            h = by_tenant[ten[j]]
            w, i = h[0]
            dest[j] = i
            heapq.heapreplace(h, (w + size[j], i))
        return
    for j in range(dest.shape[0]):
        g = groups[ten[j]]
        best = g[np.argmin(load[g])]  # the first of the least loaded: ties go to the lowest index
        dest[j] = best
        load[best] += size[j]


class Cluster:
    """N replicas, a router and an autoscaler, advanced window by window."""

    def __init__(self, config: ClusterConfig | None = None):
        self.config = config if config is not None else ClusterConfig()
        if not isinstance(self.config, ClusterConfig):
            raise ValueError(f"config must be a ClusterConfig, got {type(self.config).__name__}")
        self.sims = [Simulator(c) for c in self.config.configs]
        self.usd_per_hour = np.array([s.usd_per_hour for s in self.sims])
        self.workload: Workload | None = None

    @property
    def n(self) -> int:
        return len(self.sims)

    def cold_start_s(self, i: int, tier: str) -> float:
        """Seconds from a start order to serving, for replica i loading weights of `tier`."""
        return self.config.engine_start_s + self.sims[i].replica.weights_gb(tier) / self.config.storage_gb_per_s

    # ------------------------------------------------------------------ lifecycle
    def reset(self, workload: Workload, seed=None, knobs: Knobs | None = None) -> None:
        if not isinstance(workload, Workload):
            raise ValueError(f"workload must be a Workload, got {type(workload).__name__}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed={seed!r} must be a non-negative integer or None")
        base = int(np.random.default_rng(seed).integers(0, 2**62))
        self.workload = workload
        z = np.zeros(0, dtype=np.int64)
        empty = Workload(np.zeros(0), z, z, z, tenants=workload.tenants, name=workload.name)
        for i, sim in enumerate(self.sims):
            sim.reset(empty, seed=int(np.random.default_rng([base, i]).integers(0, 2**62)), knobs=knobs)
        self.rng = np.random.default_rng([base, self.n])
        k = self.config.initial_active if self.config.initial_active is not None else self.n
        self.state = np.array([ACTIVE] * k + [OFF] * (self.n - k), dtype=np.int64)
        self.ready_at = np.zeros(self.n)
        self.next = 0  # the next arrival of the workload to route
        self.turn = 0  # round robin's position
        self.owner = np.full(len(workload), -1, dtype=np.int64)  # replica of every routed request
        self.row = np.full(len(workload), -1, dtype=np.int64)  # its row on that replica
        self.t_nominal = 0.0
        self.windows = 0

    def clone(self) -> "Cluster":
        """An independent copy with the same future for the same decisions."""
        self._require_reset()
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.sims = [s.clone() for s in self.sims]
        new.rng = np.random.default_rng()
        new.rng.bit_generator.state = self.rng.bit_generator.state
        for name in ("state", "ready_at", "owner", "row"):
            setattr(new, name, getattr(self, name).copy())
        return new

    def _require_reset(self):
        if self.workload is None:
            raise RuntimeError("call reset(workload, seed) before advance()")

    # ------------------------------------------------------------------ stepping
    def advance(self, seconds: float, knobs, routing: Routing, target_active: int) -> ClusterWindow:
        """Apply the autoscaler's target, route the window's arrivals, run every replica for
        `seconds` under its knobs (a sequence of N Knobs, or one Knobs for all)."""
        self._require_reset()
        seconds = _float_in("seconds", seconds, 1e-6, 1e7)  # checked before anything changes
        if isinstance(knobs, Knobs):
            knobs = [knobs] * self.n
        knobs = list(knobs)
        if len(knobs) != self.n or not all(isinstance(k, Knobs) for k in knobs):
            raise ValueError(f"knobs must be one Knobs or a sequence of {self.n} Knobs (one per replica)")
        if not isinstance(routing, Routing):
            raise ValueError(f"routing must be a Routing, got {type(routing).__name__}")
        if routing.weights is not None and routing.weights.shape != (len(self.workload.tenants), self.n):
            raise ValueError(f"weights have shape {routing.weights.shape}; expected "
                             f"({len(self.workload.tenants)}, {self.n}) [tenants, replicas]")
        if isinstance(target_active, bool) or not isinstance(target_active, (int, np.integer)) \
                or not 1 <= target_active <= self.n:
            raise ValueError(f"target_active={target_active!r} must be an integer in 1..{self.n}")
        t0 = self.t_nominal
        t1 = t0 + float(seconds)
        saved = (self.state.copy(), self.ready_at.copy(), self.next, self.turn)
        self._settle(t0)
        self._scale(int(target_active), t0, knobs)
        states = tuple(STATES[s] for s in self.state)
        try:
            routed = self._route(t1, routing)
        except ValueError:  # weights that send a tenant nowhere: refused before any request moved
            self.state, self.ready_at, self.next, self.turn = saved
            raise
        billed = float(sum(self.usd_per_hour[i] for i in range(self.n) if self.state[i] in BILLED))
        metrics = tuple(sim.advance(seconds, k) for sim, k in zip(self.sims, knobs))
        self.t_nominal = t1
        self.windows += 1
        h = seconds / 3600.0
        return ClusterWindow(t0, float(seconds), metrics, states, routed, billed * h,
                             float(self.usd_per_hour.sum()) * h)

    def _settle(self, now: float) -> None:
        """Window boundary: started replicas that are ready turn active, empty drains turn off."""
        for i in range(self.n):
            if self.state[i] == STARTING and self.ready_at[i] <= now:
                self.state[i] = ACTIVE
            elif self.state[i] == DRAINING and self.outstanding(i)[0] == 0:
                self.state[i] = OFF

    def _scale(self, target: int, now: float, knobs) -> None:
        up = [i for i in range(self.n) if self.state[i] in (STARTING, ACTIVE)]
        need = target - len(up)
        for i in range(self.n):  # recall warm (draining) replicas first
            if need > 0 and self.state[i] == DRAINING:
                self.state[i] = ACTIVE
                need -= 1
        for i in range(self.n):
            if need > 0 and self.state[i] == OFF:
                self.state[i] = STARTING
                self.ready_at[i] = now + self.cold_start_s(i, knobs[i].quantization_tier)
                need -= 1
        for i in reversed(range(self.n)):  # cancel starts before draining serving replicas
            if need < 0 and self.state[i] == STARTING:
                self.state[i] = OFF
                need += 1
        for i in reversed(range(self.n)):
            if need < 0 and self.state[i] == ACTIVE:
                self.state[i] = DRAINING
                need += 1

    def outstanding(self, i: int) -> tuple[int, int]:
        """(requests, prompt + output tokens) waiting or running on replica i."""
        sim = self.sims[i]
        n_arr = int(sim.si[S_NEXT])
        st = sim.ri[:n_arr, STATUS]
        live = (st == WAITING) | (st == RUNNING)
        # requests routed but not yet arrived at the replica's clock count too
        late = sim.n - n_arr
        tokens = int(sim.ri[:n_arr, PROMPT][live].sum() + sim.ri[:n_arr, OUT][live].sum())
        if late:
            tokens += int(sim.ri[n_arr:sim.n, PROMPT].sum() + sim.ri[n_arr:sim.n, OUT].sum())
        return int(live.sum()) + late, tokens

    def _route(self, t_end: float, routing: Routing) -> tuple[tuple[int, ...], ...]:
        w = self.workload
        lo = self.next
        hi = int(np.searchsorted(w.arrival_s, t_end, side="left"))
        self.next = hi
        n_t = len(w.tenants)
        active = np.flatnonzero(self.state == ACTIVE)
        counts = [np.zeros(n_t, dtype=np.int64) for _ in range(self.n)]
        if hi == lo:
            return tuple(tuple(int(x) for x in c) for c in counts)
        ten = w.tenant[lo:hi]
        dest = np.empty(hi - lo, dtype=np.int64)
        if routing.rule == "round_robin":
            dest[:] = active[(self.turn + np.arange(hi - lo)) % active.size]
            self.turn = (self.turn + hi - lo) % active.size
        elif routing.rule == "weighted":
            wt = routing.weights[:, active]
            for t in range(n_t):
                sel = np.flatnonzero(ten == t)
                if not sel.size:
                    continue
                row = wt[t]
                if row.sum() <= 0:
                    raise ValueError(f"weights for tenant {t} ({w.tenants[t].name}) are zero on every active "
                                     f"replica {active.tolist()}")
                dest[sel] = active[np.searchsorted(np.cumsum(row / row.sum()), self.rng.random(sel.size),
                                                   side="right").clip(0, active.size - 1)]
        elif routing.rule in ("prefix_affinity", "scored"):
            self._route_by_prefix(dest, lo, hi, active, routing)
        else:
            load = np.zeros(self.n)
            for i in active:
                load[i] = self.outstanding(int(i))[1]
            size = (w.prompt_tokens[lo:hi] + w.output_tokens[lo:hi]).astype(np.float64)
            groups = [active] * n_t
            if routing.rule == "tenant_pinning":
                for t in range(n_t):
                    own = active[active % n_t == t]
                    if own.size:
                        groups[t] = own
            _least_loaded(dest, load, groups, ten, size)
        for i in np.unique(dest):
            sel = np.flatnonzero(dest == i) + lo
            keys = take_keys(w.key_ptr, w.block_keys, sel) if w.has_keys else (None, None)
            rows = self.sims[i].add_requests(w.arrival_s[sel], w.prompt_tokens[sel], w.output_tokens[sel],
                                             w.tenant[sel], *keys)
            self.owner[sel] = i
            self.row[sel] = rows
            counts[i] = np.bincount(w.tenant[sel], minlength=n_t)
        return tuple(tuple(int(x) for x in c) for c in counts)

    def _route_by_prefix(self, dest, lo: int, hi: int, active: np.ndarray, routing: Routing) -> None:
        """prefix_affinity and scored (module docstring), request by request in arrival order; what
        earlier requests of the window were sent counts as cached on their replica and in its load."""
        w = self.workload
        bt = self.sims[0].config.block_tokens
        load = np.zeros(self.n)  # outstanding tokens
        count = np.zeros(self.n)  # outstanding requests
        for i in active:
            count[i], load[i] = self.outstanding(int(i))
        waiting = np.array([float(sum(self.sims[i].ql)) for i in range(self.n)])
        kv = np.array([1.0 - self.sims[i].si[S_FREE] / max(1, self.sims[i].si[S_CAP]) for i in range(self.n)])
        sent: list[set] = [set() for _ in range(self.n)]
        for j in range(lo, hi):
            keys = w.keys_of(j)[: int(w.prompt_tokens[j]) // bt] if w.has_keys else np.zeros(0, dtype=np.int64)
            held = np.zeros(self.n)
            for i in active:
                m = self.sims[i].cached_prefix_blocks(keys)
                while m < keys.shape[0] and int(keys[m]) in sent[i]:
                    m += 1
                held[i] = m
            share = held / keys.shape[0] if keys.shape[0] else np.zeros(self.n)
            if routing.rule == "prefix_affinity":
                c = count[active]
                if c.max() - c.min() > BALANCE_ABS and c.max() > BALANCE_REL * c.min():
                    best = min(active, key=lambda i: (load[i], i))
                elif share[active].max() >= CACHE_THRESHOLD:
                    best = max(active, key=lambda i: (held[i], -load[i], -i))
                else:
                    best = min(active, key=lambda i: (load[i], i))
            else:
                q = waiting[active]
                spread = q.max() - q.min()
                queue = (q.max() - q) / spread if spread > 0 else np.ones(active.size)
                rest = (1.0 - routing.prefix_weight) / 2.0
                score = routing.prefix_weight * share[active] + rest * queue + rest * (1.0 - kv[active])
                best = active[int(np.argmax(score))]
            best = int(best)
            dest[j - lo] = best
            load[best] += float(w.prompt_tokens[j] + w.output_tokens[j])
            count[best] += 1.0
            waiting[best] += 1.0
            sent[best].update(int(k) for k in keys)

    # ------------------------------------------------------------------ accounting
    def check_invariants(self) -> None:
        """Every routed request is on exactly one replica, in its row; no request is lost."""
        for sim in self.sims:
            sim.check_invariants()
        routed = self.owner[: self.next]
        assert np.all(routed >= 0), "a request that arrived was not routed"
        assert np.all(self.owner[self.next:] == -1), "a future request was routed"
        per = np.bincount(routed, minlength=self.n)
        assert all(per[i] == self.sims[i].n for i in range(self.n)), "a replica holds requests not routed to it"
        for i in range(self.n):
            sel = np.flatnonzero(routed == i)
            np.testing.assert_array_equal(self.sims[i].rf[self.row[sel], ARR], self.workload.arrival_s[sel])
        assert not np.any((self.state == OFF) & np.array([self.outstanding(i)[0] > 0 for i in range(self.n)])), \
            "an off replica holds requests"

    def request_status(self) -> np.ndarray:
        """int64[n]: every workload request's status (layout's FUTURE .. ABANDONED) on its replica."""
        out = np.zeros(len(self.workload), dtype=np.int64)
        for i, sim in enumerate(self.sims):
            sel = np.flatnonzero(self.owner == i)
            out[sel] = sim.ri[self.row[sel], STATUS]
        return out


__all__ = ["Cluster", "ClusterConfig", "ClusterWindow", "Routing", "ROUTING_RULES", "STATES", "MAX_REPLICAS"]
