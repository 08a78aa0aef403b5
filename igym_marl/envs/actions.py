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

from ..sim.types import Knobs

AGENTS = ("batch_scheduler", "kv_manager", "spec_controller", "tenant_router")


@dataclass(frozen=True)
class AgentSpec:
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


SPECS = {
    "batch_scheduler": AgentSpec("batch_scheduler", ("batch_cap", "prefill_decode_split"),
                                 ((1, 2, 4, 8, 16, 32, 64, 128, 256, 512), (False, True))),
    "kv_manager": AgentSpec("kv_manager", ("kv_budget_fraction", "quantization_tier"),
                            (tuple(round(0.1 * i, 1) for i in range(1, 11)), ("FP16", "INT8", "INT4"))),
    "spec_controller": AgentSpec("spec_controller", ("speculation_depth",), (tuple(range(9)),)),
    "tenant_router": AgentSpec("tenant_router", ("priority_routing",), ((False, True),)),
}


def _spec(agent) -> AgentSpec:
    if agent not in SPECS:
        raise ValueError(f"agent={agent!r} is unknown; agents are {', '.join(AGENTS)}")
    return SPECS[agent]


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
    spec = _spec(agent)
    arr = np.asarray(action) if not isinstance(action, (numbers.Number, np.generic)) else None
    if arr is not None and arr.ndim == 1:
        if arr.shape != (len(spec.knobs),):
            raise ValueError(f"agent {agent!r}: multidiscrete action has shape {arr.shape}; expected "
                             f"({len(spec.knobs)},) for knobs {spec.knobs}")
        idx = [_as_index(agent, k, v, len(lv)) for k, v, lv in zip(spec.knobs, arr.tolist()
                                                                     if arr.dtype.kind in "iu" else arr, spec.levels)]
    else:
        return dict(spec.table[_as_index(agent, "action", action, spec.n)])
    return {k: lv[i] for k, lv, i in zip(spec.knobs, spec.levels, idx)}


def encode_action(agent: str, **knobs) -> int:
    """Knob values -> the agent's Discrete index. Values must be exactly one of the levels.

    >>> encode_action("kv_manager", kv_budget_fraction=0.5, quantization_tier="INT8")
    13
    """
    spec = _spec(agent)
    if set(knobs) != set(spec.knobs):
        raise ValueError(f"agent {agent!r} owns knobs {spec.knobs}; got {tuple(knobs)}")
    flat = 0
    for k, lv in zip(spec.knobs, spec.levels):
        v = knobs[k]
        matches = [i for i, x in enumerate(lv) if type(x) is type(v) and x == v or
                   (isinstance(x, float) and isinstance(v, (int, float)) and not isinstance(v, bool) and abs(x - v) < 1e-9)]
        if not matches:
            raise ValueError(f"agent {agent!r}: {k}={v!r} is not a level; allowed: {lv}")
        flat = flat * len(lv) + matches[0]
    return flat


def level_indices(agent: str, action: int) -> tuple[int, ...]:
    """Discrete index -> per-knob level indices (the multidiscrete form)."""
    spec = _spec(agent)
    out = []
    for size in reversed(spec.sizes):
        out.append(action % size)
        action //= size
    return tuple(reversed(out))


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
    return {a: encode_action(a, **{k: d[k] for k in SPECS[a].knobs}) for a in AGENTS}


DEFAULT_ACTIONS = {"batch_scheduler": encode_action("batch_scheduler", batch_cap=256, prefill_decode_split=True),
                   "kv_manager": encode_action("kv_manager", kv_budget_fraction=0.9, quantization_tier="FP16"),
                   "spec_controller": 0, "tenant_router": 0}
