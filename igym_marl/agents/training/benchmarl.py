"""BenchMARL on serving_v0: the single-replica tasks as a BenchMARL task, so BenchMARL's learners
(MAPPO, IPPO, MASAC, QMIX, ...) train on them with BenchMARL's own configurations.

Needs the benchmarl extra, in its own environment (``make test-benchmarl`` builds
``.venv-benchmarl``): benchmarl 1.5.2 pins torchrl < 0.12, which the main environment's torchrl
0.14.1 is not. The env is the TorchRL one of ``igym_marl.agents.training.torchrl.make_env``: the four
agents in one group ``agents``, padded observations with the agent's one-hot under
``("agents", "observation", "observations")`` and each agent's own actions as the mask.

    from igym_marl.agents.training.benchmarl import ServingTask
    task = ServingTask.BURSTY_WORKLOAD.get_task(config={})        # or {"episode_windows": 20}
    Experiment(task=task, algorithm_config=MappoConfig.get_from_yaml(), ...).run()

The task config holds the env's options (``episode_windows``, ...), passed to ``serving_v0``.
"""
from __future__ import annotations

import copy

try:
    from benchmarl.environments.common import Task, TaskClass
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("BenchMARL support needs the benchmarl extra, in its own environment: "
                      "pip install 'benchmarl==1.5.2' 'torch==2.13.0' (make test-benchmarl)") from e

from igym_marl.agents.training.torchrl import make_env


def _only(spec, group_map, keep: str):
    """The observation spec with each group holding only its `keep` entry."""
    spec = spec.clone()
    for group in group_map:
        for key in list(spec[group].keys()):
            if key != keep:
                del spec[group][key]
    return spec


class ServingTaskClass(TaskClass):
    """What BenchMARL asks of a task, for serving_v0's single-replica tasks."""

    def get_env_fun(self, num_envs, continuous_actions, seed, device):
        options, task_id = copy.deepcopy(self.config), self.name.lower()
        return lambda: make_env(task_id, seed=seed, device=device, **options)

    def supports_continuous_actions(self) -> bool:
        return False

    def supports_discrete_actions(self) -> bool:
        return True

    def has_render(self, env) -> bool:
        return False

    def max_steps(self, env) -> int:
        return int(env._env.penv.task.episode_windows)

    def group_map(self, env):
        return env.group_map

    def observation_spec(self, env):
        return _only(env.observation_spec, self.group_map(env), "observation")

    def action_mask_spec(self, env):
        return _only(env.observation_spec, self.group_map(env), "action_mask")

    def info_spec(self, env):
        return None  # the env's infos are empty (TorchRL needs tensors there); the score is in episode_record

    def state_spec(self, env):
        return None

    def action_spec(self, env):
        return env.full_action_spec

    @staticmethod
    def env_name() -> str:
        return "igym_marl"


class ServingTask(Task):
    """serving_v0's single-replica tasks (``get_task(config={...})``; there are no yaml files)."""

    STATIC_WORKLOAD = None
    BURSTY_WORKLOAD = None
    ADVERSARIAL_MULTITENANT = None
    MOONCAKE_CONVERSATION = None

    @staticmethod
    def associated_class():
        return ServingTaskClass


__all__ = ["ServingTask", "ServingTaskClass"]
