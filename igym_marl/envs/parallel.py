"""ServingParallelEnv: the PettingZoo ParallelEnv over the simulator (spec: igym_marl.serving_v0)."""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from ..sim.simulator import Simulator
from ..sim.types import Knobs
from ..workloads.tasks import TaskSpec, get_task
from .episode import EpisodeMixin
from .features import FeatureBuilder, inferencegym_fields
from .reward import MEMORY_COST, VALUE_BASES, ScoreKeeper
from .team import STANDARD, Team

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
                 team: Team = STANDARD, **task_overrides):
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
                                     f"shaping, episode_windows, memory_cost, value, team") from None
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
        if not isinstance(team, Team):
            raise ValueError(f"team={team!r} must be an igym_marl.envs.team.Team")
        self.team = team
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
        self.possible_agents = list(team.names)
        self.agents: list[str] = []
        self.sim = Simulator(self.task.config)
        r = self.sim.replica
        self.total_gpu_gb = r.gpu.memory_gb * r.tp
        self.features = FeatureBuilder(self.task.tenants, self.task.capacity_rps, self.total_gpu_gb, r.weights_gb,
                                       self.task.config.block_tokens, self.task.episode_windows, team)
        self._build_spaces()
        self._n = {a.name: a.action.n for a in team.agents}
        self._rng = None
        self._state = np.zeros(self.features.state_dim, dtype=np.float32)
        self.history: list[dict] = []
        self.window = 0

    # ------------------------------------------------------------------ spaces
    def _build_spaces(self) -> None:
        """Spaces: built once per instance (a clone gets its own), never shared or changed."""
        self._obs_spaces = {a: spaces.Box(0.0, 1.0, (self.features.obs_dim[a],), np.float32) for a in self.team.names}
        if self.action_format == "discrete":
            self._act_spaces = {a.name: spaces.Discrete(a.action.n) for a in self.team.agents}
        else:
            self._act_spaces = {a.name: spaces.MultiDiscrete(list(a.action.sizes)) for a in self.team.agents}
        self.state_space = spaces.Box(0.0, 1.0, (self.features.state_dim,), np.float32)

    # ------------------------------------------------------------------ episode
    def reset(self, seed=None, options=None):
        episode_seed = self._episode_seed(seed)
        self.episode_seed = episode_seed
        self.episode = self.task.episode(episode_seed)  # its traffic and the phase of every second
        self.workload = self.episode.workload
        self.sim.reset(self.workload, seed=episode_seed)
        self.keeper = ScoreKeeper.for_episode(self.workload, self.task.horizon_s, self.total_gpu_gb,
                                              self.memory_cost, self.value)
        self.agents = list(self.team.names)
        self.window = 0
        self.last_actions = dict(self.team.default_actions)
        self.knobs = self.sim.knobs
        self.history = []
        self._met = 0
        self._decided = 0
        obs, self._state = self.features.build(None, None, 0, self.last_actions, self.knobs)
        infos = {a: {"episode_seed": episode_seed, "knobs": self.knobs.as_dict()} for a in self.team.names}
        return obs, infos

    def _validate(self, actions) -> dict[str, int]:
        self._check_actions(actions)
        flat = {}
        for a in self.team.names:
            act = actions[a]
            if self.action_format == "multidiscrete":
                arr = np.asarray(act)
                knobs = self.team.owned(a).knobs
                if arr.shape != (len(knobs),) or arr.dtype.kind not in "iu":
                    raise ValueError(f"agent {a!r}: action={act!r} must be an integer array of shape "
                                     f"({len(knobs)},) (knobs {knobs})")
                flat[a] = self.team.index_of_levels(a, arr.tolist())
            elif type(act) in _INT_TYPES and 0 <= act < self._n[a]:
                flat[a] = int(act)
            elif isinstance(act, (list, tuple, np.ndarray)) and np.ndim(act) > 0:
                raise ValueError(f"agent {a!r}: action={act!r} is a sequence; with action_format='discrete' an "
                                 f"action is one integer in 0..{self._n[a] - 1} (per-knob level arrays need "
                                 f"action_format='multidiscrete')")
            else:
                self.team.decode(a, act)  # raises with the agent's name for bad type, NaN or range
                flat[a] = int(np.asarray(act).item())
        return flat

    def step(self, actions):
        self._check_running()
        flat = self._validate(actions)
        return self._advance(self.team.joint(flat), flat)

    def step_knobs(self, knobs: Knobs):
        """Advance one window with arbitrary knob values (the single-agent 'original' action mode)."""
        self._check_running()
        if not isinstance(knobs, Knobs):
            raise ValueError(f"knobs must be a Knobs, got {type(knobs).__name__}")
        for k in self.team.frozen_knobs:
            if getattr(knobs, k) != getattr(self.team.base, k):
                raise ValueError(f"knobs.{k}={getattr(knobs, k)!r}: no agent of this team owns {k!r}, so it stays at "
                                 f"the team's base value {getattr(self.team.base, k)!r}")
        try:
            flat = self.team.to_actions(knobs)
        except ValueError:  # values between levels: show the nearest levels in the last-action features
            flat = self.team.nearest_actions(knobs)
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
        names = self.team.names
        rewards = {a: self.reward_scale * r for a in names}
        if self.shaping:  # each agent's own term (igym_marl/envs/team.py), in [-SHAPING_WEIGHT, 0]
            for a, bonus in self.team.shaping(m, self.task, SHAPING_WEIGHT).items():
                rewards[a] += bonus
        done = self.window >= self.task.episode_windows
        terminations = {a: False for a in names}
        truncations = {a: done for a in names}
        attainment = self._met / self._decided if self._decided else 1.0
        ig = inferencegym_fields(m, self.window, attainment)
        info = {"metrics": m, "inferencegym": ig, "score_so_far": self.keeper.score, "knobs": _knob_dict(knobs),
                "window_reward": r}
        if done:
            info["episode"] = {**self.keeper.components(), "episode_seed": self.episode_seed,
                               "metrics": self.sim.episode_metrics()}
        infos = {a: info for a in names}
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


SHAPING_WEIGHT = 0.1  # the largest shaping term, against a window reward in [0, 1]
