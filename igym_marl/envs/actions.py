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

from ..sim.types import Knobs
from .team import STANDARD, AgentKnobs

# The standard team's agents and their knobs (the env takes any igym_marl.envs.team.Team; these
# functions speak for the standard one).
AGENTS = STANDARD.names
AGENT_KNOBS: dict[str, AgentKnobs] = {a.name: a.action for a in STANDARD.agents}


def decode_action(agent: str, action) -> dict:
    """Discrete index (or, for action_format='multidiscrete', the per-knob level indices) -> knob values.

    >>> decode_action("batch_scheduler", 17)
    {'batch_cap': 256, 'prefill_decode_split': True}
    """
    return STANDARD.decode(agent, action)


def encode_action(agent: str, **knobs) -> int:
    """Knob values -> the agent's Discrete index. Values must be exactly one of the levels.

    >>> encode_action("kv_manager", kv_budget_fraction=0.5, quantization_tier="INT8")
    13
    """
    return STANDARD.encode(agent, **knobs)


def level_indices(agent: str, action: int) -> tuple[int, ...]:
    """Discrete index -> per-knob level indices (the multidiscrete form)."""
    return STANDARD.level_indices(agent, action)


def index_of_levels(agent: str, levels) -> int:
    """Per-knob level indices (the multidiscrete form) -> the Discrete index; each index is checked
    against its knob's level count, naming the agent and the knob."""
    return STANDARD.index_of_levels(agent, levels)


def joint_knobs(actions: dict[str, int]) -> Knobs:
    """The four agents' decoded actions -> one validated Knobs."""
    return STANDARD.joint(actions)


def knobs_to_actions(knobs: Knobs) -> dict[str, int]:
    """Knobs whose values are all levels -> each agent's Discrete index."""
    return STANDARD.to_actions(knobs)


DEFAULT_ACTIONS = STANDARD.default_actions  # vLLM's default configuration as the agents' indices
