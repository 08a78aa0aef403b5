"""Training throughput: env-steps per second for rollouts alone and for the whole PPO loop, with the
env copies stepped in the training process (the recorded baseline) and in worker processes,
measured in one run so that the ratio holds whatever the machine's speed.

    python benchmarks/bench_train.py [--task adversarial_multitenant] [--steps 16000] [--workers 2]

Rollouts alone: ``VecEnv.rollout`` of 8 copies x 100 steps with a fresh actor (sampling included).
Whole loop: ``train_marl.train`` without warm start or evaluation (rollouts, GAE, PPO updates).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


from igym_marl.agents.training.algos import make_learner
from igym_marl.agents.training.vecenv import VecEnv
from igym_marl.agents.training.train import Args, train


def rollout_rate(task: str, workers: int, steps: int) -> float:
    learner = make_learner("mappo", 64)
    envs = VecEnv({"task": task}, 8, 0, {"algo": "mappo", "hidden": 64}, seed=0, workers=workers)
    envs.reset()
    envs.load(learner.policy_module().state_dict())
    envs.rollout(10)  # warm-up
    t0 = time.perf_counter()
    n = 0
    while n < steps:
        envs.rollout(100)
        n += 800
    rate = n / (time.perf_counter() - t0)
    envs.close()
    return rate


def loop_rate(task: str, workers: int, steps: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        s = train(Args(task=task, steps=steps, workers=workers, warm_start="none", eval_every=0, eval_episodes=1,
                       progress=False, tensorboard=False, out=str(Path(d) / "run")))
    return s["steps"] / (s["time_rollout_s"] + s["time_update_s"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="adversarial_multitenant")
    ap.add_argument("--steps", type=int, default=16000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    print(f"| measure | in-process steps/s | {args.workers} workers steps/s | ratio |\n|---|---|---|---|")
    for name, fn in (("rollouts alone", rollout_rate), ("whole loop (rollouts + updates)", loop_rate)):
        base = fn(args.task, 0, args.steps)
        par = fn(args.task, args.workers, args.steps)
        print(f"| {name} | {base:,.0f} | {par:,.0f} | {par / base:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
