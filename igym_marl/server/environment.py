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
from ..envs.cluster import AUTOSCALER, ROUTER, ROUTER_RULES, ServingClusterEnv, router_routing, rule_name
from ..envs.parallel import ServingParallelEnv
from ..envs.single import original_to_knobs
from ..envs.team import STANDARD
from ..sim.cluster import STATES
from ..workloads.cluster_tasks import CLUSTER_TASK_IDS, get_cluster_task
from ..workloads.tasks import TASKS, get_task
from .models import (ClusterAction, ClusterObservation, MultiAgentAction, MultiAgentObservation, ServingAction,
                     ServingObservation, ServingState, cluster_control)

SINGLE_TASKS = tuple(TASKS)  # the trace task needs a file on the server: not offered
SERVER_TASKS = SINGLE_TASKS + CLUSTER_TASK_IDS  # what the grader and /baseline take
DEFAULT_TASK = "bursty_workload"
DEFAULT_CLUSTER_TASK = "cluster_diurnal"
BASELINES = ("heuristic", "vllm-default")  # the dashboard's reference lines, single-replica tasks
CLUSTER_BASELINES = ("vllm-default", "hpa", "best-constant")  # and cluster tasks


LIVE_EPISODES: "weakref.WeakSet[Episode]" = weakref.WeakSet()  # what /server/status counts: leaks show here


class EpisodeOver(RuntimeError):
    """A step after the episode ended (or before any reset)."""


def check_task(task_id: Any) -> str:
    """A single-replica task id the server offers."""
    if isinstance(task_id, str) and task_id in CLUSTER_TASK_IDS:
        raise ValueError(f"task_id={task_id!r} is a cluster task: play it in a cluster session (mode 'cluster', "
                         f"or OpenEnv's routes under /cluster); single-replica tasks: {', '.join(SINGLE_TASKS)}")
    if not isinstance(task_id, str) or task_id not in SINGLE_TASKS:
        raise ValueError(f"task_id={task_id!r} is unknown; allowed: {', '.join(SINGLE_TASKS)}")
    return task_id


def check_cluster_task(task_id: Any) -> str:
    """A cluster task id."""
    if isinstance(task_id, str) and task_id in SINGLE_TASKS:
        raise ValueError(f"task_id={task_id!r} is a single-replica task: a cluster session plays "
                         f"{', '.join(CLUSTER_TASK_IDS)}")
    if not isinstance(task_id, str) or task_id not in CLUSTER_TASK_IDS:
        raise ValueError(f"task_id={task_id!r} is unknown; cluster tasks: {', '.join(CLUSTER_TASK_IDS)}")
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


class _Episode:
    """One env, the policies asked to act in it, and the log of the control applied each window:
    what single-replica and cluster episodes share. Subclasses say which tasks they take, build
    the env and the policies, and write a window's log entry and dashboard fields."""

    info_agent = ""  # the agent whose info holds the window's metrics
    default_task = ""
    env_cls: type = object  # built with the task id

    def __init__(self, task_id: Optional[str] = None):
        self.task_id = self.check_task(self.default_task if task_id is None else task_id)
        self.penv = None
        self.obs = self.infos = None
        self.log: list[dict] = []
        self.episode_id: Optional[str] = None
        self._policies: dict = {}
        LIVE_EPISODES.add(self)

    @staticmethod
    def check_task(task_id: Any) -> str:
        raise NotImplementedError

    def _make_policy(self, name: str):
        raise NotImplementedError

    def _log_entry(self) -> dict:
        raise NotImplementedError

    # ---------------------------------------------------------------- lifecycle
    def reset(self, seed=None, task_id=None, episode_id=None) -> None:
        """Start a new episode, all or nothing: a refused task, seed or episode id leaves the
        episode under way (or none) exactly as it was."""
        task_id = self.check_task(task_id) if task_id is not None else self.task_id
        if episode_id is not None and not isinstance(episode_id, str):
            raise ValueError(f"episode_id={episode_id!r} must be a string")
        penv = self.penv if self.penv is not None and task_id == self.task_id else self.env_cls(task_id)
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
            p = self._make_policy(name)
            p.reset(self.penv.task, self.penv.episode_seed)
            if getattr(p, "sees_env", False):
                p.attach(self.penv)
            self._policies[name] = p
        return self._policies[name]

    # ---------------------------------------------------------------- stepping
    def step_policy(self, name: str) -> float:
        self._check_running()
        actions = self._policy(name).act(self.obs, self.infos, self.penv.state())
        return self._after(*self.penv.step(actions))

    def step_indices(self, indices: dict) -> float:
        self._check_running()
        return self._after(*self.penv.step(indices))

    def _after(self, obs, rewards, terms, truncs, infos) -> float:
        self.obs, self.infos = obs, infos
        self.log.append(self._log_entry())
        return float(rewards[self.info_agent])

    # ---------------------------------------------------------------- views
    @property
    def info(self) -> dict:
        return self.infos[self.info_agent] if self.infos else {}

    episode_keys: tuple = ()  # the score components an ended episode reports

    def episode_components(self) -> Optional[dict]:
        """The score components once the episode has ended (None before; NaN ones as None)."""
        ep = self.info.get("episode")
        return {k: _num(ep[k]) for k in self.episode_keys} if ep else None

    def state(self) -> ServingState:
        if not self.started:
            return ServingState(task_id=self.task_id)
        return ServingState(episode_id=self.episode_id, step_count=len(self.log), task_id=self.task_id,
                            seed=int(self.penv.episode_seed), window=int(self.penv.window),
                            episode_windows=int(self.penv.task.episode_windows),
                            score_so_far=float(self.penv.keeper.score), done=self.done)


class Episode(_Episode):
    """A single-replica episode (serving_v0): the six knobs applied each window are its log."""

    info_agent = AGENTS[0]
    episode_keys = ("score", "goodput", "quality", "memory")
    default_task, env_cls = DEFAULT_TASK, ServingParallelEnv
    check_task = staticmethod(check_task)

    def _make_policy(self, name: str):
        from igym_marl.agents import make_policy
        return make_policy(name)

    def _log_entry(self) -> dict:
        return dict(self.info["knobs"])

    def step_knobs(self, knobs) -> float:
        self._check_running()
        return self._after(*self.penv.step_knobs(knobs))

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
        knobs = dict(info.get("knobs", penv.knobs.as_dict()))
        return {
            "agent_actions": _agent_actions(penv.team, knobs),
            "task_id": self.task_id, "seed": int(penv.episode_seed), "window": int(penv.window),
            "episode_windows": int(penv.task.episode_windows), "window_s": float(penv.task.window_s), "knobs": knobs,
            "score_so_far": float(penv.keeper.score), "tenants": tenants, "episode": self.episode_components(),
        }

    def inferencegym_fields(self) -> dict:
        ig = self.info.get("inferencegym")
        return {k: (float(ig[k]) if ig is not None and np.isfinite(ig[k]) else 0.0) for k in INFERENCEGYM_FIELDS}


class ClusterEpisode(_Episode):
    """A cluster episode (serving_cluster_v0): N replicas, a router and an autoscaler. Its log holds
    each window's control: every replica's knobs, the routing rule and the target."""

    info_agent = ROUTER
    # the score's components (ClusterScoreKeeper.components) and what the clients saw (service_summary)
    episode_keys = ("score", "goodput", "quality", "gpu_share", "cost", "billed_usd", "ttft_attainment",
                    "ttft_p50_ms", "prefix_hit_rate")
    default_task, env_cls = DEFAULT_CLUSTER_TASK, ServingClusterEnv
    check_task = staticmethod(check_cluster_task)

    def _make_policy(self, name: str):
        from igym_marl.agents.cluster.evaluate import make_cluster_policy
        return make_cluster_policy(name, self.task_id)

    def _log_entry(self) -> dict:
        """{knobs, rule, target}: knobs one object when every replica ran the same, else one per replica."""
        knobs = [k.as_dict() for k in self.penv.knobs]
        return {"knobs": knobs[0] if all(k == knobs[0] for k in knobs) else knobs,
                "rule": rule_name(self.penv.routing), "target": int(self.penv.target)}

    def step_control(self, knobs, rule: str, target: int) -> float:
        """One window under `knobs` (one Knobs, or one per replica), `rule` and `target`. Knobs on
        the agents' levels go through the agents' actions, so their last-action features stay
        exact; others through ``step_cluster``. Both advance the cluster the same way."""
        from igym_marl.agents.cluster.baselines import actions_for
        self._check_running()
        n = self.penv.n
        if isinstance(knobs, list) and len(knobs) != n:
            raise ValueError(f"knobs has {len(knobs)} entries; {self.task_id} runs {n} replicas: give one per "
                             f"replica, or one object for all")
        if isinstance(target, bool) or not isinstance(target, int) or not 1 <= target <= n:
            raise ValueError(f"target={target!r} must be an integer in 1..{n} (active replicas of {self.task_id})")
        try:
            actions = actions_for(self.penv, knobs, rule, target)
        except ValueError:  # a knob between the agents' levels
            return self._after(*self.penv.step_cluster(knobs, router_routing(ROUTER_RULES.index(rule)), target))
        return self._after(*self.penv.step(actions))

    def dashboard_fields(self) -> dict:
        penv, cw = self.penv, self.info.get("cluster")
        states = [STATES[int(s)] for s in penv.cluster.state]
        replicas = []
        for i in range(penv.n):
            m = cw.replicas[i] if cw is not None else None
            knobs = penv.knobs[i].as_dict()
            replicas.append({
                "index": i, "state": states[i], "state_in_window": cw.states[i] if cw is not None else None,
                "routed": int(sum(cw.routed[i])) if cw is not None else 0,
                "routed_by_tenant": [int(x) for x in cw.routed[i]] if cw is not None else [],
                "queue_depth": int(m.queue_depth) if m else 0, "running": int(m.running) if m else 0,
                "kv_occupancy": float(m.kv_occupancy) if m else 0.0,
                "busy_fraction": float(m.busy_fraction) if m else 0.0,
                "prefix_hit_rate": _num(m.prefix_hit_rate) if m else None,
                "throughput_tps": float(m.throughput_tps) if m else 0.0,
                "slo_met": int(m.slo_met) if m else 0, "slo_missed": int(m.slo_missed) if m else 0,
                "knobs": knobs, "agent_actions": _agent_actions(STANDARD, knobs),
            })
        shares = penv.keeper.tenant_shares()
        tenants = []
        for t, spec in enumerate(penv.task.tenants):
            ms = [m.tenants[t] for m in cw.replicas] if cw is not None else []
            tenants.append({"name": spec.name, "weight": spec.weight, "ttft_slo_ms": spec.ttft_slo_ms,
                            "tpot_slo_ms": spec.tpot_slo_ms, "arrived": sum(x.arrived for x in ms),
                            "slo_met": sum(x.slo_met for x in ms), "slo_missed": sum(x.slo_missed for x in ms),
                            "routed": [int(cw.routed[i][t]) for i in range(penv.n)] if cw is not None else [],
                            "score_so_far": shares[t]})
        started = cw is not None
        fleet = {s: states.count(s) for s in STATES}
        fleet.update({
            "replicas": penv.n, "capacity_rps": float(penv.task.capacity_rps),
            "rule": rule_name(penv.routing) if started else ROUTER_RULES[penv.last_actions[ROUTER]],
            "target": int(penv.target) if started else int(penv.last_actions[AUTOSCALER]) + 1,
            "arrivals": int(sum(map(sum, cw.routed))) if started else 0,
            "billed_usd": float(cw.billed_usd) if started else 0.0, "fleet_usd": float(cw.fleet_usd) if started else 0.0,
            "gpu_share_so_far": penv.keeper.billed_usd / penv.keeper.fleet_usd if penv.keeper.fleet_usd else 0.0,
        })
        return {"task_id": self.task_id, "seed": int(penv.episode_seed), "window": int(penv.window),
                "episode_windows": int(penv.task.episode_windows), "window_s": float(penv.task.window_s),
                "score_so_far": float(penv.keeper.score), "episode": self.episode_components(),
                "replicas": replicas, "fleet": fleet, "tenants": tenants}


class _EpisodeEnvironment(Environment):
    """One Episode behind OpenEnv's Environment interface; subclasses decode actions and build
    observations."""

    SUPPORTS_CONCURRENT_SESSIONS = True
    episode_cls: type = Episode

    def __init__(self, task_id: Optional[str] = None):
        super().__init__()
        self.episode = self.episode_cls(task_id)

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


class ClusterServingEnvironment(_EpisodeEnvironment):
    """Cluster mode: N replicas, a router and an autoscaler. Each window's control ({knobs, rule,
    target}) or a server-side cluster policy in; each replica's state, routing and load, the
    fleet and the tenants out. reset() takes ``task_id`` (a cluster task) and ``seed``."""

    interface = "serving_cluster_v0 (replicas, router, autoscaler)"
    episode_cls = ClusterEpisode

    def _step_action(self, action: ClusterAction) -> float:
        return self.episode.step_control(*action.control)

    def observation(self, reward: float) -> ClusterObservation:
        return ClusterObservation(**self.episode.dashboard_fields(), reward=reward, done=self.episode.done)


# ---------------------------------------------------------------------------------- grading
def _check_log(task_id: Any, seed: Any, actions: Any) -> tuple[str, int]:
    """The task and its episode length, once the seed is an integer and the log covers the episode."""
    if not isinstance(task_id, str) or task_id not in SERVER_TASKS:
        raise ValueError(f"task_id={task_id!r} is unknown; allowed: {', '.join(SERVER_TASKS)}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed={seed!r} must be an integer")
    cluster = task_id in CLUSTER_TASK_IDS
    n = (get_cluster_task if cluster else get_task)(task_id).episode_windows
    if not isinstance(actions, list) or len(actions) != n:
        got = len(actions) if isinstance(actions, list) else type(actions).__name__
        each = "one {knobs, rule, target} per window" if cluster else "one knob dict per window"
        raise ValueError(f"actions has {got} windows; a {task_id} episode has {n}: give {each}")
    return task_id, n


def replay(task_id: str, seed: int, actions: list) -> dict:
    """Replay an episode from its log and return its score components: for a single-replica task
    each window's six knob fields, for a cluster task each window's {knobs, rule, target}. The log
    must cover the whole episode; every entry is validated as an action before anything runs."""
    task_id, n = _check_log(task_id, seed, actions)
    cluster = task_id in CLUSTER_TASK_IDS
    parse = cluster_control if cluster else original_to_knobs
    controls = []
    for i, a in enumerate(actions):
        try:
            controls.append(parse(a))
        except ValueError as e:
            raise ValueError(f"actions[{i}]: {e}") from None
    ep = ClusterEpisode(task_id) if cluster else Episode(task_id)
    ep.reset(seed=seed)
    for i, c in enumerate(controls):
        try:
            ep.step_control(*c) if cluster else ep.step_knobs(c)
        except ValueError as e:  # a target or a knob list that does not fit the task's N
            raise ValueError(f"actions[{i}]: {e}") from None
    return {"task_id": task_id, "seed": seed, "windows": n, **ep.episode_components()}


def run_baseline(policy: str, task_id: str, seed: int) -> dict:
    """One episode of a server-side baseline; its score components."""
    if not isinstance(task_id, str) or task_id not in SERVER_TASKS:
        raise ValueError(f"task_id={task_id!r} is unknown; allowed: {', '.join(SERVER_TASKS)}")
    cluster = task_id in CLUSTER_TASK_IDS
    allowed = CLUSTER_BASELINES if cluster else BASELINES
    if policy not in allowed:
        raise ValueError(f"policy={policy!r} is not a baseline for {'cluster' if cluster else 'single-replica'} "
                         f"tasks; allowed: {', '.join(allowed)}")
    ep = ClusterEpisode(task_id) if cluster else Episode(task_id)
    ep.reset(seed=seed)
    while not ep.done:
        ep.step_policy(policy)
    return {"policy": policy, "task_id": task_id, "seed": int(ep.penv.episode_seed), "windows": len(ep.log),
            **ep.episode_components()}
