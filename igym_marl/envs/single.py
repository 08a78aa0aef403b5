"""InferenceGymEnv: the single-agent Gymnasium wrapper (``igym_marl/InferenceGym-v0``).

One agent sets all four agents' knobs at once, so results compare with the original
InferenceGym benchmark.

* ``action_mode="multidiscrete"`` (default): ``MultiDiscrete([20, 30, 9, 2])``, the four agents'
  Discrete actions side by side (batch_scheduler, kv_manager, spec_controller, tenant_router),
  encoded as in :mod:`igym_marl.envs.actions`.
* ``action_mode="original"``: the InferenceGym dict ``{batch_cap: 1..512, kv_budget_fraction:
  0.1..1.0, speculation_depth: 0..8, quantization_tier: "FP16"|"INT8"|"INT4" (or 0/1/2),
  prefill_decode_split: bool (or 0/1), priority_routing: bool (or 0/1)}``. Out-of-range or
  ill-typed values raise ValueError naming the field; nothing is clamped.
* ``obs_mode="state"`` (default): the normalized global state (the MAPPO critic's input);
  ``obs_mode="original"``: the 15 InferenceGym fields in their order and units
  (``igym_marl.envs.features.INFERENCEGYM_FIELDS``).
* Reward: the team reward (the window's share of the episode score, times ``reward_scale``).
* Episodes never terminate; they truncate after the task's number of windows.
"""

from __future__ import annotations

import numbers

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..sim.profiles import QUANT_TIERS
from ..sim.types import BATCH_CAP_RANGE, KNOB_LEVELS, KV_BUDGET_RANGE, Knobs
from .actions import AGENTS, AGENT_KNOBS
from .features import INFERENCEGYM_FIELDS, STATE_DIM
from .parallel import ServingParallelEnv

ACTION_MODES = ("multidiscrete", "original")
OBS_MODES = ("state", "original")
TIERS = tuple(QUANT_TIERS)


def _flag(field: str, v) -> bool:
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v[()]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, numbers.Integral) and int(v) in (0, 1):
        return bool(int(v))
    raise ValueError(f"{field}={v!r} is not allowed; allowed: True/False or 0/1")


def _scalar(field: str, v):
    if isinstance(v, np.ndarray):
        if v.size != 1:
            raise ValueError(f"{field}={v!r} must be a single value")
        v = v.reshape(()).item()
    elif isinstance(v, np.generic):
        v = v.item()
    return v


def original_to_knobs(action: dict) -> Knobs:
    """The InferenceGym action dict -> validated Knobs (ValueError naming the field otherwise)."""
    if not isinstance(action, dict):
        raise ValueError(f"action must be a dict with the six InferenceGym fields; got {type(action).__name__}")
    names = ("batch_cap", "kv_budget_fraction", "speculation_depth", "quantization_tier", "prefill_decode_split",
             "priority_routing")
    missing = [n for n in names if n not in action]
    extra = [n for n in action if n not in names]
    if missing or extra:
        raise ValueError(f"action fields: missing {missing}, unknown {extra}; expected {list(names)}")
    tier = _scalar("quantization_tier", action["quantization_tier"])
    if isinstance(tier, numbers.Integral) and not isinstance(tier, bool):
        if not 0 <= tier < len(TIERS):
            raise ValueError(f"quantization_tier={tier!r} is out of range; allowed: {', '.join(TIERS)} or 0..2")
        tier = TIERS[int(tier)]
    return Knobs(batch_cap=_scalar("batch_cap", action["batch_cap"]),
                 kv_budget_fraction=_scalar("kv_budget_fraction", action["kv_budget_fraction"]),
                 speculation_depth=_scalar("speculation_depth", action["speculation_depth"]),
                 quantization_tier=tier,
                 prefill_decode_split=_flag("prefill_decode_split", action["prefill_decode_split"]),
                 priority_routing=_flag("priority_routing", action["priority_routing"]))


class InferenceGymEnv(gym.Env):
    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(self, task: str = "static_workload", action_mode: str = "multidiscrete", obs_mode: str = "state",
                 render_mode: str | None = None, reward_scale: float = 100.0, **options):
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode={action_mode!r} is unknown; allowed: {', '.join(ACTION_MODES)}")
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode={obs_mode!r} is unknown; allowed: {', '.join(OBS_MODES)}")
        self.parallel_env = ServingParallelEnv(task, render_mode=render_mode, reward_scale=reward_scale, **options)
        self.render_mode = render_mode
        self.action_mode, self.obs_mode = action_mode, obs_mode
        if action_mode == "multidiscrete":
            self.action_space = spaces.MultiDiscrete([AGENT_KNOBS[a].n for a in AGENTS])
        else:
            self.action_space = spaces.Dict({
                "batch_cap": spaces.Box(*BATCH_CAP_RANGE, (), np.int64),
                "kv_budget_fraction": spaces.Box(*KV_BUDGET_RANGE, (), np.float64),
                "speculation_depth": spaces.Discrete(len(KNOB_LEVELS["speculation_depth"])),
                "quantization_tier": spaces.Discrete(len(KNOB_LEVELS["quantization_tier"])),
                "prefill_decode_split": spaces.Discrete(len(KNOB_LEVELS["prefill_decode_split"])),
                "priority_routing": spaces.Discrete(len(KNOB_LEVELS["priority_routing"])),
            })
        if obs_mode == "state":
            self.observation_space = spaces.Box(0.0, 1.0, (STATE_DIM,), np.float32)
        else:
            self.observation_space = spaces.Box(0.0, np.inf, (len(INFERENCEGYM_FIELDS),), np.float32)

    def _obs(self, info) -> np.ndarray:
        if self.obs_mode == "state":
            return self.parallel_env.state()
        ig = info.get("inferencegym")
        if ig is None:
            return np.zeros(len(INFERENCEGYM_FIELDS), dtype=np.float32)
        return np.array([ig[k] for k in INFERENCEGYM_FIELDS], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        _, infos = self.parallel_env.reset(seed=seed, options=options)
        info = infos[AGENTS[0]]
        return self._obs(info), info

    def step(self, action):
        if self.action_mode == "multidiscrete":
            arr = np.asarray(action)
            if arr.shape != (len(AGENTS),):
                raise ValueError(f"action has shape {arr.shape}; expected ({len(AGENTS)},): one index per agent "
                                 f"{AGENTS}")
            _, rew, _, trunc, infos = self.parallel_env.step({a: arr[i] for i, a in enumerate(AGENTS)})
        else:
            _, rew, _, trunc, infos = self.parallel_env.step_knobs(original_to_knobs(action))
        info = infos[AGENTS[0]]
        return self._obs(info), float(rew[AGENTS[0]]), False, bool(trunc[AGENTS[0]]), info

    def render(self):
        return self.parallel_env.render()

    @property
    def score(self) -> float:
        return self.parallel_env.score
