"""The team: which agents operate the replica, the knobs each owns, what each sees of its own, and
its optional shaping term, as data (functions defined at module level keep an env picklable). Nothing else in the package enumerates the agents: the env's
spaces, the action encoding, the observation layout and the shaping all read a :class:`Team`.

``STANDARD`` is serving_v0's team of four. A team with another agent is a table with one more row
(docs/architecture.md works one through)::

    from igym_marl.envs.team import STANDARD, AgentSpec, Team
    chunker = AgentSpec("chunk_controller", ("prefill_decode_split",))
    scheduler = STANDARD.spec("batch_scheduler").owning("batch_cap")
    team = Team((scheduler, chunker, *STANDARD.agents[1:]))
    env = serving_v0.parallel_env(team=team)

A knob no agent owns holds the team's ``base`` value (vLLM's default unless given): a subset of
the four is the same replica with the others frozen there.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np

from ..sim.types import KNOB_LEVELS, VLLM_DEFAULT, Knobs, level_index, nearest_level
from .featurespec import Feature, finite, sq


@dataclass(frozen=True)
class AgentKnobs:
    """The knobs an agent owns and their levels; its Discrete index enumerates their product, the
    last knob varying fastest."""

    name: str
    knobs: tuple[str, ...]
    levels: tuple[tuple, ...]  # one tuple of levels per knob

    @cached_property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.levels)

    @cached_property
    def n(self) -> int:
        return int(np.prod(self.sizes))

    @cached_property
    def table(self) -> tuple[dict, ...]:
        """index -> knob values, for every index (the decoding order written once)."""
        out = []
        for flat in range(self.n):
            idx = []
            for size in reversed(self.sizes):
                idx.append(flat % size)
                flat //= size
            out.append({k: lv[i] for k, lv, i in zip(self.knobs, self.levels, reversed(idx))})
        return tuple(out)


@dataclass(frozen=True)
class AgentSpec:
    """One agent.

    name: its id in the env's dicts. knobs: the simulator knobs it owns (``sim.types.KNOB_LEVELS``
    gives their levels). own: its own observation features, after the shared part. measure:
    ``(feature_builder, window_metrics, pending_prompts, knobs) -> list`` of its own quantities
    before scaling, one per feature of ``own`` (called only after a window was served). shaping:
    ``(window_metrics, task) -> penalty in [0, 1]``; with ``shaping=True`` the env adds
    ``-SHAPING_WEIGHT x penalty`` to this agent's reward (None: no term). role: one line for docs.
    """

    name: str
    knobs: tuple[str, ...]
    own: tuple[Feature, ...] = ()
    measure: Callable[..., list] = field(default=None, repr=False)  # None: no own features
    shaping: Callable[..., float] | None = field(default=None, repr=False)
    role: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"agent name={self.name!r} must be an identifier (letters, digits, _)")
        if not isinstance(self.knobs, tuple) or not self.knobs:
            raise ValueError(f"agent {self.name!r}: knobs={self.knobs!r} must be a non-empty tuple of knob names")
        for k in self.knobs:
            if k not in KNOB_LEVELS:
                raise ValueError(f"agent {self.name!r}: knob {k!r} is unknown; knobs are {', '.join(KNOB_LEVELS)}")
        if len(set(self.knobs)) != len(self.knobs):
            raise ValueError(f"agent {self.name!r}: knobs={self.knobs!r} names a knob twice")
        if not isinstance(self.own, tuple) or not all(isinstance(f, Feature) for f in self.own):
            raise ValueError(f"agent {self.name!r}: own must be a tuple of Feature")
        if (self.measure is None) != (not self.own):
            raise ValueError(f"agent {self.name!r}: own features need a measure, and a measure needs own features "
                             f"(own has {len(self.own)})")

    @cached_property
    def action(self) -> AgentKnobs:
        return AgentKnobs(self.name, self.knobs, tuple(KNOB_LEVELS[k] for k in self.knobs))

    def owning(self, *knobs: str) -> "AgentSpec":
        """This agent owning only `knobs` (its features and shaping kept)."""
        return dataclasses.replace(self, knobs=tuple(knobs))


def _as_index(agent: str, what: str, value, n: int) -> int:
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and not float(value) == float(value):
            raise ValueError(f"agent {agent!r}: {what}={value!r} is NaN; allowed: an integer in 0..{n - 1}")
        raise ValueError(f"agent {agent!r}: {what}={value!r} has type {type(value).__name__}; "
                         f"allowed: an integer in 0..{n - 1}")
    if not 0 <= int(value) < n:
        raise ValueError(f"agent {agent!r}: {what}={value!r} is out of range; allowed: an integer in 0..{n - 1}")
    return int(value)


@dataclass(frozen=True)
class Team:
    """The agents, in order, and the value of every knob none of them owns."""

    agents: tuple[AgentSpec, ...]
    base: Knobs = VLLM_DEFAULT

    def __post_init__(self):
        if not isinstance(self.agents, tuple) or not self.agents or \
                not all(isinstance(a, AgentSpec) for a in self.agents):
            raise ValueError("a team needs a non-empty tuple of AgentSpec")
        names = [a.name for a in self.agents]
        if len(set(names)) != len(names):
            raise ValueError(f"agent names {names} repeat a name")
        owner = {}
        for a in self.agents:
            for k in a.knobs:
                if k in owner:
                    raise ValueError(f"knob {k!r} is owned by both {owner[k]!r} and {a.name!r}; one agent owns a knob")
                owner[k] = a.name
        if not isinstance(self.base, Knobs):
            raise ValueError(f"base={self.base!r} must be a Knobs")
        object.__setattr__(self, "_joint_cache", {})
        object.__setattr__(self, "_levels_cache", {})

    # ------------------------------------------------------------------ who
    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.agents)

    def spec(self, agent: str) -> AgentSpec:
        for a in self.agents:
            if a.name == agent:
                return a
        raise ValueError(f"agent={agent!r} is unknown; agents are {', '.join(self.names)}")

    def owned(self, agent: str) -> AgentKnobs:
        return self.spec(agent).action

    @cached_property
    def frozen_knobs(self) -> tuple[str, ...]:
        """Knobs no agent owns: they hold their ``base`` values."""
        mine = {k for a in self.agents for k in a.knobs}
        return tuple(k for k in KNOB_LEVELS if k not in mine)

    def signature(self) -> dict[str, list[str]]:
        """{agent: its knobs}: what a checkpoint records of the team it was trained with."""
        return {a.name: list(a.knobs) for a in self.agents}

    # ------------------------------------------------------------------ actions
    def decode(self, agent: str, action) -> dict:
        """Discrete index (or the per-knob level indices) -> knob values."""
        owned = self.owned(agent)
        arr = np.asarray(action) if not isinstance(action, (numbers.Number, np.generic)) else None
        if arr is None or arr.ndim != 1:
            return dict(owned.table[_as_index(agent, "action", action, owned.n)])
        if arr.shape != (len(owned.knobs),):
            raise ValueError(f"agent {agent!r}: multidiscrete action has shape {arr.shape}; expected "
                             f"({len(owned.knobs)},) for knobs {owned.knobs}")
        values = arr.tolist() if arr.dtype.kind in "iu" else arr
        idx = [_as_index(agent, k, v, len(lv)) for k, v, lv in zip(owned.knobs, values, owned.levels)]
        return {k: lv[i] for k, lv, i in zip(owned.knobs, owned.levels, idx)}

    def encode(self, agent: str, **knobs) -> int:
        """Knob values -> the agent's Discrete index; each value must be one of its levels."""
        owned = self.owned(agent)
        if set(knobs) != set(owned.knobs):
            raise ValueError(f"agent {agent!r} owns knobs {owned.knobs}; got {tuple(knobs)}")
        flat = 0
        for k, lv in zip(owned.knobs, owned.levels):
            i = level_index(k, knobs[k])
            if i is None:
                raise ValueError(f"agent {agent!r}: {k}={knobs[k]!r} is not a level; allowed: {lv}")
            flat = flat * len(lv) + i
        return flat

    def level_indices(self, agent: str, action: int) -> tuple[int, ...]:
        """Discrete index -> per-knob level indices (the multidiscrete form)."""
        out = []
        for size in reversed(self.owned(agent).sizes):
            out.append(action % size)
            action //= size
        return tuple(reversed(out))

    def index_of_levels(self, agent: str, levels) -> int:
        """Per-knob level indices -> the Discrete index, each checked against its knob's level count."""
        owned = self.owned(agent)
        flat = 0
        for k, v, size in zip(owned.knobs, levels, owned.sizes):
            flat = flat * size + _as_index(agent, k, v, size)
        return flat

    def joint(self, actions: dict) -> Knobs:
        """Every agent's Discrete index -> one validated Knobs (unowned knobs at ``base``)."""
        key = tuple(int(actions[a]) for a in self.names)
        knobs = self._joint_cache.get(key)
        if knobs is None:
            values = self.base.as_dict()
            for a, i in zip(self.names, key):
                values.update(self.decode(a, i))
            knobs = self._joint_cache[key] = Knobs(**values)
        return knobs

    def knob_levels(self, actions: dict) -> tuple[float, ...]:
        """Every knob's level index, in KNOB_LEVELS order, under the agents' actions (the knobs no
        agent owns at their base levels): the last-action features. Cached on the team, so every
        env of the team shares one table."""
        key = tuple(int(actions[a]) for a in self.names)
        out = self._levels_cache.get(key)
        if out is None:
            base = self.base.as_dict()
            levels = {k: level_index(k, base[k]) for k in self.frozen_knobs}
            for a, i in zip(self.agents, key):
                levels.update(zip(a.knobs, self.level_indices(a.name, i)))
            out = self._levels_cache[key] = tuple(float(levels[k]) for k in KNOB_LEVELS)
        return out

    def to_actions(self, knobs: Knobs) -> dict[str, int]:
        """Knobs whose owned values are all levels -> each agent's Discrete index."""
        d = knobs.as_dict()
        return {a.name: self.encode(a.name, **{k: d[k] for k in a.knobs}) for a in self.agents}

    def nearest_actions(self, knobs: Knobs) -> dict[str, int]:
        """Each agent's action at the levels nearest to `knobs` (``sim.types.nearest_level``)."""
        d = knobs.as_dict()
        return {a.name: self.encode(a.name, **{k: KNOB_LEVELS[k][nearest_level(k, d[k])] for k in a.knobs})
                for a in self.agents}

    @cached_property
    def default_actions(self) -> dict[str, int]:
        """vLLM's default configuration (the team's base) as the agents' indices."""
        return self.to_actions(self.base)

    # ------------------------------------------------------------------ rewards
    def shaping(self, m, task, weight: float) -> dict[str, float]:
        """Each agent's shaping term, ``-weight x penalty`` (0 for an agent without one)."""
        return {a.name: -weight * a.shaping(m, task) if a.shaping is not None else 0.0 for a in self.agents}


# ---------------------------------------------------------------------------------- the standard four
F = Feature


def _scheduler(b, m, snap, knobs) -> list:
    iters = m.iterations
    itl = m.latency.itl_p99_ms
    return [b.mean_iteration_s(m), m.prefill_only_iterations / iters if iters else 0.0, m.max_iteration_ms,
            itl / 1e3 / b.min_tpot_s if itl == itl else 0.0, m.running / knobs.batch_cap, m.prefill_tps]


def _kv(b, m, snap, knobs) -> list:
    cap_tokens = b.kv_tokens(m)
    return [m.kv_occupancy_mean, snap[0] / cap_tokens, snap[1] / cap_tokens, 1.0 if m.reload_s > 0 else 0.0,
            b.weights_frac[knobs.quantization_tier], cap_tokens,
            m.kv_cached_blocks / m.kv_capacity_blocks if m.kv_capacity_blocks else 0.0]


def _spec(b, m, snap, knobs) -> list:
    acc, prompt, tpot50 = m.spec_acceptance_rate, m.mean_prompt_tokens, m.latency.tpot_p50_ms
    return [acc if acc == acc else 0.0, 1.0 if m.spec_proposed_tokens else 0.0, m.running,
            prompt if prompt == prompt else 0.0, tpot50 / 1e3 / b.min_tpot_s if tpot50 == tpot50 else 0.0]


def _router(b, m, snap, knobs) -> list:
    out = []
    for i, ttft_ms in ((b.top, b.top_ttft_ms), (b.bottom, b.bottom_ttft_ms)):
        t = m.tenants[i]
        decided = t.slo_met + t.slo_missed
        out += [t.queue_depth, t.oldest_wait_ms / ttft_ms, t.slo_met / decided if decided else 0.0]
    return out


def _kv_pressure(m, task) -> float:
    return sq(m.preemptions + m.rejected)


def _late_share(m, task) -> float:
    """Share of tenants whose oldest waiting request is past its TTFT SLO."""
    return sum(1 for x, s in zip(m.tenants, task.tenants) if x.oldest_wait_ms > s.ttft_slo_ms) / len(task.tenants)


def _tpot_pressure(m, task) -> float:
    return sq(finite(m.latency.tpot_p50_ms) / min(x.tpot_slo_ms for x in task.tenants))


def _top_missed(m, task) -> float:
    top = max(range(len(task.tenants)), key=lambda i: task.tenants[i].priority)
    t = m.tenants[top]
    decided = t.slo_met + t.slo_missed
    return t.slo_missed / decided if decided else 0.0


STANDARD = Team((
    AgentSpec("batch_scheduler", ("batch_cap", "prefill_decode_split"), own=(
        F("mean_iteration", "mean iteration time in s", 0.05, squash=True),
        F("prefill_only_share", "prefill-only iterations / iterations"),
        F("max_iteration", "longest iteration in ms", 100, squash=True),
        F("itl_p99", "p99 inter-token latency / tightest TPOT SLO", squash=True),
        F("cap_use", "running / batch_cap", cap=True),
        F("prefill_rate", "prompt tokens/s", 10000, squash=True),
    ), measure=_scheduler, shaping=_late_share,
        role="how many sequences run at once, and whether prompts are chunked into decode iterations"),
    AgentSpec("kv_manager", ("kv_budget_fraction", "quantization_tier"), own=(
        F("kv_occupancy_mean", "time-averaged KV occupancy in the window", cap=True),
        F("pending_prompt", "prompt tokens waiting / KV capacity in tokens", squash=True),
        F("largest_waiting_prompt", "largest waiting prompt / KV capacity in tokens", squash=True),
        F("reloaded", "1 if a quantization switch paused the engine in the window"),
        F("weights", "weight memory / installed GPU memory", cap=True),
        F("kv_capacity", "KV capacity in tokens", 100000, squash=True),
        F("kv_cached_end", "cached blocks no request uses / KV capacity, at the window's end"),
    ), measure=_kv, shaping=_kv_pressure,
        role="the share of the KV pool requests may use, and the weights' precision"),
    AgentSpec("spec_controller", ("speculation_depth",), own=(
        F("acceptance", "accepted / proposed draft tokens", note="0 when not speculating"),
        F("speculating", "1 if drafts were proposed in the window"),
        F("batch", "running requests", 16, squash=True),
        F("prompt_length", "mean prompt of the window's arrivals in tokens", 1024, squash=True),
        F("tpot_p50", "p50 TPOT / tightest TPOT SLO", squash=True),
    ), measure=_spec, shaping=_tpot_pressure, role="draft tokens per verification pass"),
    AgentSpec("tenant_router", ("priority_routing",), own=(
        F("top_queue", "queue of the highest-priority tenant", 32, squash=True),
        F("top_wait", "its oldest wait / its TTFT SLO", squash=True),
        F("top_attainment", "its SLO attainment in the window", note="0 if none decided"),
        F("bottom_queue", "queue of the lowest-priority tenant", 32, squash=True),
        F("bottom_wait", "its oldest wait / its TTFT SLO", squash=True),
        F("bottom_attainment", "its SLO attainment in the window", note="0 if none decided"),
    ), measure=_router, shaping=_top_missed,
        role="whether tenant priority orders admission and preemption"),
))
del F

__all__ = ["AgentKnobs", "AgentSpec", "Team", "STANDARD"]
