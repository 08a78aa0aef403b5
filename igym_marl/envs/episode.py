"""What serving_v0's and serving_cluster_v0's envs share: episode seeds, clones and the score."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np


class EpisodeMixin:
    """Needs ``self.keeper`` (a score keeper dataclass) once an episode runs, ``self._rng``,
    ``possible_agents``, ``_obs_spaces`` / ``_act_spaces`` and ``_build_spaces()``."""

    def _episode_seed(self, seed) -> int:
        """The episode's seed: `seed`, or drawn from the generator the last seeded reset left."""
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
                raise ValueError(f"seed={seed!r} must be an integer in 0..2**63-1 or None")
            self._rng = np.random.default_rng([int(seed), 1])  # seeds the following seed-less resets
            return int(seed)
        if self._rng is None:
            self._rng = np.random.default_rng()
        return int(self._rng.integers(0, 2**31 - 1))

    def _agents_text(self) -> str:
        return ", ".join(self.possible_agents)

    def observation_space(self, agent):
        if agent not in self._obs_spaces:
            raise ValueError(f"agent={agent!r} is unknown; agents are {self._agents_text()}")
        return self._obs_spaces[agent]

    def action_space(self, agent):
        if agent not in self._act_spaces:
            raise ValueError(f"agent={agent!r} is unknown; agents are {self._agents_text()}")
        return self._act_spaces[agent]

    def state(self) -> np.ndarray:
        return self._state.copy()

    def _check_actions(self, actions) -> None:
        """A dict with an action for every live agent and none for an unknown one (lists in the
        messages are cut at 5 names: a cluster has up to 258 agents)."""
        if not isinstance(actions, dict):
            raise ValueError(f"actions must be a dict {{agent: action}}; got {type(actions).__name__}")
        unknown = set(actions) - set(self.possible_agents)
        if unknown:
            raise ValueError(f"actions for unknown agent(s) {sorted(unknown)[:5]}; agents are {self._agents_text()}")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"no action for agent(s) {missing[:5]}: every live agent must act each step")

    def _check_running(self) -> None:
        if not hasattr(self, "keeper"):
            raise RuntimeError("no episode yet: call reset() before step()")
        if not self.agents:
            raise RuntimeError("the episode is over: call reset() before step()")

    def _clone_episode(self):
        """A copy sharing the immutable parts (task, workload, metrics) with the mutable episode
        state copied: score keeper, history, agents, last actions, state vector, seed generator,
        spaces. The caller copies its engine."""
        if not hasattr(self, "keeper"):
            raise RuntimeError("clone() needs an episode: call reset() first")
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.keeper = dataclasses.replace(self.keeper)
        new.history = list(self.history)
        new.agents = list(self.agents)
        new.last_actions = dict(self.last_actions)
        new._state = self._state.copy()
        new._rng = copy.deepcopy(self._rng)
        new._build_spaces()
        return new

    @property
    def score(self) -> float:
        """The episode's score so far (unscaled; the final value when the episode is over)."""
        if not hasattr(self, "keeper"):
            raise RuntimeError("no episode yet: call reset() before reading the score")
        return self.keeper.score
