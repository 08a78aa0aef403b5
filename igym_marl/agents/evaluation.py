"""The one evaluation loop: a policy, a task and a seed -> one episode record."""

from __future__ import annotations

import math

import numpy as np

from igym_marl import serving_v0
from igym_marl.sim.profiles import get_tier
from igym_marl.workloads import TaskSpec, get_task

from igym_marl.agents.policies.base import KnobPolicy, Policy


def episode_record(env, info: dict, policy: Policy, agent_name: str) -> dict:
    """Score and main metrics of a finished episode (JSON-friendly: NaN becomes None)."""
    ep = info["episode"]
    em = ep["metrics"]
    hist = env.history
    rec = {
        "agent": agent_name, "task": env.task.id, "seed": int(env.episode_seed), "score": float(ep["score"]),
        "goodput": float(ep["goodput"]), "quality": float(ep["quality"]), "memory_factor": float(ep["memory"]),
        "slo_attainment": em.slo_attainment, "throughput_tps": em.throughput_tps, "preemptions": em.preemptions,
        "rejected": em.rejected, "offered": em.offered, "finished": em.finished,
        "gpu_memory_gb_mean": float(np.mean([h["metrics"].gpu_memory_used_gb for h in hist])),
        "quality_factor_mean": float(np.mean([get_tier(h["knobs"].quantization_tier).quality for h in hist])),
    }
    for t in em.tenants:
        rec[f"ttft_p99_ms.{t.name}"] = t.latency.ttft_p99_ms
        rec[f"slo_attainment.{t.name}"] = t.slo_attainment
    rec.update({f"policy.{k}": v for k, v in policy.stats().items()})
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()}


def cluster_episode_record(env, info: dict, policy: Policy, agent_name: str) -> dict:
    """A finished cluster episode: its score components and service summary, the autoscaler's
    targets window by window, and the policy's counters."""
    rec = {"agent": agent_name, "task": env.task.id, "seed": int(env.episode_seed), "replicas": env.n,
           **{k: v for k, v in info["episode"].items() if k != "episode_seed"},
           "targets": [int(h["target"]) for h in env.history]}
    rec.update({f"policy.{k}": v for k, v in policy.stats().items()})
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()}


def make_env(task, episode_windows: int | None = None, **env_kwargs):
    """The env of a task (an id, a TaskSpec or a ClusterTask): serving_v0 for a single replica,
    serving_cluster_v0 for a cluster task (env_kwargs: replicas, ...)."""
    from igym_marl import serving_cluster_v0
    from igym_marl.workloads.cluster_tasks import CLUSTER_TASK_IDS, ClusterTask
    if isinstance(task, ClusterTask) or task in CLUSTER_TASK_IDS:
        if episode_windows is not None:
            env_kwargs["episode_windows"] = episode_windows
        return serving_cluster_v0.parallel_env(task, **env_kwargs)
    if env_kwargs:
        raise ValueError(f"option(s) {sorted(env_kwargs)} apply to cluster tasks")
    return serving_v0.parallel_env(task=task if isinstance(task, TaskSpec) else get_task(task),
                                   episode_windows=episode_windows)


def run_episode(policy: Policy, task, seed: int, agent_name: str | None = None,
                episode_windows: int | None = None, env=None, env_kwargs: dict | None = None) -> dict:
    """The one episode loop, for every policy and every task: a policy, a task and a seed -> one
    episode record. A policy that ``sees_env`` (the oracles, the cluster controllers) is attached
    to the env after its reset."""
    if env is None:
        kw = dict(env_kwargs or {})
        if episode_windows is not None:
            kw["episode_windows"] = episode_windows
        env = make_env(task, **kw)
    obs, infos = env.reset(seed=seed)
    policy.reset(env.task, seed)
    if getattr(policy, "sees_env", False):
        policy.attach(env)
    first = env.possible_agents[0]
    info = infos[first]
    knob_level = isinstance(policy, KnobPolicy)  # it decides Knobs: handed to the env as they are
    while env.agents:
        if knob_level:
            obs, _, _, _, infos = env.step_knobs(policy.act_knobs(obs, infos, env.state()))
        else:
            obs, _, _, _, infos = env.step(policy.act(obs, infos, env.state()))
        info = infos[first]
    from igym_marl.envs.cluster import ServingClusterEnv
    if isinstance(env, ServingClusterEnv):
        return cluster_episode_record(env, info, policy, agent_name or policy.name)
    return episode_record(env, info, policy, agent_name or policy.name)
