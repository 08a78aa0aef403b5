"""OpenEnv environments over ``igym_marl.envs``: the single-agent InferenceGym interface and the
four-agent interface, one episode per instance, plus the episode log the grader replays.

Each instance owns one ServingParallelEnv; nothing is shared between instances, so sessions are
independent (``SUPPORTS_CONCURRENT_SESSIONS``).
"""

from __future__ import annotations

import math
import uuid
import weakref
from typing import Any, Optional

import numpy as np
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import EnvironmentMetadata

from ..envs import AGENTS
from ..envs.features import INFERENCEGYM_FIELDS
from ..envs.parallel import ServingParallelEnv
from ..envs.single import original_to_knobs
from ..workloads.tasks import TASKS, get_task
from .models import (MultiAgentAction, MultiAgentObservation, ServingAction, ServingObservation, ServingState)

SERVER_TASKS = tuple(TASKS)  # the trace task needs a file on the server: not offered
DEFAULT_TASK = "bursty_workload"
BASELINES = ("heuristic", "vllm-default")


LIVE_EPISODES: "weakref.WeakSet[Episode]" = weakref.WeakSet()  # what /server/status counts: leaks show here


class EpisodeOver(RuntimeError):
    """A step after the episode ended (or before any reset)."""


def check_task(task_id: Any) -> str:
    if not isinstance(task_id, str) or task_id not in SERVER_TASKS:
        raise ValueError(f"task_id={task_id!r} is unknown; allowed: {', '.join(SERVER_TASKS)}")
    return task_id


def _num(x) -> Optional[float]:
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def _agent_actions(team, knobs: dict) -> dict:
    """Each agent's Discrete index for the knobs in force (``Team.encode``), None where a manual
    value lies between the agent's levels."""
    out = {}
    for a in team.agents:
        try:
            out[a.name] = team.encode(a.name, **{k: knobs[k] for k in a.knobs})
        except ValueError:
            out[a.name] = None
    return out


class Episode:
    """One env, the policies asked to act in it, and the log of the knobs applied each window."""

    def __init__(self, task_id: str = DEFAULT_TASK):
        self.task_id = check_task(task_id)
        self.penv: ServingParallelEnv | None = None
        self.obs = self.infos = None
        self.log: list[dict] = []
        self.episode_id: Optional[str] = None
        self._policies: dict = {}
        LIVE_EPISODES.add(self)

    # ---------------------------------------------------------------- lifecycle
    def reset(self, seed=None, task_id=None, episode_id=None) -> None:
        """Start a new episode, all or nothing: a refused task, seed or episode id leaves the
        episode under way (or none) exactly as it was."""
        task_id = check_task(task_id) if task_id is not None else self.task_id
        if episode_id is not None and not isinstance(episode_id, str):
            raise ValueError(f"episode_id={episode_id!r} must be a string")
        penv = self.penv if self.penv is not None and task_id == self.task_id else ServingParallelEnv(task_id)
        # A new task gets a new env, committed only once it has reset; the env under way refuses a
        # bad seed before it changes anything (EpisodeMixin._episode_seed).
        obs, infos = penv.reset(seed=seed)
        self.penv, self.task_id = penv, task_id
        self.obs, self.infos = obs, infos
        self.log = []
        self.episode_id = episode_id if episode_id is not None else uuid.uuid4().hex
        self._policies = {}

    def log_record(self, finished: bool = False) -> dict:
        """The episode so far as the grader takes it: {task_id, seed, actions}. EpisodeOver if no
        episode has started (or, with `finished`, if it has not ended)."""
        if not self.started:
            raise EpisodeOver("no episode yet: reset first")
        if finished and not self.done:
            raise EpisodeOver("the session's episode has not finished; step it to the end, or grade a full log")
        return {"task_id": self.task_id, "seed": int(self.penv.episode_seed), "actions": list(self.log)}

    @property
    def started(self) -> bool:
        return self.obs is not None

    @property
    def done(self) -> bool:
        return self.started and not self.penv.agents

    def _check_running(self) -> None:
        if not self.started:
            raise EpisodeOver("no episode yet: reset first")
        if self.done:
            raise EpisodeOver("the episode is over: reset to start another")

    def _policy(self, name: str):
        if name not in self._policies:
            from igym_marl.agents import make_policy
            p = make_policy(name)
            p.reset(self.penv.task, self.penv.episode_seed)
            self._policies[name] = p
        return self._policies[name]

    # ---------------------------------------------------------------- stepping
    def step_policy(self, name: str) -> float:
        self._check_running()
        actions = self._policy(name).act(self.obs, self.infos, self.penv.state())
        return self._after(*self.penv.step(actions))

    def step_knobs(self, knobs) -> float:
        self._check_running()
        return self._after(*self.penv.step_knobs(knobs))

    def step_indices(self, indices: dict) -> float:
        self._check_running()
        return self._after(*self.penv.step(indices))

    def _after(self, obs, rewards, terms, truncs, infos) -> float:
        self.obs, self.infos = obs, infos
        self.log.append(dict(infos[AGENTS[0]]["knobs"]))
        return float(rewards[AGENTS[0]])

    # ---------------------------------------------------------------- views
    @property
    def info(self) -> dict:
        return self.infos[AGENTS[0]] if self.infos else {}

    def dashboard_fields(self) -> dict:
        info, penv = self.info, self.penv
        m = info.get("metrics")
        tenants, shares = [], penv.keeper.tenant_shares()  # each tenant's score so far
        for i, spec in enumerate(penv.task.tenants):
            t = m.tenants[i] if m is not None else None
            tenants.append({
                "name": spec.name, "ttft_slo_ms": spec.ttft_slo_ms, "tpot_slo_ms": spec.tpot_slo_ms,
                "arrived": t.arrived if t else 0, "queue_depth": t.queue_depth if t else 0,
                "ttft_p99_ms": _num(t.latency.ttft_p99_ms) if t else None,
                "tpot_p99_ms": _num(t.latency.tpot_p99_ms) if t else None,
                "slo_attainment": _num(t.slo_attainment) if t else None,
                "slo_met": t.slo_met if t else 0, "slo_missed": t.slo_missed if t else 0,
                "oldest_wait_ms": float(t.oldest_wait_ms) if t else 0.0,
                "score_so_far": shares[i],
                "weight": spec.weight,
            })
        ep = info.get("episode")
        knobs = dict(info.get("knobs", penv.knobs.as_dict()))
        return {
            "agent_actions": _agent_actions(penv.team, knobs),
            "task_id": self.task_id, "seed": int(penv.episode_seed), "window": int(penv.window),
            "episode_windows": int(penv.task.episode_windows), "window_s": float(penv.task.window_s), "knobs": knobs,
            "score_so_far": float(penv.keeper.score), "tenants": tenants,
            "episode": {k: float(ep[k]) for k in ("score", "goodput", "quality", "memory")} if ep else None,
        }

    def inferencegym_fields(self) -> dict:
        ig = self.info.get("inferencegym")
        return {k: (float(ig[k]) if ig is not None and np.isfinite(ig[k]) else 0.0) for k in INFERENCEGYM_FIELDS}

    def state(self) -> ServingState:
        if not self.started:
            return ServingState(task_id=self.task_id)
        return ServingState(episode_id=self.episode_id, step_count=len(self.log), task_id=self.task_id,
                            seed=int(self.penv.episode_seed), window=int(self.penv.window),
                            episode_windows=int(self.penv.task.episode_windows),
                            score_so_far=float(self.penv.keeper.score), done=self.done)


class _EpisodeEnvironment(Environment):
    """One Episode behind OpenEnv's Environment interface; subclasses decode actions and build
    observations."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, task_id: str = DEFAULT_TASK):
        super().__init__()
        self.episode = Episode(task_id)

    def reset(self, seed: Optional[int] = None, episode_id: Optional[str] = None,
              task_id: Optional[str] = None, **kwargs: Any):
        if kwargs:
            raise ValueError(f"unknown reset field(s) {sorted(kwargs)}; allowed: seed, episode_id, task_id")
        self.episode.reset(seed=seed, task_id=task_id, episode_id=episode_id)
        return self.observation(reward=0.0)

    def step(self, action, timeout_s: Optional[float] = None, **kwargs: Any):
        if action.policy is not None:
            reward = self.episode.step_policy(action.policy)
        else:
            reward = self._step_action(action)
        return self.observation(reward=reward)

    def _step_action(self, action) -> float:
        raise NotImplementedError

    def observation(self, reward: float):
        raise NotImplementedError

    @property
    def state(self) -> ServingState:
        return self.episode.state()

    def get_metadata(self) -> EnvironmentMetadata:
        return EnvironmentMetadata(name=f"igym-marl {self.interface}", version="0.1.0", author="igym-marl",
                                   description=(self.__doc__ or "").strip().replace("\n", " "),
                                   documentation_url="docs/server.md")


class ServingEnvironment(_EpisodeEnvironment):
    """The single-agent InferenceGym interface: the six knobs (or a server-side policy) in, the
    15 InferenceGym fields and the dashboard fields out. reset() takes ``task_id`` and ``seed``."""

    interface = "serving_v0, single agent (InferenceGym fields)"

    def _step_action(self, action: ServingAction) -> float:
        return self.episode.step_knobs(action.knobs)

    def observation(self, reward: float) -> ServingObservation:
        return ServingObservation(**self.episode.inferencegym_fields(), **self.episode.dashboard_fields(),
                                  reward=reward, done=self.episode.done)


class MultiAgentServingEnvironment(_EpisodeEnvironment):
    """The four-agent interface: each agent's Discrete index in, each agent's observation and the
    team reward out."""

    interface = "serving_v0, four agents"

    def _step_action(self, action: MultiAgentAction) -> float:
        return self.episode.step_indices(action.indices())

    def observation(self, reward: float) -> MultiAgentObservation:
        d = self.episode.dashboard_fields()
        d.pop("tenants")
        obs = {a: [float(x) for x in np.asarray(self.episode.obs[a]).ravel()] for a in self.episode.obs}
        return MultiAgentObservation(observations=obs, **d, reward=reward, done=self.episode.done)


# ---------------------------------------------------------------------------------- grading
def replay(task_id: str, seed: int, actions: list) -> dict:
    """Replay an episode from its log (each window's six knob fields) and return its score
    components. The log must cover the whole episode; every entry is validated as an action."""
    task_id = check_task(task_id)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed={seed!r} must be an integer")
    n = get_task(task_id).episode_windows
    if not isinstance(actions, list) or len(actions) != n:
        got = len(actions) if isinstance(actions, list) else type(actions).__name__
        raise ValueError(f"actions has {got} windows; a {task_id} episode has {n}: give one knob dict per window")
    knobs = []
    for i, a in enumerate(actions):
        try:
            knobs.append(original_to_knobs(a))
        except ValueError as e:
            raise ValueError(f"actions[{i}]: {e}") from None
    ep = Episode(task_id)
    ep.reset(seed=seed)
    for k in knobs:
        ep.step_knobs(k)
    comp = ep.info["episode"]
    return {"task_id": task_id, "seed": seed, "windows": n,
            **{k: float(comp[k]) for k in ("score", "goodput", "quality", "memory")}}


def run_baseline(policy: str, task_id: str, seed: int) -> dict:
    """One episode of a server-side baseline; its score components and its log."""
    if policy not in BASELINES:
        raise ValueError(f"policy={policy!r} is not a baseline here; allowed: {', '.join(BASELINES)}")
    ep = Episode(check_task(task_id))
    ep.reset(seed=seed)
    while not ep.done:
        ep.step_policy(policy)
    comp = ep.info["episode"]
    return {"policy": policy, "task_id": task_id, "seed": int(ep.penv.episode_seed),
            "windows": len(ep.log), **{k: float(comp[k]) for k in ("score", "goodput", "quality", "memory")}}
