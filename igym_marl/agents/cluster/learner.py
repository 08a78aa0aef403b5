"""MAPPO for serving_cluster_v0, as one more learner adapter of the one PPO loop (train_marl.py).

One actor is shared by every agent of every replica, with a centralized critic. The actor's input
is an agent's observation, zero-padded to one width, followed by a one-hot of its type
(batch_scheduler, kv_manager, spec_controller, tenant_router, router, autoscaler); each type has
its own output head. Replicas share everything: their observations carry the replica's index and
state, so one network serves N replicas and the parameter count does not grow with N (only the
autoscaler's head, N outputs). The critic reads ``env.state()`` (fixed size whatever N) and
predicts the team return.

:class:`ClusterMAPPO` speaks the learners' interface (``igym_marl/agents/training/algos.py``): P = 4 N
+ 2 policy rows, one value. In behaviour cloning each agent type weighs the same (the one
autoscaler row would otherwise weigh 1 / (4 N + 2) of the loss). :class:`ClusterSlot` is one env
copy for the vectorised rollouts, :class:`ClusterLearned` plays a checkpoint greedily.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from igym_marl import serving_cluster_v0
from igym_marl.envs import AGENT_KNOBS, AGENTS
from igym_marl.envs.cluster import AUTOSCALER, N_CLUSTER, N_REPLICA, ROUTER, ROUTER_RULES, replica_agent
from igym_marl.envs.features import OBS_DIM, STATE_DIM
from igym_marl.envs.team import STANDARD
from igym_marl.sim.cluster import ACTIVE, STARTING

from igym_marl.agents.cluster.baselines import ClusterOracle, ClusterPolicy, cluster_baseline
from igym_marl.agents.training.algos import RunningNorm
from igym_marl.agents.training.networks import Critic, load_checkpoint, mlp
from igym_marl.agents.training.vecenv import EnvCopy

AGENT_TYPES = (*AGENTS, ROUTER, AUTOSCALER)
OBS_WIDTH = max(max(OBS_DIM[a] for a in AGENTS) + N_REPLICA, N_CLUSTER)
IN_DIM = OBS_WIDTH + len(AGENT_TYPES)
TEACHERS = ("hpa", "oracle")  # a cluster warm start's teachers (the oracle sees the future: privileged, slow)


def cluster_learner(policy: dict) -> "ClusterMAPPO":
    """The learner a cluster rollout group samples with: {"hidden", "replicas"} -> ClusterMAPPO."""
    return ClusterMAPPO(policy["replicas"], policy["hidden"])


def load_learner(path, task: str | None = None):
    """A cluster learner restored from its checkpoint -> (learner, blob)."""
    blob = load_checkpoint(path, algos=("mappo",), task=task, cluster=True)
    learner = ClusterMAPPO(int(blob["layout"]["replicas"]), int(blob["args"]["hidden"]))
    if learner.layout() != blob["layout"]:
        raise ValueError(f"{path} was made for another cluster layout: expected {learner.layout()}, found "
                         f"{blob['layout']}")
    for name, module in learner.modules_to_save().items():
        module.load_state_dict(blob["state_dicts"][name])
    return learner, blob


def cluster_agents(replicas: int) -> list[str]:
    """serving_cluster_v0's agents at N replicas, in the env's order."""
    return [replica_agent(i, a) for i in range(replicas) for a in AGENTS] + [ROUTER, AUTOSCALER]


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


class ClusterActor(nn.Module):
    """The shared body and one head per agent type."""

    def __init__(self, replicas: int, hidden: int):
        super().__init__()
        self.body = mlp(IN_DIM, hidden, hidden)
        sizes = [AGENT_KNOBS[a].n for a in AGENTS] + [len(ROUTER_RULES), replicas]
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in sizes)
        for h in self.heads:
            nn.init.orthogonal_(h.weight, 0.01)
            nn.init.zeros_(h.bias)


class ClusterMAPPO(nn.Module):
    """See the module docstring."""

    V = 1

    def __init__(self, replicas: int, hidden: int = 64):
        super().__init__()
        self.algo = "mappo"
        self.replicas = replicas
        self.agents = cluster_agents(replicas)
        self.types = agent_types(self.agents)
        self.P = len(self.agents)
        self.actor = ClusterActor(replicas, hidden)
        self.critic = Critic(N_CLUSTER + STATE_DIM, hidden, 1)
        self.vnorm = RunningNorm()
        self._rows = [torch.as_tensor(np.flatnonzero(self.types == k)) for k in range(len(AGENT_TYPES))]
        count = np.bincount(self.types, minlength=len(AGENT_TYPES))
        self.row_weights = torch.as_tensor(len(self.agents) / (len(np.unique(self.types)) * count[self.types]),
                                           dtype=torch.float32)  # each type weighs the same, mean 1

    def actor_input(self, obs: dict) -> np.ndarray:
        return actor_input(obs, self.agents, self.types)

    def policy_input(self, x, state):
        return x  # [..., P, IN_DIM]

    def value_input(self, x, state):
        return state

    def _by_type(self, pol_in: torch.Tensor):
        """(rows of type k, that type's logits [B, rows, n_k]) for every type present."""
        h = torch.tanh(self.actor.body(pol_in))
        return [(rows, self.actor.heads[k](h[:, rows])) for k, rows in enumerate(self._rows) if rows.numel()]

    def logits(self, pol_in: torch.Tensor) -> list[torch.Tensor]:
        """[B, P, IN_DIM] -> one [B, n_actions(agent)] tensor per agent, in the env's order."""
        out = [None] * self.P
        for rows, lg in self._by_type(pol_in):
            for j, r in enumerate(rows.tolist()):
                out[r] = lg[:, j]
        return out

    def act(self, pol_in: torch.Tensor, greedy: bool = False):
        a = torch.zeros(pol_in.shape[0], self.P, dtype=torch.long)
        logp = torch.zeros(pol_in.shape[0], self.P)
        for rows, lg in self._by_type(pol_in):
            d = Categorical(logits=lg)
            x = d.probs.argmax(-1) if greedy else d.sample()
            a[:, rows], logp[:, rows] = x, d.log_prob(x)
        return a, logp

    def logp_entropy(self, pol_in: torch.Tensor, actions: torch.Tensor):
        logp = torch.zeros(pol_in.shape[0], self.P)
        ent = torch.zeros(pol_in.shape[0], self.P)
        for rows, lg in self._by_type(pol_in):
            d = Categorical(logits=lg)
            logp = logp.index_copy(1, rows, d.log_prob(actions[:, rows]))
            ent = ent.index_copy(1, rows, d.entropy())
        return logp, ent

    def value(self, val_in: torch.Tensor) -> torch.Tensor:
        return self.critic(val_in).unsqueeze(-1)

    def policy_module(self) -> nn.Module:
        return self.actor

    def modules_to_save(self) -> dict:
        return {"actor": self.actor, "critic": self.critic, "vnorm": self.vnorm}

    def layout(self) -> dict:
        return {"kind": "cluster", "replicas": self.replicas, "team": STANDARD.signature(), "in_dim": IN_DIM,
                "state_dim": N_CLUSTER + STATE_DIM,
                "action_sizes": [h.out_features for h in self.actor.heads], "agent_types": list(AGENT_TYPES)}


class ClusterSlot(EnvCopy):
    """One cluster env copy for the vectorised rollouts (the counterpart of vecenv.EnvSlot): its
    episode seeds, and a teacher (hpa or oracle) that labels every state the copy visits, its
    autoscaling memory synced to the replicas the fleet actually has up."""

    TEACHERS = TEACHERS

    def __init__(self, env_kwargs: dict, index: int, n_envs: int, seed_base: int, episodes_done: int,
                 frozen: dict, credit: str, reference: str, teacher: str | None):
        if frozen or credit != "team":
            raise ValueError("cluster tasks train with team credit and no frozen agents")
        kw = dict(env_kwargs)
        self.task = kw.pop("task")
        self.env = serving_cluster_v0.parallel_env(self.task, **kw)
        self.agents = list(self.env.possible_agents)
        self.types = agent_types(self.agents)
        self._seeds(index, n_envs, seed_base, episodes_done)
        self.teacher = self._teacher_policy(teacher) if teacher else None

    def _teacher_policy(self, name: str) -> ClusterPolicy:
        if name not in TEACHERS:
            raise ValueError(f"teacher={name!r} is unknown for a cluster task; allowed: {', '.join(TEACHERS)}")
        if name == "oracle":
            best = cluster_baseline(self.task, "best-constant")
            return ClusterOracle(best.knobs, best.rule, best.target)
        return cluster_baseline(self.task, "hpa")

    def reset(self):
        self._start_episode()
        self.teacher_actions = self._teacher()
        return actor_input(self.obs, self.agents, self.types), self.env.state()

    def _teacher(self) -> np.ndarray:
        if self.teacher is None:
            return np.zeros(len(self.agents), dtype=np.int64)
        up = int(np.isin(self.env.cluster.state, (STARTING, ACTIVE)).sum())
        if isinstance(self.teacher, ClusterOracle):  # label from the fleet the learner keeps up
            self.teacher.cur_target = up
        else:
            self.teacher.target = up
        act = self.teacher.act(self.obs, self.infos, self.env.state())
        return np.array([act[a] for a in self.agents], dtype=np.int64)

    def step(self, actions: np.ndarray):
        applied = dict(zip(self.agents, (int(a) for a in actions)))
        self.obs, rewards, _, _, self.infos = self.env.step(applied)
        r = float(rewards[self.agents[-1]])
        done = not self.env.agents
        score = self.env.score if done else float("nan")
        if done and self.auto_reset:
            x, s = self.reset()
        else:
            x, s = actor_input(self.obs, self.agents, self.types), self.env.state()
            if not done:
                self.teacher_actions = self._teacher()
        return x, s, r, np.zeros(len(self.agents)), done, score, np.asarray(actions, dtype=np.int64), \
            self.teacher_actions


class ClusterLearned(ClusterPolicy):
    """A trained cluster MAPPO checkpoint (``train_marl.py --task cluster_*``), played greedily."""

    name = "mappo"

    def __init__(self, checkpoint):
        self.model, self.blob = load_learner(checkpoint)
        self.model.eval()

    def start(self, env):
        if env.n != self.model.replicas:
            raise ValueError(f"the checkpoint was trained at N={self.model.replicas} replicas; the env has N={env.n}")

    def decide(self, env) -> dict:
        with torch.no_grad():
            x = torch.as_tensor(self.model.actor_input(env.last_obs))[None]
            a, _ = self.model.act(x, greedy=True)
        return dict(zip(self.model.agents, a[0].tolist()))


__all__ = ["ClusterMAPPO", "ClusterSlot", "ClusterLearned", "cluster_learner", "load_learner", "actor_input",
           "agent_types", "cluster_agents", "AGENT_TYPES", "IN_DIM", "TEACHERS"]
