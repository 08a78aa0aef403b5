"""MAPPO for serving_cluster_v0: one actor shared by every agent of every replica, a centralized critic.

The actor's input is an agent's observation, zero-padded to one width, followed by a one-hot of
its type (batch_scheduler, kv_manager, spec_controller, tenant_router, router, autoscaler); each
type has its own output head. Replicas share everything: their observations carry the replica's
index and state, so one network serves N replicas and the parameter count does not grow with N
(only the autoscaler's head, N outputs). The critic reads ``env.state()`` (fixed size whatever N)
and predicts the team return. ``scripts/train_cluster.py`` trains it; :class:`ClusterLearned`
plays a checkpoint greedily.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from igym_marl.envs import AGENT_KNOBS, AGENTS
from igym_marl.envs.cluster import AUTOSCALER, N_CLUSTER, N_REPLICA, ROUTER, ROUTER_RULES
from igym_marl.envs.features import OBS_DIM, STATE_DIM

AGENT_TYPES = (*AGENTS, ROUTER, AUTOSCALER)
OBS_WIDTH = max(max(OBS_DIM[a] for a in AGENTS) + N_REPLICA, N_CLUSTER)
IN_DIM = OBS_WIDTH + len(AGENT_TYPES)


def agent_types(agents: list[str]) -> np.ndarray:
    return np.array([AGENT_TYPES.index(a.split("/")[-1]) for a in agents], dtype=np.int64)


def actor_input(obs: dict, agents: list[str], types: np.ndarray) -> np.ndarray:
    """float32[len(agents), IN_DIM]: padded observations + type one-hots, in `agents` order."""
    x = np.zeros((len(agents), IN_DIM), dtype=np.float32)
    for i, a in enumerate(agents):
        o = obs[a]
        x[i, : o.shape[0]] = o
    x[np.arange(len(agents)), OBS_WIDTH + types] = 1.0
    return x


def _mlp(n_in: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())


class ClusterActorCritic(nn.Module):
    def __init__(self, replicas: int, hidden: int = 64):
        super().__init__()
        self.replicas = replicas
        self.body = _mlp(IN_DIM, hidden)
        sizes = [AGENT_KNOBS[a].n for a in AGENTS] + [len(ROUTER_RULES), replicas]
        self.heads = nn.ModuleList([nn.Linear(hidden, n) for n in sizes])
        for h in self.heads:
            nn.init.orthogonal_(h.weight, 0.01)
            nn.init.zeros_(h.bias)
        self.critic = nn.Sequential(_mlp(N_CLUSTER + STATE_DIM, hidden), nn.Linear(hidden, 1))

    def logp_entropy(self, x: torch.Tensor, types: torch.Tensor, actions: torch.Tensor | None = None):
        """Rows of x (agents of any types) -> (actions, log-probabilities, entropies); samples
        when `actions` is None."""
        h = self.body(x)
        n = x.shape[0]
        out_a = torch.zeros(n, dtype=torch.long)
        logp = torch.zeros(n)
        ent = torch.zeros(n)
        for k, head in enumerate(self.heads):
            idx = torch.nonzero(types == k, as_tuple=True)[0]
            if idx.numel() == 0:
                continue
            d = torch.distributions.Categorical(logits=head(h[idx]))
            a = d.sample() if actions is None else actions[idx]
            out_a = out_a.index_put((idx,), a)
            logp = logp.index_put((idx,), d.log_prob(a))
            ent = ent.index_put((idx,), d.entropy())
        return out_a, logp, ent

    def greedy(self, x: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        out = torch.zeros(x.shape[0], dtype=torch.long)
        for k, head in enumerate(self.heads):
            idx = torch.nonzero(types == k, as_tuple=True)[0]
            if idx.numel():
                out[idx] = head(h[idx]).argmax(-1)
        return out

    def value(self, s: torch.Tensor) -> torch.Tensor:
        return self.critic(s).squeeze(-1)


def load(path) -> tuple[ClusterActorCritic, dict]:
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("kind") != "cluster-mappo":
        raise ValueError(f"{path} is not a cluster MAPPO checkpoint (scripts/train_cluster.py writes them)")
    model = ClusterActorCritic(blob["replicas"], blob["hidden"])
    model.load_state_dict(blob["model"])
    return model, blob


class ClusterLearned:
    """A trained cluster MAPPO checkpoint, played greedily (same interface as igym_marl/agents/cluster/baselines.py)."""

    name = "mappo"

    def __init__(self, checkpoint):
        self.model, self.blob = load(checkpoint)
        self.model.eval()

    def reset(self, env, seed):
        if env.n != self.model.replicas:
            raise ValueError(f"the checkpoint was trained at N={self.model.replicas} replicas; the env has N={env.n}")
        self.agents = list(env.possible_agents)
        self.types = agent_types(self.agents)
        self.types_t = torch.as_tensor(self.types)

    def act(self, env) -> dict:
        obs = env.last_obs
        with torch.no_grad():
            a = self.model.greedy(torch.as_tensor(actor_input(obs, self.agents, self.types)), self.types_t)
        return dict(zip(self.agents, a.tolist()))


__all__ = ["ClusterActorCritic", "ClusterLearned", "actor_input", "agent_types", "AGENT_TYPES", "IN_DIM", "load"]
