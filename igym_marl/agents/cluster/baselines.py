"""Cluster-mode baselines: a constant, the HPA-style threshold autoscaler, and a clairvoyant oracle.

Every policy here is a :class:`ClusterPolicy`: the one Policy interface (``reset(task, seed)``,
``act(observations, infos, state)``), reading the env it is attached to (``sees_env``) and returning
an actions dict for all 4 N + 2 agents of ``serving_cluster_v0`` (so ``env.step`` validates it
like any learner's). ``igym_marl.agents.evaluation.run_episode`` drives them as it drives every
policy.

* ``ClusterConstant(knobs, rule, target)``: the same knobs on every replica, one routing rule and
  a fixed number of replicas, whatever happens.
* ``HPAPolicy``: a fixed routing rule (least outstanding unless told; the tuned baseline uses the
  best constant's rule) and the rule a Kubernetes Horizontal Pod Autoscaler
  applies to a per-replica metric: desired = ceil(active x metric / target), with the HPA's 10 %
  tolerance, scale-up at once and scale-down only to the highest desired count of the last
  ``stabilization`` windows (the HPA's downscale stabilization window). The metric is each
  active replica's outstanding requests (waiting + running), the queue length a serving
  deployment exports to its autoscaler.
* ``ClusterOracle``: a reference that sees the future traffic. Every ``every`` windows it clones
  the env, plays each candidate (target, rule) for ``horizon`` windows on the real future
  traffic with the replicas' knobs fixed, and applies the best; the candidates are the incumbent,
  a target one up or down, the other rules, and the targets a planner that reads the future
  arrivals would set (enough replicas for the busiest window until a cold start ordered now has
  served three windows, at 50, 70 and 90 % utilisation). Its horizon (6 windows, 60 s) spans a cold
  start (28 s), so it sees what adding a replica buys; a candidate's worth also counts ``tail``
  (6) more windows, the better of holding it and turning every replica up, so that a backlog
  left behind by a cheap candidate is paid for.

:func:`search_cluster_constant` finds the best constant (knobs x rule x N) by successive halving on
training seeds; the knob candidates are vLLM's default and the single-replica tasks' global best
constants (igym_marl/agents/data/best_constant.json), the rule and N are searched whole.
"""

from __future__ import annotations

from igym_marl.paths import TUNED_DIR, shipped_json

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from igym_marl.envs import knobs_to_actions
from igym_marl.envs.cluster import AUTOSCALER, ROUTER, ROUTER_RULES, replica_agent
from igym_marl.sim import Knobs
from igym_marl.sim.cluster import ACTIVE
from igym_marl.sim.types import VLLM_DEFAULT
from igym_marl.workloads.tasks import TRAIN_SEEDS

from igym_marl.agents.analysis.tuning import best_constant_or_default
from igym_marl.agents.policies.base import Policy


def actions_for(env, knobs, rule: str, target: int) -> dict:
    """The actions dict that applies `knobs` (one Knobs or one per replica), `rule` and `target`."""
    if isinstance(knobs, Knobs):
        knobs = [knobs] * env.n
    out = {}
    for i, k in enumerate(knobs):
        for a, v in knobs_to_actions(k).items():
            out[replica_agent(i, a)] = v
    out[ROUTER] = ROUTER_RULES.index(rule)
    out[AUTOSCALER] = int(target) - 1
    return out


class ClusterPolicy(Policy):
    """A cluster controller in the one Policy interface: ``attach(env)`` (the episode loop calls it
    after ``env.reset``) starts it on that env (:meth:`start`), and ``act`` returns
    :meth:`decide` of it."""

    sees_env = True

    def attach(self, env) -> None:
        self.env = env
        self.start(env)

    def start(self, env) -> None:
        """Check the settings against `env` and reset what the controller remembers."""

    def act(self, observations, infos, state=None) -> dict:
        return self.decide(self.env)

    def decide(self, env) -> dict:
        raise NotImplementedError


class RandomCluster(ClusterPolicy):
    """Every agent's action uniformly at random, from the episode's seed."""

    name = "random"

    def start(self, env):
        self.rng = np.random.default_rng(self.seed)

    def decide(self, env):
        return {a: int(self.rng.integers(env.action_space(a).n)) for a in env.possible_agents}


@dataclass
class ClusterConstant(ClusterPolicy):
    knobs: Knobs = VLLM_DEFAULT
    rule: str = "least_outstanding"
    target: int | None = None  # None: every replica
    name: str = "constant"

    def start(self, env):
        if self.rule not in ROUTER_RULES:
            raise ValueError(f"rule={self.rule!r} is unknown; allowed: {', '.join(ROUTER_RULES)}")
        if self.target is not None and not 1 <= self.target <= env.n:
            raise ValueError(f"target={self.target!r} must be in 1..{env.n}")

    def decide(self, env) -> dict:
        return actions_for(env, self.knobs, self.rule, self.target or env.n)

    def describe(self) -> str:
        k = self.knobs
        return (f"N={self.target}, {self.rule}, batch_cap {k.batch_cap}, "
                f"{'chunked' if k.prefill_decode_split else 'prefill-first'}, KV {k.kv_budget_fraction:g}, "
                f"{k.quantization_tier}, spec {k.speculation_depth}, priority {'on' if k.priority_routing else 'off'}")


@dataclass
class HPAPolicy(ClusterPolicy):
    """See the module docstring. `target_outstanding`: the per-replica metric's target."""

    knobs: Knobs = VLLM_DEFAULT
    target_outstanding: float = 48.0
    tolerance: float = 0.1
    stabilization: int = 30  # windows (300 s at 10-s windows: the HPA's default downscale window)
    rule: str = "least_outstanding"  # the router beside the autoscaler
    name: str = "hpa"

    def start(self, env):
        if self.rule not in ROUTER_RULES:
            raise ValueError(f"rule={self.rule!r} is unknown; allowed: {', '.join(ROUTER_RULES)}")
        self.recent: list[int] = []
        self.target = int((env.cluster.state == ACTIVE).sum())

    def decide(self, env) -> dict:
        c = env.cluster
        active = np.flatnonzero(c.state == ACTIVE)
        if env.window > 0 and active.size:
            metric = float(np.mean([c.outstanding(int(i))[0] for i in active]))
            ratio = metric / self.target_outstanding
            desired = self.target if abs(ratio - 1.0) <= self.tolerance else math.ceil(active.size * ratio)
            desired = min(max(desired, 1), env.n)
            self.recent = (self.recent + [desired])[-self.stabilization:]
            self.target = desired if desired >= self.target else max(self.recent)
        return actions_for(env, self.knobs, self.rule, self.target)


@dataclass
class ClusterOracle(ClusterPolicy):
    """See the module docstring."""

    knobs: Knobs = VLLM_DEFAULT
    rule: str = "least_outstanding"
    target: int | None = None
    horizon: int = 6
    tail: int = 6
    every: int = 2
    utilizations: tuple = (0.5, 0.7, 0.9)
    name: str = "oracle"

    def start(self, env):
        self.cur_target = self.target or env.n
        self.cur_rule = self.rule
        self.evaluated = 0

    def _value(self, env, target: int, rule: str) -> float:
        sim = env.clone()
        act = actions_for(sim, self.knobs, rule, target)
        start = sim.score
        for _ in range(min(self.horizon, sim.task.episode_windows - sim.window)):
            sim.step(act)
        self.evaluated += 1
        tail = min(self.tail, sim.task.episode_windows - sim.window)
        if not tail:
            return sim.score - start
        best = -np.inf
        for cont in (act, actions_for(sim, self.knobs, rule, sim.n)):  # hold on, or everything up
            end = sim.clone()
            for _ in range(tail):
                end.step(cont)
            best = max(best, end.score)
        return best - start

    def planned(self, env, utilization: float) -> int:
        """The replicas the coming traffic needs at `utilization`: the busiest window's arrival
        rate from now until a cold start ordered now has served for three windows."""
        w, W = env.workload, env.task.window_s
        t0 = env.window * W
        ahead = math.ceil(env.cluster.cold_start_s(0, self.knobs.quantization_tier) / W) + 3
        counts = np.histogram(w.arrival_s, bins=ahead, range=(t0, t0 + ahead * W))[0]
        return min(env.n, max(1, math.ceil(counts.max() / W / (utilization * env.task.replica_capacity_rps))))

    def decide(self, env) -> dict:
        if env.window % self.every == 0:
            t0 = self.cur_target
            cands = {(t0, self.cur_rule)}
            cands |= {(t, self.cur_rule) for t in (t0 - 1, t0 + 1) if 1 <= t <= env.n}
            cands |= {(self.planned(env, u), self.cur_rule) for u in self.utilizations}
            cands |= {(t0, r) for r in ROUTER_RULES}
            best = max(sorted(cands), key=lambda c: (self._value(env, *c), c == (t0, self.cur_rule)))
            self.cur_target, self.cur_rule = best
        return actions_for(env, self.knobs, self.cur_rule, self.cur_target)

    def stats(self) -> dict:
        return {"candidates_evaluated": self.evaluated}


def run_cluster_episode(policy, task, seed: int, **env_kwargs) -> dict:
    """``run_episode`` on a cluster task (env_kwargs: replicas, episode_windows, ...)."""
    from igym_marl.agents.evaluation import run_episode
    return run_episode(policy, task, seed, env_kwargs=env_kwargs)


CLUSTER_CACHE = TUNED_DIR / "cluster_best_constant.json"


def load_cluster_cache(for_update: bool = False) -> dict:
    """{task: best constant, its ranking and the tuned HPA threshold} (scripts/cluster_baselines.py --search).
    It ships with the package; a missing file is an error naming it, unless a search is about to
    write it (``for_update``)."""
    return shipped_json(CLUSTER_CACHE, "igym-marl cluster-baselines --search", for_update)


def cluster_baseline(task: str, kind: str):
    """The cached best constant (kind "best-constant") or tuned HPA (kind "hpa") of a cluster task."""
    entry = load_cluster_cache().get(task)
    if entry is None:
        raise ValueError(f"no cached cluster baselines for task {task!r} in {CLUSTER_CACHE}: "
                         f"run scripts/cluster_baselines.py --search --task {task}")
    knobs = Knobs(**entry["knobs"])
    if kind == "best-constant":
        return ClusterConstant(knobs, entry["rule"], entry["target"], name="best-constant")
    if kind == "hpa":
        return HPAPolicy(knobs, entry["hpa_target_outstanding"], rule=entry.get("hpa_rule", "least_outstanding"))
    raise ValueError(f"kind={kind!r} is unknown; allowed: best-constant, hpa")


def knob_candidates() -> list[Knobs]:
    out = [VLLM_DEFAULT]
    from igym_marl.workloads import TASKS
    for tid in TASKS:
        k, searched = best_constant_or_default(tid)
        if searched and k not in out:
            out.append(k)
    return out


def search_cluster_constant(task, seeds_first: int = 2, seeds_final: int = 6, keep: int = 6, log=print,
                            **env_kwargs) -> tuple[ClusterConstant, list[tuple[float, ClusterConstant]]]:
    """Successive halving over knob candidates x rules x N: every configuration on
    `seeds_first` training seeds, the best `keep` and the best of every fleet size N on
    `seeds_final` -> (best, ranked final list). Fleet size moves the score most, and two seeds of
    a task whose episodes differ as much as cluster_conversation's can put `keep` lucky
    configurations of one N ahead of every other N: each N reaches the final round."""
    from igym_marl import serving_cluster_v0
    n = serving_cluster_v0.parallel_env(task, **env_kwargs).n
    grid = [ClusterConstant(k, r, t) for k in knob_candidates() for r in ROUTER_RULES for t in range(1, n + 1)]
    seeds = list(TRAIN_SEEDS[:seeds_final])

    def mean_score(c, ss):
        return float(np.mean([run_cluster_episode(c, task, s, **env_kwargs)["score"] for s in ss]))

    first = sorted(((mean_score(c, seeds[:seeds_first]), i) for i, c in enumerate(grid)), reverse=True)
    log(f"{len(grid)} configurations on {seeds_first} seeds; best {first[0][0]:.3f} ({grid[first[0][1]].describe()})")
    finalists = [i for _, i in first[:keep]]
    for t in range(1, n + 1):  # the best of each fleet size
        i = next(i for _, i in first if grid[i].target == t)
        if i not in finalists:
            finalists.append(i)
    final = sorted(((mean_score(grid[i], seeds), i) for i in finalists), reverse=True)
    ranked = [(s, grid[i]) for s, i in final]
    log(f"best on {seeds_final} seeds: {ranked[0][0]:.3f} ({ranked[0][1].describe()})")
    return ranked[0][1], ranked


__all__ = ["ClusterPolicy", "RandomCluster", "ClusterConstant", "HPAPolicy", "ClusterOracle", "run_cluster_episode", "search_cluster_constant",
           "actions_for", "knob_candidates", "cluster_baseline", "load_cluster_cache", "CLUSTER_CACHE"]
