"""One layout for all four agents, for libraries that share one policy network among agents that
look alike: each agent's observation zero-padded to the longest, followed by a one-hot of the agent,
and one Discrete action space as large as the largest agent's, with a mask of the agent's own
indices. The env refuses a masked index (nothing is clamped). Library-neutral: RLlib's shared module
(``igym_marl.agents.training.rllib``) and TorchRL's grouped agents
(``igym_marl.integrations.torchrl``) both use it.
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces
from pettingzoo.utils.env import ParallelEnv

from .actions import AGENT_KNOBS, AGENTS


class SharedSpaces:
    """The padded observation and masked action layout of a shared policy."""

    def __init__(self, penv):
        self.obs_dims = {a: penv.observation_space(a).shape[0] for a in AGENTS}
        self.n_actions = {a: AGENT_KNOBS[a].n for a in AGENTS}
        self.width = max(self.obs_dims.values()) + len(AGENTS)
        self.n = max(self.n_actions.values())
        self.observation_space = spaces.Dict({
            "observations": spaces.Box(0.0, 1.0, (self.width,), np.float32),
            "action_mask": spaces.Box(0.0, 1.0, (self.n,), np.float32)})
        self.action_space = spaces.Discrete(self.n)
        self._masks = {a: np.array([1.0] * self.n_actions[a] + [0.0] * (self.n - self.n_actions[a]), np.float32)
                       for a in AGENTS}

    def encode(self, agent: str, obs) -> dict:
        x = np.zeros(self.width, np.float32)
        x[: self.obs_dims[agent]] = obs
        x[self.width - len(AGENTS) + AGENTS.index(agent)] = 1.0
        return {"observations": x, "action_mask": self._masks[agent]}

    def check(self, actions: dict) -> dict:
        """Each agent's index as an int; ValueError naming the agent for a masked one."""
        out = {}
        for a, act in actions.items():
            i = int(act)
            if not 0 <= i < self.n_actions[a]:
                raise ValueError(f"agent {a!r}: action={i} is masked; allowed: 0..{self.n_actions[a] - 1}")
            out[a] = i
        return out


class SharedSpacesEnv(ParallelEnv):
    """A serving_v0 ParallelEnv in the shared layout. ``infos`` are empty dicts except at an
    episode's end, where ``keep_episode_info`` keeps the env's ``episode`` record (some libraries,
    TorchRL among them, need every info to hold tensors: they pass ``keep_episode_info=False``)."""

    metadata = {"name": "igym_marl_serving_shared_v0", "is_parallelizable": True}

    def __init__(self, penv, keep_episode_info: bool = True):
        self.penv = penv
        self.layout = SharedSpaces(penv)
        self.keep_episode_info = keep_episode_info
        self.possible_agents = list(AGENTS)
        self.agents = []
        self.last_episode: dict | None = None

    def observation_space(self, agent):
        return self.layout.observation_space

    def action_space(self, agent):
        return self.layout.action_space

    def reset(self, seed=None, options=None):
        obs, _ = self.penv.reset(seed=seed, options=options)
        self.agents = list(self.penv.agents)
        return {a: self.layout.encode(a, obs[a]) for a in obs}, {a: {} for a in obs}

    def step(self, actions):
        obs, rew, term, trunc, infos = self.penv.step(self.layout.check(actions))
        self.agents = list(self.penv.agents)
        first = infos.get(AGENTS[0], {})
        if "episode" in first:
            self.last_episode = first["episode"]
        keep = self.keep_episode_info and "episode" in first
        out_infos = {a: ({"episode": infos[a]["episode"]} if keep else {}) for a in obs}
        return ({a: self.layout.encode(a, obs[a]) for a in obs}, {a: float(r) for a, r in rew.items()},
                {a: bool(v) for a, v in term.items()}, {a: bool(v) for a, v in trunc.items()}, out_infos)

    def render(self):
        return self.penv.render()

    def close(self):
        self.penv.close()
