"""The one evaluation loop: a policy, a task and a seed -> one episode record."""

from __future__ import annotations

import math

import numpy as np

from igym_marl import serving_v0
from igym_marl.envs import AGENTS
from igym_marl.sim.profiles import get_tier
from igym_marl.workloads import TaskSpec, get_task

from igym_marl.agents.policies.base import Policy


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


def run_episode(policy: Policy, task: str | TaskSpec, seed: int, agent_name: str | None = None,
                episode_windows: int | None = None, env=None) -> dict:
    task_spec = task if isinstance(task, TaskSpec) else get_task(task)
    if env is None:
        env = serving_v0.parallel_env(task=task_spec, episode_windows=episode_windows)
    obs, infos = env.reset(seed=seed)
    policy.reset(env.task, seed)
    if getattr(policy, "sees_env", False):  # a clairvoyant reference (igym_marl/agents/policies/oracle.py), not a policy
        policy.attach(env)
    info = infos[AGENTS[0]]
    while env.agents:
        obs, _, _, _, infos = env.step(policy.act(obs, infos, env.state()))
        info = infos[AGENTS[0]]
    return episode_record(env, info, policy, agent_name or policy.name)
