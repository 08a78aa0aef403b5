"""Cluster training at the env's pace: the whole PPO loop's env-steps per second at N replicas,
against the bare env stepped with fixed actions in one process (the recorded baseline), both
measured in one run so that the ratio holds whatever the machine's speed.

    python benchmarks/bench_cluster_train.py [--task cluster_bursty] [--replicas 16] [--steps 4000] [--workers 2]

Env: ``serving_cluster_v0`` at N replicas, every replica up at vLLM's default knobs behind
least-outstanding routing, stepped window after window (episodes restart). Training:
``train_marl.py --task ... --replicas N`` without warm start, its rate read from the last update's
``steps_per_s`` (rollouts in worker processes, GAE and PPO updates; the final evaluation excluded).
Goal: the training rate at least half the env's.
"""
from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

from igym_marl import serving_cluster_v0
from igym_marl.agents.cluster.baselines import actions_for
from igym_marl.agents.training.train import Args, train
from igym_marl.sim import VLLM_DEFAULT


def env_rate(task: str, replicas: int, steps: int) -> float:
    env = serving_cluster_v0.parallel_env(task, replicas=replicas)
    env.reset(seed=0)
    act = actions_for(env, VLLM_DEFAULT, "least_outstanding", replicas)
    env.step(act)  # warm-up (compilation)
    t0, seed = time.perf_counter(), 1
    for _ in range(steps):
        if not env.agents:
            env.reset(seed=seed)
            seed += 1
        env.step(act)
    return steps / (time.perf_counter() - t0)


def train_rate(task: str, replicas: int, steps: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        args = Args(task=task, replicas=replicas, steps=steps, num_envs=8, rollout=50, workers=workers,
                    warm_start="none", eval_every=10 * steps, eval_episodes=1, episode_windows=30,
                    checkpoint_every=10 * steps, out=str(Path(d) / "run"), progress=False, tensorboard=False)
        train(args)
        rows = list(csv.DictReader(open(Path(d) / "run" / "metrics.csv")))
    return float(rows[-1]["steps_per_s"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="cluster_bursty")
    ap.add_argument("--replicas", type=int, default=16)
    ap.add_argument("--steps", type=int, default=4000, help="training env-steps (env steps: a quarter)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    env = env_rate(args.task, args.replicas, max(100, args.steps // 4))
    trained = train_rate(args.task, args.replicas, args.steps, args.workers)
    print(f"| task | N | env steps/s (one process) | training steps/s ({args.workers} workers) | ratio |")
    print("|---|---|---|---|---|")
    print(f"| {args.task} | {args.replicas} | {env:.1f} | {trained:.1f} | {trained / env:.2f} |")


if __name__ == "__main__":
    main()
