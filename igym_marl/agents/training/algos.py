"""The three learners as small adapters over one PPO loop (train_marl.py).

A rollout step of E env copies stores the policy's input, the actions (int[E, 4], one per agent),
their log-probabilities and the critic's values. What differs between the algorithms is only:

* **MAPPO**: one actor shared by the four agents (input: the agent's padded observation + one-hot
  id; one head per agent): P = 4 log-probabilities per step; a centralized critic on
  ``env.state()``: V = 1 value (the team's), or V = 4 (one head per agent) under counterfactual
  credit, where each agent learns the value of its own difference rewards.
* **IPPO**: the same actor; a critic on each agent's own actor input: V = 4.
* **PPO (single agent)**: the single-agent wrapper's view: the global state in, the four actions out
  (four heads, one joint log-probability): P = 1, V = 1.

Advantages come per value head (``[T, E, V]``) and are handed to the policy rows: with V = 1
every agent gets the team advantage, with V = 4 agent i gets its own.

Cluster tasks have a fourth adapter, ``igym_marl.agents.cluster.learner.ClusterMAPPO``: the same
interface over serving_cluster_v0's 4 N + 2 agents.

Every adapter has: ``agents`` (the env's agents its actions are for, in order), ``P`` and ``V``,
``actor_input(obs)``, ``policy_input``/``value_input``, ``logits``, ``act``, ``logp_entropy``,
``value``, ``vnorm``, ``row_weights`` (each policy row's weight in behaviour cloning),
``policy_module()``, ``modules_to_save()`` and ``layout()`` (what its checkpoints must match).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from igym_marl.envs import AGENTS
from igym_marl.envs.features import STATE_DIM

from igym_marl.agents.training.networks import (INPUT_DIM, N_AGENTS, Critic, SharedActor, SingleActorCritic,
                                                actor_input_array, layout)

ALGOS = ("mappo", "ippo", "ppo-single")


class RunningNorm(nn.Module):
    """Running mean and variance of value targets (buffers: checkpoints carry them)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("var", torch.ones(()))
        self.register_buffer("count", torch.tensor(1e-4))

    def update(self, x: torch.Tensor) -> None:
        b_mean, b_var, b_n = x.mean(), x.var(unbiased=False), x.numel()
        delta = b_mean - self.mean
        tot = self.count + b_n
        self.mean += delta * b_n / tot
        self.var = (self.var * self.count + b_var * b_n + delta ** 2 * self.count * b_n / tot) / tot
        self.count = tot

    def normalize(self, x):
        return (x - self.mean) / torch.sqrt(self.var + 1e-8)

    def denormalize(self, x):
        return x * torch.sqrt(self.var + 1e-8) + self.mean


class _SingleReplica:
    """What the serving_v0 learners share: the standard team's agents, their actor inputs and the
    checkpoint layout."""

    agents = list(AGENTS)

    def actor_input(self, obs: dict) -> np.ndarray:
        return actor_input_array(obs)

    def layout(self) -> dict:
        return layout()

    @property
    def row_weights(self) -> torch.Tensor:
        return torch.ones(self.P)


class MultiAgent(_SingleReplica, nn.Module):
    """MAPPO (centralized critic) or IPPO (a critic per agent's own input)."""

    P = N_AGENTS

    def __init__(self, algo: str, hidden: int, per_agent_values: bool = False):
        super().__init__()
        self.algo = algo
        self.actor = SharedActor(hidden)
        if algo == "mappo":
            self.V = N_AGENTS if per_agent_values else 1
            self.critic = Critic(STATE_DIM, hidden, self.V)
        else:
            self.V = N_AGENTS
            self.critic = Critic(INPUT_DIM, hidden, 1)
        self.vnorm = RunningNorm()

    def policy_input(self, x: np.ndarray, state: np.ndarray) -> np.ndarray:
        return x  # [E, 4, INPUT_DIM]

    def value_input(self, x: np.ndarray, state: np.ndarray) -> np.ndarray:
        return state if self.algo == "mappo" else x

    def logits(self, pol_in: torch.Tensor) -> list[torch.Tensor]:
        """[B, 4, INPUT_DIM] -> one [B, n_actions(agent)] tensor per agent."""
        b = pol_in.shape[0]
        h = torch.tanh(self.actor.body(pol_in.reshape(b * N_AGENTS, -1))).reshape(b, N_AGENTS, -1)
        return [self.actor.heads[i](h[:, i]) for i in range(N_AGENTS)]

    def _dists(self, pol_in: torch.Tensor) -> list[Categorical]:
        return [Categorical(logits=lg) for lg in self.logits(pol_in)]

    def policy_module(self) -> nn.Module:
        """What an env worker needs to sample actions."""
        return self.actor

    def act(self, pol_in: torch.Tensor, greedy: bool = False):
        """-> actions long[B, 4], log-probabilities [B, 4]."""
        dists = self._dists(pol_in)
        acts = [d.probs.argmax(-1) if greedy else d.sample() for d in dists]
        a = torch.stack(acts, -1)
        return a, torch.stack([d.log_prob(x) for d, x in zip(dists, acts)], -1)

    def logp_entropy(self, pol_in: torch.Tensor, actions: torch.Tensor):
        dists = self._dists(pol_in)
        return (torch.stack([d.log_prob(actions[:, i]) for i, d in enumerate(dists)], -1),
                torch.stack([d.entropy() for d in dists], -1))

    def value(self, val_in: torch.Tensor) -> torch.Tensor:
        """-> [B, V] (normalized space when value normalization is on)."""
        if self.algo == "mappo":
            v = self.critic(val_in)
            return v.unsqueeze(-1) if self.V == 1 else v
        b = val_in.shape[0]
        return self.critic(val_in.reshape(b * N_AGENTS, -1)).reshape(b, N_AGENTS)

    def modules_to_save(self) -> dict:
        return {"actor": self.actor, "critic": self.critic, "vnorm": self.vnorm}


class SingleAgent(_SingleReplica, nn.Module):
    """PPO on the single-agent wrapper's view: the global state -> the four agents' actions."""

    P = 1
    V = 1

    def __init__(self, algo: str, hidden: int, per_agent_values: bool = False):
        super().__init__()
        if per_agent_values:
            raise ValueError("counterfactual credit needs several agents; ppo-single is one agent")
        self.algo = algo
        self.model = SingleActorCritic(hidden)
        self.vnorm = RunningNorm()

    def policy_input(self, x, state):
        return state

    def value_input(self, x, state):
        return state

    def logits(self, pol_in):
        return self.model.logits(pol_in)

    def policy_module(self) -> nn.Module:
        return self.model

    def act(self, pol_in, greedy: bool = False):
        dists = [Categorical(logits=lg) for lg in self.model.logits(pol_in)]
        acts = [d.probs.argmax(-1) if greedy else d.sample() for d in dists]
        return torch.stack(acts, -1), sum(d.log_prob(x) for d, x in zip(dists, acts)).unsqueeze(-1)

    def logp_entropy(self, pol_in, actions):
        dists = [Categorical(logits=lg) for lg in self.model.logits(pol_in)]
        logp = sum(d.log_prob(actions[:, i]) for i, d in enumerate(dists))
        ent = sum(d.entropy() for d in dists)
        return logp.unsqueeze(-1), ent.unsqueeze(-1)

    def value(self, val_in):
        return self.model.value(val_in).unsqueeze(-1)

    def modules_to_save(self) -> dict:
        return {"model": self.model, "vnorm": self.vnorm}


def make_learner(algo: str, hidden: int, per_agent_values: bool = False) -> nn.Module:
    """The serving_v0 learner adapter of `algo` (the cluster's is igym_marl.agents.cluster.learner)."""
    if algo not in ALGOS:
        raise ValueError(f"algo={algo!r} is unknown; allowed: {', '.join(ALGOS)}")
    return (SingleAgent if algo == "ppo-single" else MultiAgent)(algo, hidden, per_agent_values)


def policy_rows(adv: torch.Tensor, P: int) -> torch.Tensor:
    """Advantages per value head [..., V] -> per policy row [..., P] (broadcast a team value)."""
    return adv.expand(*adv.shape[:-1], P) if adv.shape[-1] == 1 else adv


__all__ = ["ALGOS", "MultiAgent", "SingleAgent", "RunningNorm", "make_learner", "policy_rows"]
