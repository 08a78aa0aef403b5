"""ServingParallelEnv: the PettingZoo ParallelEnv over the simulator (spec: igym_marl.serving_v0)."""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from ..sim.simulator import Simulator
from ..sim.types import KNOB_LEVELS, Knobs, nearest_level
from ..workloads.tasks import TaskSpec, get_task
from .actions import (AGENT_KNOBS, AGENTS, DEFAULT_ACTIONS, decode_action, encode_action, index_of_levels, joint_knobs,
                      knobs_to_actions)
from .episode import EpisodeMixin
from .features import OBS_DIM, STATE_DIM, FeatureBuilder, inferencegym_fields
from .reward import MEMORY_COST, VALUE_BASES, ScoreKeeper

ACTION_FORMATS = ("discrete", "multidiscrete")
_INT_TYPES = {int, np.int64, np.int32, np.int16, np.int8, np.uint8, np.uint16, np.uint32, np.uint64}
RENDER_MODES = ("ansi", "rgb_array")


class ServingParallelEnv(EpisodeMixin, ParallelEnv):
    """Four cooperating agents operate one LLM serving replica. See igym_marl.serving_v0 for the spec."""

    metadata = {"name": "igym_marl_serving_v0", "render_modes": list(RENDER_MODES), "is_parallelizable": True,
                "render_fps": 4}

    def __init__(self, task: str | TaskSpec = "static_workload", render_mode: str | None = None,
                 action_format: str = "discrete", reward_scale: float = 100.0, shaping: bool = False,
                 episode_windows: int | None = None, memory_cost: float = MEMORY_COST, value: str = "tokens",
                 **task_overrides):
        if isinstance(task, TaskSpec):
            if task_overrides:
                raise ValueError(f"option(s) {sorted(task_overrides)} apply to a task id; a TaskSpec is already "
                                 f"built (use dataclasses.replace on it)")
            self.task = task
        else:
            if not isinstance(task, str):
                raise ValueError(f"task={task!r} must be a task id or a TaskSpec")
            if task == "trace" and episode_windows is not None:
                task_overrides["episode_windows"] = episode_windows  # the trace task sizes its episodes itself
            try:
                self.task = get_task(task, **task_overrides)
            except ValueError as e:
                if "unknown option" in str(e):
                    raise ValueError(f"{e}; the env's own arguments: task, render_mode, action_format, reward_scale, "
                                     f"shaping, episode_windows, memory_cost, value") from None
                raise
        if episode_windows is not None:
            if isinstance(episode_windows, bool) or not isinstance(episode_windows, int) or episode_windows < 1:
                raise ValueError(f"episode_windows={episode_windows!r} must be an integer >= 1")
            self.task = dataclasses.replace(self.task, episode_windows=episode_windows)
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"render_mode={render_mode!r} is not supported; allowed: None, {', '.join(RENDER_MODES)}")
        if action_format not in ACTION_FORMATS:
            raise ValueError(f"action_format={action_format!r} is unknown; allowed: {', '.join(ACTION_FORMATS)}")
        if isinstance(reward_scale, bool) or not isinstance(reward_scale, (int, float)) or not reward_scale > 0 \
                or not math.isfinite(reward_scale):
            raise ValueError(f"reward_scale={reward_scale!r} must be a positive, finite number")
        if not isinstance(shaping, bool):
            raise ValueError(f"shaping={shaping!r} must be True or False")
        if isinstance(memory_cost, bool) or not isinstance(memory_cost, (int, float)) or not 0.0 <= memory_cost <= 1.0:
            raise ValueError(f"memory_cost={memory_cost!r} must be a number in 0..1")
        self.memory_cost = float(memory_cost)
        if value not in VALUE_BASES:
            raise ValueError(f"value={value!r} is unknown; allowed: {', '.join(VALUE_BASES)}")
        self.value = value
        self.render_mode = render_mode
        self.action_format = action_format
        self.reward_scale = float(reward_scale)
        self.shaping = shaping
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        self.sim = Simulator(self.task.config)
        r = self.sim.replica
        self.total_gpu_gb = r.gpu.memory_gb * r.tp
        self.features = FeatureBuilder(self.task.tenants, self.task.capacity_rps, self.total_gpu_gb, r.weights_gb,
                                       self.task.config.block_tokens, self.task.episode_windows)
        self._build_spaces()
        self._n = {a: AGENT_KNOBS[a].n for a in AGENTS}
        self._rng = None
        self._state = np.zeros(STATE_DIM, dtype=np.float32)
        self.history: list[dict] = []
        self.window = 0

    # ------------------------------------------------------------------ spaces
    def _build_spaces(self) -> None:
        """Spaces: built once per instance (a clone gets its own), never shared or changed."""
        self._obs_spaces = {a: spaces.Box(0.0, 1.0, (OBS_DIM[a],), np.float32) for a in AGENTS}
        if self.action_format == "discrete":
            self._act_spaces = {a: spaces.Discrete(AGENT_KNOBS[a].n) for a in AGENTS}
        else:
            self._act_spaces = {a: spaces.MultiDiscrete(list(AGENT_KNOBS[a].sizes)) for a in AGENTS}
        self.state_space = spaces.Box(0.0, 1.0, (STATE_DIM,), np.float32)

    # ------------------------------------------------------------------ episode
    def reset(self, seed=None, options=None):
        episode_seed = self._episode_seed(seed)
        self.episode_seed = episode_seed
        self.episode = self.task.episode(episode_seed)  # its traffic and the phase of every second
        self.workload = self.episode.workload
        self.sim.reset(self.workload, seed=episode_seed)
        self.keeper = ScoreKeeper.for_episode(self.workload, self.task.horizon_s, self.total_gpu_gb,
                                              self.memory_cost, self.value)
        self.agents = list(AGENTS)
        self.window = 0
        self.last_actions = dict(DEFAULT_ACTIONS)
        self.knobs = self.sim.knobs
        self.history = []
        self._met = 0
        self._decided = 0
        obs, self._state = self.features.build(None, None, 0, self.last_actions, self.knobs)
        infos = {a: {"episode_seed": episode_seed, "knobs": self.knobs.as_dict()} for a in AGENTS}
        return obs, infos

    def _validate(self, actions) -> dict[str, int]:
        self._check_actions(actions)
        flat = {}
        for a in AGENTS:
            act = actions[a]
            if self.action_format == "multidiscrete":
                arr = np.asarray(act)
                if arr.shape != (len(AGENT_KNOBS[a].knobs),) or arr.dtype.kind not in "iu":
                    raise ValueError(f"agent {a!r}: action={act!r} must be an integer array of shape "
                                     f"({len(AGENT_KNOBS[a].knobs)},) (knobs {AGENT_KNOBS[a].knobs})")
                flat[a] = index_of_levels(a, arr.tolist())
            elif type(act) in _INT_TYPES and 0 <= act < self._n[a]:
                flat[a] = int(act)
            elif isinstance(act, (list, tuple, np.ndarray)) and np.ndim(act) > 0:
                raise ValueError(f"agent {a!r}: action={act!r} is a sequence; with action_format='discrete' an "
                                 f"action is one integer in 0..{self._n[a] - 1} (per-knob level arrays need "
                                 f"action_format='multidiscrete')")
            else:
                decode_action(a, act)  # raises with the agent's name for bad type, NaN or range
                flat[a] = int(np.asarray(act).item())
        return flat

    def step(self, actions):
        self._check_running()
        flat = self._validate(actions)
        return self._advance(joint_knobs(flat), flat)

    def step_knobs(self, knobs: Knobs):
        """Advance one window with arbitrary knob values (the single-agent 'original' action mode)."""
        self._check_running()
        if not isinstance(knobs, Knobs):
            raise ValueError(f"knobs must be a Knobs, got {type(knobs).__name__}")
        try:
            flat = knobs_to_actions(knobs)
        except ValueError:  # values between levels: show the nearest levels in the last-action features
            flat = _nearest_actions(knobs)
        return self._advance(knobs, flat)

    def _advance(self, knobs: Knobs, flat: dict[str, int]):
        m = self.sim.advance(self.task.window_s, knobs)
        snap = self.sim.pending_prompts()
        self.window += 1
        self.last_actions = flat
        self.knobs = knobs
        r = self.keeper.window(m)
        self._met += m.slo_met
        self._decided += m.slo_met + m.slo_missed
        obs, self._state = self.features.build(m, snap, self.window, flat, knobs)
        team = self.reward_scale * r
        rewards = {a: team for a in AGENTS}
        if self.shaping:
            for a, bonus in _shaping(m, self.task).items():
                rewards[a] += bonus
        done = self.window >= self.task.episode_windows
        terminations = {a: False for a in AGENTS}
        truncations = {a: done for a in AGENTS}
        attainment = self._met / self._decided if self._decided else 1.0
        ig = inferencegym_fields(m, self.window, attainment)
        info = {"metrics": m, "inferencegym": ig, "score_so_far": self.keeper.score, "knobs": _knob_dict(knobs),
                "window_reward": r}
        if done:
            info["episode"] = {**self.keeper.components(), "episode_seed": self.episode_seed,
                               "metrics": self.sim.episode_metrics()}
        infos = {a: info for a in AGENTS}
        self.history.append({"window": self.window, "metrics": m, "knobs": knobs, "reward": r})
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def clone(self) -> "ServingParallelEnv":
        """An independent copy of the env mid-episode whose future equals this one's under the
        same actions: the simulator's state arrays, the score keeper, the history list and the
        seed generator are copied (the task, the workload and the metrics objects are immutable
        and shared). For look-ahead controllers; see igym_marl/agents/policies/oracle.py."""
        new = self._clone_episode()
        new.sim = self.sim.clone()
        return new

    # ------------------------------------------------------------------ rendering
    def render(self):
        if self.render_mode is None:
            return None
        from .render import ansi_dashboard, timeline_rgb
        if self.render_mode == "ansi":
            return ansi_dashboard(self)
        return timeline_rgb(self)

    def close(self):
        pass


@lru_cache(maxsize=4096)
def _knob_dict(knobs: Knobs) -> dict:
    return knobs.as_dict()


def _nearest_actions(knobs: Knobs) -> dict[str, int]:
    """Each agent's action at the levels nearest to `knobs` (``sim.types.nearest_level``)."""
    values = knobs.as_dict()
    return {a: encode_action(a, **{k: KNOB_LEVELS[k][nearest_level(k, values[k])] for k in owned.knobs})
            for a, owned in AGENT_KNOBS.items()}


SHAPING_WEIGHT = 0.1


def _shaping(m, task: TaskSpec) -> dict[str, float]:
    """Optional per-agent shaping (off by default), each term in [-SHAPING_WEIGHT, 0]:
    batch_scheduler: - waiting requests past their TTFT SLO share; kv_manager: - preemptions and
    rejections (squashed); spec_controller: - p50 TPOT over the tightest TPOT SLO (squashed);
    tenant_router: - the highest-priority tenant's missed share in the window."""
    from .features import finite, sq
    top = max(range(len(task.tenants)), key=lambda i: task.tenants[i].priority)
    t = m.tenants[top]
    decided = t.slo_met + t.slo_missed
    min_tpot = min(x.tpot_slo_ms for x in task.tenants)
    late = sum(1 for x, s in zip(m.tenants, task.tenants) if x.oldest_wait_ms > s.ttft_slo_ms) / len(task.tenants)
    w = SHAPING_WEIGHT
    return {"batch_scheduler": -w * late, "kv_manager": -w * sq(m.preemptions + m.rejected),
            "spec_controller": -w * sq(finite(m.latency.tpot_p50_ms) / min_tpot),
            "tenant_router": -w * (t.slo_missed / decided if decided else 0.0)}

