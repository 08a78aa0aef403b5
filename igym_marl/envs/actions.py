"""The four agents' actions: which knobs each owns, their levels, and the index encoding.

Each agent's action is one ``Discrete`` index enumerating the product of its knob levels, the
**last knob varying fastest**:

* ``batch_scheduler``: Discrete(20), index = 2 x batch_level + split, batch_cap in
  (1, 2, 4, 8, 16, 32, 64, 128, 256, 512), prefill_decode_split in (False, True).
* ``kv_manager``: Discrete(30), index = 3 x budget_level + tier, kv_budget_fraction in
  (0.1, 0.2, ..., 1.0), quantization_tier in ("FP16", "INT8", "INT4").
* ``spec_controller``: Discrete(9), index = speculation_depth (0..8).
* ``tenant_router``: Discrete(2), index = priority_routing (0 = off, 1 = on).

Use :func:`encode_action` and :func:`decode_action` rather than computing indices by hand.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from ..sim.types import KNOB_LEVELS, VLLM_DEFAULT, Knobs, level_index

AGENTS = ("batch_scheduler", "kv_manager", "spec_controller", "tenant_router")


@dataclass(frozen=True)
class AgentKnobs:
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


def _owning(name: str, *knobs: str) -> AgentKnobs:
    return AgentKnobs(name, knobs, tuple(KNOB_LEVELS[k] for k in knobs))


# Which knobs each agent owns; their levels are the simulator's KNOB_LEVELS.
AGENT_KNOBS = {
    "batch_scheduler": _owning("batch_scheduler", "batch_cap", "prefill_decode_split"),
    "kv_manager": _owning("kv_manager", "kv_budget_fraction", "quantization_tier"),
    "spec_controller": _owning("spec_controller", "speculation_depth"),
    "tenant_router": _owning("tenant_router", "priority_routing"),
}


def _owned(agent) -> AgentKnobs:
    if agent not in AGENT_KNOBS:
        raise ValueError(f"agent={agent!r} is unknown; agents are {', '.join(AGENTS)}")
    return AGENT_KNOBS[agent]


def _as_index(agent: str, field: str, value, n: int) -> int:
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and not float(value) == float(value):
            raise ValueError(f"agent {agent!r}: {field}={value!r} is NaN; allowed: an integer in 0..{n - 1}")
        raise ValueError(f"agent {agent!r}: {field}={value!r} has type {type(value).__name__}; "
                         f"allowed: an integer in 0..{n - 1}")
    if not 0 <= int(value) < n:
        raise ValueError(f"agent {agent!r}: {field}={value!r} is out of range; allowed: an integer in 0..{n - 1}")
    return int(value)


def decode_action(agent: str, action) -> dict:
    """Discrete index (or, for action_format='multidiscrete', the per-knob level indices) -> knob values.

    >>> decode_action("batch_scheduler", 17)
    {'batch_cap': 256, 'prefill_decode_split': True}
    """
    owned = _owned(agent)
    arr = np.asarray(action) if not isinstance(action, (numbers.Number, np.generic)) else None
    if arr is not None and arr.ndim == 1:
        if arr.shape != (len(owned.knobs),):
            raise ValueError(f"agent {agent!r}: multidiscrete action has shape {arr.shape}; expected "
                             f"({len(owned.knobs)},) for knobs {owned.knobs}")
        idx = [_as_index(agent, k, v, len(lv)) for k, v, lv in zip(owned.knobs, arr.tolist()
                                                                     if arr.dtype.kind in "iu" else arr, owned.levels)]
    else:
        return dict(owned.table[_as_index(agent, "action", action, owned.n)])
    return {k: lv[i] for k, lv, i in zip(owned.knobs, owned.levels, idx)}


def encode_action(agent: str, **knobs) -> int:
    """Knob values -> the agent's Discrete index. Values must be exactly one of the levels.

    >>> encode_action("kv_manager", kv_budget_fraction=0.5, quantization_tier="INT8")
    13
    """
    owned = _owned(agent)
    if set(knobs) != set(owned.knobs):
        raise ValueError(f"agent {agent!r} owns knobs {owned.knobs}; got {tuple(knobs)}")
    flat = 0
    for k, lv in zip(owned.knobs, owned.levels):
        i = level_index(k, knobs[k])
        if i is None:
            raise ValueError(f"agent {agent!r}: {k}={knobs[k]!r} is not a level; allowed: {lv}")
        flat = flat * len(lv) + i
    return flat


def level_indices(agent: str, action: int) -> tuple[int, ...]:
    """Discrete index -> per-knob level indices (the multidiscrete form)."""
    owned = _owned(agent)
    out = []
    for size in reversed(owned.sizes):
        out.append(action % size)
        action //= size
    return tuple(reversed(out))


def index_of_levels(agent: str, levels) -> int:
    """Per-knob level indices (the multidiscrete form) -> the Discrete index; each index is checked
    against its knob's level count, naming the agent and the knob."""
    owned = _owned(agent)
    flat = 0
    for k, v, size in zip(owned.knobs, levels, owned.sizes):
        flat = flat * size + _as_index(agent, k, v, size)
    return flat


def joint_knobs(actions: dict[str, int]) -> Knobs:
    """The four agents' decoded actions -> one validated Knobs."""
    return _joint(*(int(actions[a]) for a in AGENTS))


@lru_cache(maxsize=None)
def _joint(b: int, k: int, s: int, r: int) -> Knobs:
    values = {}
    for agent, i in zip(AGENTS, (b, k, s, r)):
        values.update(decode_action(agent, i))
    return Knobs(**values)


def knobs_to_actions(knobs: Knobs) -> dict[str, int]:
    """Knobs whose values are all levels -> each agent's Discrete index."""
    d = knobs.as_dict()
    return {a: encode_action(a, **{k: d[k] for k in AGENT_KNOBS[a].knobs}) for a in AGENTS}


DEFAULT_ACTIONS = knobs_to_actions(VLLM_DEFAULT)  # vLLM's default configuration as the agents' indices
