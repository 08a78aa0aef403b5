"""ServingClusterEnv: the PettingZoo ParallelEnv over a cluster (spec: igym_marl.serving_cluster_v0)."""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from ..sim.cluster import ACTIVE, DRAINING, STARTING, Cluster, ClusterWindow, Routing, STATES
from ..sim.types import Knobs
from ..workloads.cluster_tasks import ClusterTask, get_cluster_task
from .actions import AGENT_KNOBS, AGENTS, DEFAULT_ACTIONS, decode_action, joint_knobs
from .episode import EpisodeMixin
from .features import MAX_TENANTS, OBS_DIM, STATE_DIM, FeatureBuilder
from .reward import CLUSTER_COST_WEIGHT, ClusterScoreKeeper

# The router agent's actions: a routing rule, or llm-d's scored rule at a prefix weight of its choice
# (0.43, 3/7 rounded, is llm-d-router's profile; igym_marl.sim.cluster.LLM_D_PREFIX_WEIGHT).
SCORED_WEIGHTS = (0.2, 0.43, 0.6, 0.8)
ROUTER_RULES = ("round_robin", "least_outstanding", "tenant_pinning", "prefix_affinity") + tuple(
    f"scored:{w}" for w in SCORED_WEIGHTS)
DEFAULT_RULE = ROUTER_RULES.index("least_outstanding")


def router_routing(action: int) -> Routing:
    """The Routing a router action index stands for."""
    name = ROUTER_RULES[action]
    if name.startswith("scored:"):
        return Routing("scored", prefix_weight=float(name.split(":")[1]))
    return Routing(name)


def rule_name(routing: Routing) -> str:
    """The ROUTER_RULES name of a Routing (the inverse of router_routing); ValueError for a rule the
    router agent cannot choose (``weighted``, or a prefix weight off SCORED_WEIGHTS)."""
    name = routing.rule if routing.rule != "scored" else f"scored:{routing.prefix_weight:g}"
    if name not in ROUTER_RULES:
        raise ValueError(f"routing {name!r} is not one of the router agent's rules: {', '.join(ROUTER_RULES)}")
    return name


ROUTER, AUTOSCALER = "router", "autoscaler"
_INT_TYPES = {int, np.int64, np.int32, np.int16, np.int8, np.uint8, np.uint16, np.uint32, np.uint64}

# The cluster part of an observation (router, autoscaler; the global state starts with it): the
# features below in order, then TENANT_FEATURES for each of MAX_TENANTS tenant slots.
CLUSTER_FEATURES = (
    ("time", "windows elapsed / episode windows"),
    ("load", "arrivals in the window / (fleet capacity x window), capped at 2, halved"),
    ("load_trend", "0.5 + 0.5 tanh(4 x change of that load since the previous window)"),
    ("active", "active replicas / N"),
    ("starting", "starting replicas / N"),
    ("draining", "draining replicas / N"),
    ("target", "last target / N"),
    ("cost", "GPU cost billed in the window / the fleet's"),
    ("kv", "mean KV occupancy of the active replicas"),
    ("busy", "mean busy fraction of the active replicas"),
) + tuple((f"rule.{r}", f"1 if the last routing rule was {r}") for r in ROUTER_RULES)
TENANT_FEATURES = (
    ("share", "tenant k's share of the window's arrivals"),
    ("queue", "s(its waiting requests over the cluster / (8 x N))"),
    ("attainment", "its SLO attainment in the window (0 if none decided)"),
    ("decided", "1 if any of its requests was decided in the window"),
)
N_CLUSTER = len(CLUSTER_FEATURES) + len(TENANT_FEATURES) * MAX_TENANTS
_AT = {name: k for k, (name, _) in enumerate(CLUSTER_FEATURES)}
# The replica part appended to each replica agent's serving_v0 observation.
REPLICA_FEATURES = (("state.off", ""), ("state.starting", ""), ("state.active", ""), ("state.draining", ""),
                    ("replica", "replica index / max(1, N - 1)"), ("routed", "share of the window's arrivals sent to it"),
                    ("active", "active replicas / N"))
N_REPLICA = len(REPLICA_FEATURES)


def replica_agent(i: int, agent: str) -> str:
    return f"r{i}/{agent}"


class ServingClusterEnv(EpisodeMixin, ParallelEnv):
    """N replicas with four agents each, a router and an autoscaler. See igym_marl.serving_cluster_v0."""

    metadata = {"name": "igym_marl_serving_cluster_v0", "render_modes": ["rgb_array"], "is_parallelizable": True}

    def __init__(self, task: str | ClusterTask = "cluster_diurnal", replicas: int | None = None,
                 reward_scale: float = 100.0, cost_weight: float = CLUSTER_COST_WEIGHT,
                 render_mode: str | None = None, **task_overrides):
        if isinstance(task, ClusterTask):
            if task_overrides or replicas is not None:
                raise ValueError("replicas and task options apply to a task id; a ClusterTask is already built")
            self.task = task
        elif isinstance(task, str):
            try:
                self.task = get_cluster_task(task, replicas=replicas, **task_overrides)
            except ValueError as e:
                if "unknown option" in str(e):
                    raise ValueError(f"{e}; the env's own arguments: task, replicas, reward_scale, cost_weight, "
                                     f"render_mode") from None
                raise
        else:
            raise ValueError(f"task={task!r} must be a cluster task id or a ClusterTask")
        if isinstance(reward_scale, bool) or not isinstance(reward_scale, (int, float)) or not reward_scale > 0 \
                or not math.isfinite(reward_scale):
            raise ValueError(f"reward_scale={reward_scale!r} must be a positive, finite number")
        if isinstance(cost_weight, bool) or not isinstance(cost_weight, (int, float)) or not 0.0 <= cost_weight <= 1.0:
            raise ValueError(f"cost_weight={cost_weight!r} must be a number in 0..1")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} is not supported; allowed: None, rgb_array")
        if len(self.task.tenants) > MAX_TENANTS:
            raise ValueError(f"the environment supports up to {MAX_TENANTS} tenants; the task has "
                             f"{len(self.task.tenants)}")
        self.reward_scale = float(reward_scale)
        self.cost_weight = float(cost_weight)
        self.render_mode = render_mode
        self.n = self.task.replicas
        self.cluster = Cluster(self.task.cluster)
        self.features = []
        for sim in self.cluster.sims:
            r = sim.replica
            self.features.append(FeatureBuilder(self.task.tenants, self.task.replica_capacity_rps, r.gpu.memory_gb * r.tp,
                                                r.weights_gb, sim.config.block_tokens, self.task.episode_windows))
        self.replica_agents = [replica_agent(i, a) for i in range(self.n) for a in AGENTS]
        self.possible_agents = self.replica_agents + [ROUTER, AUTOSCALER]
        self.agents: list[str] = []
        self._build_spaces()
        self._rng = None
        self._state = np.zeros(self.state_space.shape, dtype=np.float32)  # state() before reset: zeros
        self.history: list[dict] = []
        self.window = 0

    def _build_spaces(self) -> None:
        self._obs_spaces, self._act_spaces = {}, {}
        for i in range(self.n):
            for a in AGENTS:
                name = replica_agent(i, a)
                self._obs_spaces[name] = spaces.Box(0.0, 1.0, (OBS_DIM[a] + N_REPLICA,), np.float32)
                self._act_spaces[name] = spaces.Discrete(AGENT_KNOBS[a].n)
        for a, n in ((ROUTER, len(ROUTER_RULES)), (AUTOSCALER, self.n)):
            self._obs_spaces[a] = spaces.Box(0.0, 1.0, (N_CLUSTER,), np.float32)
            self._act_spaces[a] = spaces.Discrete(n)
        self.state_space = spaces.Box(0.0, 1.0, (N_CLUSTER + STATE_DIM,), np.float32)

    def _agents_text(self) -> str:
        return f"r0/batch_scheduler .. r{self.n - 1}/tenant_router, router, autoscaler"

    # ------------------------------------------------------------------ episode
    def reset(self, seed=None, options=None):
        episode_seed = self._episode_seed(seed)
        self.episode_seed = episode_seed
        self.episode = self.task.episode(episode_seed)  # its traffic and the phase of every second
        self.workload = self.episode.workload
        self.cluster.reset(self.workload, seed=episode_seed)
        self.keeper = ClusterScoreKeeper.for_episode(self.workload, self.task.horizon_s, self.task.episode_windows,
                                                     self.cost_weight)
        self.agents = list(self.possible_agents)
        self.window = 0
        self.last_actions = {a: DEFAULT_ACTIONS[a.split("/")[1]] for a in self.replica_agents}
        self.last_actions[ROUTER] = DEFAULT_RULE
        self.last_actions[AUTOSCALER] = int((self.cluster.state == ACTIVE).sum()) - 1
        self.knobs = [Knobs() for _ in range(self.n)]
        self.history = []
        self._prev_load = 0.0
        obs = self._observe(None)
        self.last_obs = obs  # what the agents saw last (for controllers that act on the env)
        infos = {a: {"episode_seed": episode_seed} for a in self.agents}
        return obs, infos

    def _validate(self, actions) -> dict[str, int]:
        self._check_actions(actions)
        flat = {}
        for a in self.possible_agents:
            act, n = actions[a], self._act_spaces[a].n
            if type(act) in _INT_TYPES and 0 <= act < n:
                flat[a] = int(act)
            elif a in (ROUTER, AUTOSCALER):
                what = ("a routing rule: " + ", ".join(f"{i} {r}" for i, r in enumerate(ROUTER_RULES)) if a == ROUTER
                        else f"target active replicas - 1 (0 for 1 replica .. {self.n - 1} for {self.n})")
                raise ValueError(f"agent {a!r}: action={act!r} must be an integer in 0..{n - 1}: {what}")
            else:
                try:
                    decode_action(a.split("/")[1], act)  # raises, naming the knobs, for a bad type or range
                except ValueError as e:
                    raise ValueError(f"agent {a!r}: {e}") from None
                flat[a] = int(np.asarray(act).item())
        return flat

    def step(self, actions):
        self._check_running()
        flat = self._validate(actions)
        knobs = [joint_knobs({a: flat[replica_agent(i, a)] for a in AGENTS}) for i in range(self.n)]
        return self._advance(knobs, router_routing(flat[ROUTER]), flat[AUTOSCALER] + 1, flat)

    def step_cluster(self, knobs, routing: Routing, target_active: int):
        """Advance one window with any control: knobs (one Knobs or one per replica), any Routing
        (including ``weighted``) and a target. Agents' last-action features keep their last values."""
        self._check_running()
        if isinstance(knobs, Knobs):
            knobs = [knobs] * self.n
        return self._advance(list(knobs), routing, target_active, dict(self.last_actions))

    def _advance(self, knobs, routing, target, flat):
        cw = self.cluster.advance(self.task.window_s, knobs, routing, target)
        self.window += 1
        self.last_actions = flat
        self.knobs = knobs
        self.routing, self.target = routing, target
        r = self.keeper.window(cw)
        obs = self._observe(cw)
        self.last_obs = obs
        team = self.reward_scale * r
        rewards = {a: team for a in self.possible_agents}
        done = self.window >= self.task.episode_windows
        info = {"cluster": cw, "score_so_far": self.keeper.score, "window_reward": r}
        if done:
            info["episode"] = {**self.keeper.components(), **self.service_summary(), "episode_seed": self.episode_seed}
        infos = {a: info for a in self.possible_agents}
        for i in range(self.n):
            rinfo = {**info, "metrics": cw.replicas[i], "replica": i}
            for a in AGENTS:
                infos[replica_agent(i, a)] = rinfo
        self.history.append({"window": self.window, "cluster": cw, "reward": r, "target": target,
                             "rule": routing.rule})
        if done:
            self.agents = []
        return obs, rewards, {a: False for a in self.possible_agents}, {a: done for a in self.possible_agents}, infos

    # ------------------------------------------------------------------ observation
    def _observe(self, cw: ClusterWindow | None) -> dict:
        n, T = self.n, len(self.task.tenants)
        state = self.cluster.state
        frac = [float(np.count_nonzero(state == s)) / n for s in range(len(STATES))]
        x = np.zeros(N_CLUSTER)
        x[_AT["time"]] = self.window / self.task.episode_windows
        offered = 0
        if cw is not None:
            offered = sum(map(sum, cw.routed))
            load = min(offered / (self.task.capacity_rps * self.task.window_s), 2.0) / 2.0
            x[_AT["load"]] = load
            x[_AT["load_trend"]] = 0.5 + 0.5 * math.tanh(4.0 * (load - self._prev_load))
            self._prev_load = load
            x[_AT["cost"]] = cw.billed_usd / cw.fleet_usd
            act = [m for m, s in zip(cw.replicas, cw.states) if s == "active"]
            if act:
                x[_AT["kv"]] = float(np.mean([m.kv_occupancy for m in act]))
                x[_AT["busy"]] = float(np.mean([m.busy_fraction for m in act]))
            per = np.sum(cw.routed, axis=0)
            for t in range(T):
                met = sum(m.tenants[t].slo_met for m in cw.replicas)
                decided = met + sum(m.tenants[t].slo_missed for m in cw.replicas)
                queue = sum(m.tenants[t].queue_depth for m in cw.replicas) / (8.0 * n)
                k = len(CLUSTER_FEATURES) + len(TENANT_FEATURES) * t
                x[k: k + len(TENANT_FEATURES)] = [per[t] / offered if offered else 0.0, queue / (1.0 + queue),
                                             met / decided if decided else 0.0, 1.0 if decided else 0.0]
        else:
            x[_AT["load_trend"]] = 0.5
        x[_AT["active"]], x[_AT["starting"]], x[_AT["draining"]] = frac[ACTIVE], frac[STARTING], frac[DRAINING]
        x[_AT["target"]] = (self.last_actions[AUTOSCALER] + 1) / n
        x[_AT[f"rule.{ROUTER_RULES[self.last_actions[ROUTER]]}"]] = 1.0
        cluster_x = np.clip(x, 0.0, 1.0).astype(np.float32)
        obs = {ROUTER: cluster_x, AUTOSCALER: cluster_x.copy()}
        states = []
        for i in range(n):
            m = cw.replicas[i] if cw is not None else None
            snap = self.cluster.sims[i].pending_prompts() if cw is not None else None
            acts = {a: self.last_actions[replica_agent(i, a)] for a in AGENTS}
            o, s = self.features[i].build(m, snap, self.window, acts, self.knobs[i])
            states.append(s)
            routed = sum(cw.routed[i]) / offered if cw is not None and offered else 0.0
            ctx = np.zeros(N_REPLICA, dtype=np.float32)
            ctx[int(state[i])] = 1.0
            ctx[4:] = (i / max(1, n - 1), routed, frac[ACTIVE])
            for a in AGENTS:
                obs[replica_agent(i, a)] = np.concatenate((o[a], ctx))
        self._state = np.concatenate((cluster_x, np.mean(states, axis=0).astype(np.float32)))
        return obs

    def service_summary(self) -> dict:
        """What the fleet's clients saw so far, beside the score: ``ttft_attainment``, the share of the
        requests arrived in the episode whose first token came within their tenant's TTFT SLO
        (unserved ones count as late), ``ttft_p50_ms``, the median TTFT of those requests (an unserved
        one counts as infinitely late, so the median is infinite when most were never served), and
        ``prefix_hit_rate``, the prompt tokens found in a replica's prefix cache over the prompt
        tokens of the requests that got a first token."""
        ok = n = 0
        hit = admitted = 0.0
        ttfts = []
        for sim in self.cluster.sims:
            r = sim.requests()
            arrived = r.arrival_s < self.task.horizon_s
            slo = np.array([t.ttft_slo_ms for t in sim.workload.tenants])[r.tenant] / 1e3
            ttft = np.nan_to_num(r.ttft_s, nan=np.inf)
            ok += int(np.sum(arrived & (ttft <= slo)))
            n += int(arrived.sum())
            ttfts.append(ttft[arrived])
            first = ~np.isnan(r.first_token_s)
            hit += float(r.cached_prompt_tokens[first].sum())
            admitted += float(r.prompt_tokens[first].sum())
        return {"ttft_attainment": ok / n if n else float("nan"),
                "ttft_p50_ms": float(np.median(np.concatenate(ttfts))) * 1e3 if n else float("nan"),
                "prefix_hit_rate": hit / admitted if admitted else float("nan")}

    # ------------------------------------------------------------------ look-ahead, score, render
    def clone(self) -> "ServingClusterEnv":
        """An independent copy mid-episode with the same future under the same actions."""
        new = self._clone_episode()
        new.cluster = self.cluster.clone()
        new.knobs = list(self.knobs)
        return new

    def render(self):
        if self.render_mode is None:
            return None
        from .render import cluster_timeline_rgb
        return cluster_timeline_rgb(self)

    def close(self):
        pass


__all__ = ["ServingClusterEnv", "ROUTER_RULES", "router_routing", "rule_name", "ROUTER", "AUTOSCALER", "CLUSTER_FEATURES", "TENANT_FEATURES", "REPLICA_FEATURES",
           "N_CLUSTER", "N_REPLICA", "replica_agent"]
