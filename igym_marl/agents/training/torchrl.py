"""TorchRL on serving_v0: the four agents as one group of TorchRL's ``PettingZooWrapper``.

Needs torchrl (``pip install torchrl``; 0.14.1 installs beside torch 2.13 without touching it).
The agents share one layout (``igym_marl.envs.shared``): padded observations with a one-hot of the
agent under ``("agents", "observation", "observations")``, and each agent's own actions as the
mask under ``("agents", "action_mask")``, so one network can serve all four (parameter sharing)
and masked actions are never drawn. The env refuses a masked index: nothing is clamped.
"""
from __future__ import annotations

try:
    from torchrl.envs.libs.pettingzoo import PettingZooWrapper
except ImportError as e:  # pragma: no cover - exercised only without torchrl
    raise ImportError("TorchRL support needs torchrl: pip install torchrl") from e

from igym_marl import serving_v0
from igym_marl.envs import AGENTS
from igym_marl.envs.shared import SharedSpacesEnv

GROUP = "agents"


def make_env(task: str = "bursty_workload", seed: int | None = None, device: str = "cpu", **options):
    """serving_v0 as a TorchRL env: one group ``agents`` holding the four, categorical actions with
    their masks, the team reward per agent, ``done`` when the episode ends."""
    penv = SharedSpacesEnv(serving_v0.parallel_env(task=task, **options), keep_episode_info=False)
    return PettingZooWrapper(penv, group_map={GROUP: list(AGENTS)}, categorical_actions=True, use_mask=True,
                             return_state=False, seed=seed, device=device)


def episode_record(env) -> dict | None:
    """The last finished episode's record (score and components) of an env from make_env."""
    return env._env.last_episode


def play_episode(env, policy, seed: int) -> dict:
    """One whole episode on ``seed`` (``rollout`` alone would reset without it and draw its own),
    with TorchRL's rollout; the episode's record."""
    td = env.reset(seed=seed)
    env.rollout(max_steps=10**7, policy=policy, auto_reset=False, tensordict=td, break_when_any_done=True)
    record = episode_record(env)
    if record is None or record.get("episode_seed") != seed:
        raise RuntimeError(f"the episode on seed {seed} did not finish")
    return record


__all__ = ["make_env", "episode_record", "play_episode", "GROUP"]
