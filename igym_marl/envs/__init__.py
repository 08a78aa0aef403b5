"""igym_marl.envs: the PettingZoo ParallelEnv (four agents), the single-agent Gymnasium wrapper,
observation and reward builders, rendering. Importing it registers ``igym_marl/InferenceGym-v0``."""

import gymnasium

from .actions import AGENTS, DEFAULT_ACTIONS, AGENT_KNOBS, decode_action, encode_action, joint_knobs, knobs_to_actions
from .parallel import ServingParallelEnv
from .render import save_timeline
from .reward import MEMORY_COST, ScoreKeeper
from .single import InferenceGymEnv, original_to_knobs

ENV_ID = "igym_marl/InferenceGym-v0"


def register_envs() -> None:
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(ENV_ID, entry_point="igym_marl.envs.single:InferenceGymEnv", disable_env_checker=False)


register_envs()

__all__ = ["AGENTS", "AGENT_KNOBS", "DEFAULT_ACTIONS", "encode_action", "decode_action", "joint_knobs", "knobs_to_actions",
           "ServingParallelEnv", "InferenceGymEnv", "original_to_knobs", "save_timeline", "ScoreKeeper",
           "MEMORY_COST", "ENV_ID", "register_envs"]
