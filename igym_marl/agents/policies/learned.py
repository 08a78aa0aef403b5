"""Learned policies loaded from checkpoints (train_marl.py writes them).

``mappo`` (also IPPO checkpoints): the shared actor acts for each agent from its own observation.
``ppo``: the single-agent PPO actor acts on the global state. Both act greedily (the most likely
action) at evaluation. A checkpoint argument may be a file or a folder holding ``<task>.pt``;
without one, the shipped ``igym_marl/agents/checkpoints/<algo>/<task>.pt`` is used.
"""

from __future__ import annotations

from igym_marl.paths import CHECKPOINT_DIR

from pathlib import Path

import torch

from igym_marl.agents.policies.base import Policy
from igym_marl.agents.policies.frozen import FrozenAgent
from igym_marl.agents.training.networks import SharedActor, SingleActorCritic, greedy_multi, greedy_single, load_checkpoint

SHIPPED = CHECKPOINT_DIR


def resolve(checkpoint, algo_dir: str, task_id: str) -> Path:
    if checkpoint is None:
        path = SHIPPED / algo_dir / f"{task_id}.pt"
        if not path.exists():
            raise FileNotFoundError(f"no shipped {algo_dir} checkpoint for task {task_id!r} ({path}); train one with "
                                    f"train_marl.py and pass --checkpoint")
        return path
    path = Path(checkpoint)
    if path.is_dir():
        path = path / f"{task_id}.pt"
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return path


class LearnedPolicy(Policy):
    """Loads (and caches) one network per checkpoint file; subclasses say which and how to act."""

    algos: tuple[str, ...] = ()
    folder = ""

    def __init__(self, checkpoint=None):
        self.checkpoint = checkpoint
        self._loaded = {}

    def build(self, blob: dict) -> torch.nn.Module:
        raise NotImplementedError

    def reset(self, task, seed):
        super().reset(task, seed)
        path = resolve(self.checkpoint, self.folder, task.id)
        if path not in self._loaded:
            blob = load_checkpoint(path, algos=self.algos, task=task.id)
            net = self.build(blob)
            net.eval()
            self._loaded[path] = (net, dict(blob.get("frozen", {})))
        self.net, frozen = self._loaded[path]
        # agents trained frozen keep their rules (their heads never learned)
        self.frozen = {a: FrozenAgent(a, rule) for a, rule in frozen.items()}
        for f in self.frozen.values():
            f.reset(task, seed)

    def _with_frozen(self, actions: dict, observations, infos, state) -> dict:
        for a, f in self.frozen.items():
            actions[a] = f.act(observations, infos, state)
        return actions


class MAPPOPolicy(LearnedPolicy):
    name = "mappo"
    algos = ("mappo", "ippo")
    folder = "mappo"

    def build(self, blob):
        actor = SharedActor(hidden=int(blob["args"].get("hidden", 64)))
        actor.load_state_dict(blob["state_dicts"]["actor"])
        return actor

    def act(self, observations, infos, state=None):
        return self._with_frozen(greedy_multi(self.net, observations), observations, infos, state)


class PPOPolicy(LearnedPolicy):
    name = "ppo"
    algos = ("ppo-single",)
    folder = "ppo"

    def build(self, blob):
        net = SingleActorCritic(hidden=int(blob["args"].get("hidden", 64)))
        net.load_state_dict(blob["state_dicts"]["model"])
        return net

    def act(self, observations, infos, state=None):
        if state is None:
            raise ValueError("the ppo policy acts on the global state: call act(observations, infos, env.state())")
        return greedy_single(self.net, state)
