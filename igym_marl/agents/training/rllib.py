"""RLlib on serving_v0: env adapters, the PPO configuration, and a policy that plays a checkpoint.

Needs the ray extra (``pip install -e '.[ray]'``); nothing else in the package imports Ray.

Two ways to map the four agents to RLlib modules:

* ``shared`` (default): one module for all four, as parameter-shared MAPPO does. The agents'
  observations differ in size and their Discrete actions in count (2 to 30), so each
  agent's observation is zero-padded to the largest, followed by a one-hot of the agent, and the
  shared action space is the largest Discrete with a mask of the agent's own actions (RLlib's
  action-masking PPO module). The env refuses a masked action: nothing is clamped.
* ``per-agent``: one module per agent on its own spaces, through RLlib's ParallelPettingZooEnv.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

try:
    from ray.rllib.env.multi_agent_env import MultiAgentEnv
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("RLlib support needs the ray extra: pip install -e '.[ray]'") from e

from igym_marl import serving_v0
from igym_marl.envs import AGENT_KNOBS, AGENTS
from igym_marl.envs.shared import SharedSpaces

from igym_marl.agents.policies.base import Policy

SHARING = ("shared", "per-agent")
SHARED_MODULE = "shared"
ENV_NAME = "igym_marl_serving_v0"


def _parallel_env(config: dict):
    task = config.get("task", "bursty_workload")
    options = {"episode_windows": config["episode_windows"]} if config.get("episode_windows") else {}
    if task == "trace":
        options["path"] = config["trace_path"]
    return serving_v0.parallel_env(task=task, **options)


class SharedServingEnv(MultiAgentEnv):
    """serving_v0 for one shared RLlib module: padded observations with the agent's one-hot and
    an action mask; rewards, terminations and truncations as the ParallelEnv gives them."""

    def __init__(self, config: dict | None = None):
        super().__init__()
        self.penv = _parallel_env(dict(config or {}))
        self.spaces = SharedSpaces(self.penv)
        self.agents = self.possible_agents = list(AGENTS)
        self.observation_spaces = {a: self.spaces.observation_space for a in AGENTS}
        self.action_spaces = {a: self.spaces.action_space for a in AGENTS}

    def reset(self, *, seed=None, options=None):
        obs, infos = self.penv.reset(seed=seed, options=options)
        return {a: self.spaces.encode(a, obs[a]) for a in obs}, {a: {} for a in obs}

    def step(self, action_dict):
        obs, rew, term, trunc, _ = self.penv.step(self.spaces.check(action_dict))
        out_obs = {a: self.spaces.encode(a, obs[a]) for a in obs}  # the last one too: RLlib bootstraps from it
        terminateds = {**{a: bool(v) for a, v in term.items()}, "__all__": all(term.values())}
        truncateds = {**{a: bool(v) for a, v in trunc.items()}, "__all__": all(trunc.values())}
        return out_obs, {a: float(r) for a, r in rew.items()}, terminateds, truncateds, {}


def make_env(config: dict):
    """The env RLlib builds on each runner: shared or per-agent, per config["sharing"]."""
    sharing = config.get("sharing", "shared")
    if sharing not in SHARING:
        raise ValueError(f"sharing={sharing!r} is unknown; allowed: {', '.join(SHARING)}")
    env_config = {k: v for k, v in config.items() if k != "sharing"}
    return SharedServingEnv(env_config) if sharing == "shared" else ParallelPettingZooEnv(_parallel_env(env_config))


def register() -> str:
    from ray.tune.registry import register_env
    register_env(ENV_NAME, make_env)
    return ENV_NAME


def ppo_config(task: str = "bursty_workload", sharing: str = "shared", episode_windows: int | None = None,
               num_env_runners: int = 0, seed: int = 0, lr: float = 3e-4, train_batch: int = 2000,
               minibatch: int = 250, epochs: int = 4, gamma: float = 0.99, entropy: float = 0.01,
               trace_path: str | None = None):
    """RLlib's PPO on serving_v0 (new API stack), for `sharing` "shared" or "per-agent"."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    if sharing not in SHARING:
        raise ValueError(f"sharing={sharing!r} is unknown; allowed: {', '.join(SHARING)}")
    env_config = {"task": task, "sharing": sharing}
    if episode_windows is not None:
        env_config["episode_windows"] = episode_windows
    if trace_path is not None:
        env_config["trace_path"] = trace_path
    cfg = (PPOConfig()
           # RLlib's pre-check steps random actions that ignore the mask, which the shared env refuses
           .environment(register(), env_config=env_config, disable_env_checking=(sharing == "shared"))
           .env_runners(num_env_runners=num_env_runners)
           .training(lr=lr, train_batch_size_per_learner=train_batch, minibatch_size=minibatch, num_epochs=epochs,
                     gamma=gamma, entropy_coeff=entropy)
           .debugging(seed=seed))
    if sharing == "shared":
        from ray.rllib.examples.rl_modules.classes.action_masking_rlm import ActionMaskingTorchRLModule
        cfg = cfg.multi_agent(policies={SHARED_MODULE}, policy_mapping_fn=lambda aid, *a, **k: SHARED_MODULE)
        cfg = cfg.rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={
            SHARED_MODULE: RLModuleSpec(module_class=ActionMaskingTorchRLModule,
                                        model_config={"head_fcnet_hiddens": [64, 64]})}))
    else:
        cfg = cfg.multi_agent(policies=set(AGENTS), policy_mapping_fn=lambda aid, *a, **k: aid)
    return cfg


class RLlibPolicy(Policy):
    """Plays an RLlib checkpoint greedily (the most likely allowed action) through evaluate.py:
    ``--agent rllib --checkpoint DIR`` (an Algorithm checkpoint written by scripts/train_rllib.py)."""

    name = "rllib"

    def __init__(self, checkpoint: str | None = None, modules: dict | None = None):
        if modules is None:
            modules = self._load(checkpoint)
            self.checkpoint = str(checkpoint)
        names = sorted(modules)
        if names == [SHARED_MODULE]:
            self.sharing = "shared"
        elif set(names) == set(AGENTS):
            self.sharing = "per-agent"
        else:
            raise ValueError(f"RLlib modules {names}: expected [{SHARED_MODULE!r}] or {list(AGENTS)}")
        self.modules = modules
        self.spaces = None

    @staticmethod
    def _load(checkpoint) -> dict:
        if checkpoint is None:
            raise ValueError("the rllib policy needs --checkpoint DIR (written by scripts/train_rllib.py)")
        root = Path(checkpoint)
        folder = root / "learner_group" / "learner" / "rl_module"
        if not folder.is_dir():
            raise ValueError(f"checkpoint={str(root)!r} is not an RLlib algorithm checkpoint (no {folder})")
        from ray.rllib.core.rl_module.rl_module import RLModule
        return {p.name: RLModule.from_checkpoint(p) for p in sorted(folder.iterdir()) if p.is_dir()}

    @classmethod
    def from_algorithm(cls, algo) -> "RLlibPolicy":
        """The policy of a live Algorithm (evaluation during training, no checkpoint written)."""
        ids = [m for m in algo.config.policies] if algo.config.policies else [SHARED_MODULE]
        return cls(modules={m: algo.get_module(m) for m in ids})

    def reset(self, task, seed):
        super().reset(task, seed)
        if self.sharing == "shared":
            self.spaces = SharedSpaces(serving_v0.parallel_env(task=task))

    def act(self, observations, infos, state=None):
        import torch
        out = {}
        for a in AGENTS:
            if self.sharing == "shared":
                enc = self.spaces.encode(a, observations[a])
                batch = {"obs": {k: torch.as_tensor(v)[None] for k, v in enc.items()}}
                module = self.modules[SHARED_MODULE]
            else:
                batch = {"obs": torch.as_tensor(np.asarray(observations[a], np.float32))[None]}
                module = self.modules[a]
            with torch.no_grad():
                logits = module.forward_inference(batch)["action_dist_inputs"][0]
            out[a] = int(torch.argmax(logits[: AGENT_KNOBS[a].n]))
        return out
