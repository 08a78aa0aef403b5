"""RLlib's PPO (new API stack) on serving_v0 with one module shared by the four agents (padded
observations, masked actions), then one held-out episode with the greedy policy.

    pip install -e '.[ray]'          # in its own environment: Ray pins its own gymnasium (make test-ray)
    python examples/rllib_ppo.py [--task bursty_workload] [--iterations 10]

The configuration is igym_marl.agents.training.rllib.ppo_config; scripts/train_rllib.py is the full
training script (checkpoints, curves, per-agent modules). CI runs this at --iterations 1
--train-batch 64 --episode-windows 8.
"""
from __future__ import annotations

import argparse

from igym_marl.agents.evaluation import run_episode
from igym_marl.agents.training.rllib import RLlibPolicy, ppo_config

EVAL_SEED = 1_000_000  # evaluation seeds (1,000,000 and up) are disjoint from training seeds


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="bursty_workload")
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--train-batch", type=int, default=2000, help="env steps per iteration")
    ap.add_argument("--episode-windows", type=int, default=None, help="shorter episodes (default: the task's)")
    ap.add_argument("--seed", type=int, default=0, help="training seed (0..999,999)")
    args = ap.parse_args(argv)
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        algo = ppo_config(args.task, episode_windows=args.episode_windows, seed=args.seed,
                          train_batch=args.train_batch, minibatch=min(250, args.train_batch)).build_algo()
        for _ in range(args.iterations):
            algo.train()
        policy = RLlibPolicy.from_algorithm(algo)
        score = run_episode(policy, args.task, EVAL_SEED, episode_windows=args.episode_windows)["score"]
        print(f"{args.task}, seed {EVAL_SEED}: RLlib PPO (shared module) after {args.iterations} iterations "
              f"of {args.train_batch} steps {score:.4f}")
        algo.stop()
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
