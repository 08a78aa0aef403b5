"""One interface for every policy that acts in ``igym_marl.serving_v0``.

A policy is reset at the start of each episode with the task and a seed, then asked for the
four agents' actions each window::

    policy.reset(task, seed)
    actions = policy.act(observations, infos, state)   # {agent: Discrete index}

``infos`` is what the env returned for the previous step (on the first call, the reset infos,
which hold no ``metrics`` yet); ``state`` is ``env.state()`` (the global state). Policies that look at raw metrics read ``infos[agent]["metrics"]``
(an ``igym_marl.sim.WindowMetrics``); learned policies read ``observations``.
"""

from __future__ import annotations

from igym_marl.envs import AGENTS, knobs_to_actions
from igym_marl.sim import Knobs
from igym_marl.workloads import TaskSpec


class Policy:
    """Base class: subclasses set `name` and implement act()."""

    name = "policy"

    def reset(self, task: TaskSpec, seed: int) -> None:
        self.task = task
        self.seed = seed

    def act(self, observations: dict, infos: dict, state=None) -> dict[str, int]:
        raise NotImplementedError

    def stats(self) -> dict:
        """Per-episode counters worth reporting (e.g. the LLM policy's fallbacks)."""
        return {}


class KnobPolicy(Policy):
    """A policy that thinks in knobs: ``act_knobs`` decides one Knobs whose values are all action
    levels, which the episode loop hands to ``env.step_knobs`` as it is; ``act`` gives the same
    decision as the agents' indices, for callers that need them (training teachers, frozen agents).
    Simple rules implement ``decide(infos)``."""

    def decide(self, infos: dict) -> Knobs:
        raise NotImplementedError

    def act_knobs(self, observations, infos, state=None) -> Knobs:
        return self.decide(infos)

    def act(self, observations, infos, state=None):
        return knobs_to_actions(self.act_knobs(observations, infos, state))


def metrics_of(infos: dict):
    """The last window's WindowMetrics from the env infos, or None before the first step."""
    return infos.get(AGENTS[0], {}).get("metrics") if infos else None
