"""The environment's own overhead on top of the simulator, per step.

    python benchmarks/bench_env.py [--episodes 5]

For each task, the same episodes (same seeds, same actions: vLLM's default knobs, and a fixed
random action sequence that keeps the quantization tier) are run twice in one process: through
``ServingParallelEnv.step`` and through ``Simulator.advance`` alone. The baseline is the bare
simulator; the overhead is (env - sim) / env, the share of a step spent in the adapter
(observations, state, reward, infos). Each figure is the best of three interleaved runs.
Goal: <= 20 %.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from igym_marl import serving_v0
from igym_marl.envs import AGENTS, DEFAULT_ACTIONS, AGENT_KNOBS, joint_knobs
from igym_marl.sim import Simulator


def action_plan(task, n, kind, seed=0):
    if kind == "default":
        return [dict(DEFAULT_ACTIONS)] * n
    rng = np.random.default_rng(seed)
    plan = []
    for _ in range(n):
        a = {ag: int(rng.integers(AGENT_KNOBS[ag].n)) for ag in AGENTS}
        a["kv_manager"] = 3 * int(rng.integers(10))  # FP16 throughout: no reload pauses
        plan.append(a)
    return plan


def bench(task_id, kind, episodes, repeats=3):
    """Best of `repeats` interleaved runs of each path (ms per step)."""
    env = serving_v0.parallel_env(task=task_id)
    best_env = best_sim = float("inf")
    for _ in range(repeats):
        e, s = _once(env, kind, episodes)
        best_env, best_sim = min(best_env, e), min(best_sim, s)
    return best_env, best_sim


def _once(env, kind, episodes):
    n = env.task.episode_windows
    t_env = t_sim = 0.0
    for ep in range(episodes):
        plan = action_plan(env.task, n, kind, ep)
        env.reset(seed=1_000_000 + ep)
        t0 = time.perf_counter()
        for a in plan:
            env.step(a)
        t_env += time.perf_counter() - t0
        sim = Simulator(env.task.config)
        sim.reset(env.task.workload(1_000_000 + ep), seed=1_000_000 + ep)
        knobs = [joint_knobs(a) for a in plan]
        t0 = time.perf_counter()
        for k in knobs:
            sim.advance(env.task.window_s, k)
        t_sim += time.perf_counter() - t0
    steps = episodes * n
    return 1e3 * t_env / steps, 1e3 * t_sim / steps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=5)
    args = ap.parse_args(argv)
    bench("static_workload", "default", 1)  # warm up (JIT caches)
    print("| task | actions | env ms/step | simulator ms/step | env overhead |")
    print("|---|---|---|---|---|")
    for tid in ("static_workload", "bursty_workload", "adversarial_multitenant"):
        for kind in ("default", "random"):
            e, s = bench(tid, kind, args.episodes)
            print(f"| {tid} | {kind} | {e:.3f} | {s:.3f} | {100 * (e - s) / e:.0f} % |")


if __name__ == "__main__":
    main()
