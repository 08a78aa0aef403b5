"""Train serving_v0 with RLlib's PPO (new API stack), locally or on a Ray cluster.

    python scripts/train_rllib.py --task bursty_workload --minutes 10 --out runs/rllib-bursty
    python scripts/train_rllib.py --sharing per-agent --iterations 50 --num-env-runners 2
    python scripts/train_rllib.py --address ray://head:10001 --num-env-runners 32 --minutes 30
    python scripts/train_rllib.py --task trace --trace-path data/traces/azure_conv_2023_1h.csv

Needs the ray extra (``pip install -e '.[ray]'``). ``--sharing shared`` (default) trains one
module for the four agents (padded observations with the agent's one-hot, masked actions;
igym_marl/agents/training/rllib.py); ``per-agent`` one module per agent. Local mode (``ray.init()`` on this machine)
is the default; ``--address`` joins an existing cluster.

The run folder holds ``args.json``, ``eval.csv`` (iteration, env steps, training wall seconds
without evaluation, held-out score), and ``checkpoint/`` (the RLlib Algorithm checkpoint) after
every evaluation. Evaluate it with the same statistics as every other policy:

    python evaluate.py --agent rllib --checkpoint runs/rllib-bursty/checkpoint --task bursty_workload
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from igym_marl.agents.evaluation import run_episode
from igym_marl.workloads import EVAL_SEEDS, TASK_IDS


def evaluate(algo, task: str, episodes: int, episode_windows: int | None, trace_path: str | None) -> list[float]:
    from igym_marl.agents.training.rllib import RLlibPolicy
    from igym_marl.workloads import get_task
    policy = RLlibPolicy.from_algorithm(algo)
    spec = get_task(task, **({"path": trace_path} if task == "trace" else {}))
    return [run_episode(policy, spec, EVAL_SEEDS.start + k, episode_windows=episode_windows)["score"]
            for k in range(episodes)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="bursty_workload", choices=TASK_IDS)
    ap.add_argument("--trace-path", help="with --task trace: the trace file (BurstGPT or Azure format)")
    ap.add_argument("--sharing", default="shared", choices=("shared", "per-agent"))
    budget = ap.add_mutually_exclusive_group()
    budget.add_argument("--iterations", type=int, help="training iterations")
    budget.add_argument("--minutes", type=float, help="training wall-clock minutes (evaluation not counted)")
    ap.add_argument("--episode-windows", type=int, default=None, help="shorter episodes (tests)")
    ap.add_argument("--num-env-runners", type=int, default=0, help="remote env runners (0: sample in the driver)")
    ap.add_argument("--address", default=None, help="join this Ray cluster (default: a local Ray instance)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--train-batch", type=int, default=2000, help="env steps per agent module per iteration")
    ap.add_argument("--minibatch", type=int, default=250)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--eval-every", type=int, default=5, help="iterations between evaluations (and checkpoints)")
    ap.add_argument("--eval-episodes", type=int, default=5, help="held-out episodes per evaluation")
    ap.add_argument("--out", type=Path, default=None, help="run folder (default runs/rllib-<task>-<sharing>-s<seed>)")
    ap.add_argument("--force", action="store_true", help="replace an existing run folder")
    args = ap.parse_args(argv)
    if args.iterations is None and args.minutes is None:
        args.iterations = 20
    for name in ("iterations", "num_env_runners", "train_batch", "minibatch", "epochs", "eval_every", "eval_episodes"):
        v = getattr(args, name)
        if v is not None and v < (0 if name == "num_env_runners" else 1):
            ap.error(f"--{name.replace('_', '-')}={v} must be >= {0 if name == 'num_env_runners' else 1}")
    if args.task == "trace" and not args.trace_path:
        ap.error("--task trace needs --trace-path")
    out = args.out or ROOT / "runs" / f"rllib-{args.task}-{args.sharing}-s{args.seed}"
    if out.exists() and any(out.iterdir()):
        if not args.force:
            ap.error(f"{out} already holds a run: --force to replace it, or another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                                              indent=1))
    try:
        import ray

        from igym_marl.agents.training.rllib import ppo_config
    except ImportError as e:
        ap.error(f"{e}: pip install -e '.[ray]'")
    ray.init(address=args.address, include_dashboard=False, log_to_driver=False,
             **({} if args.address else {"num_cpus": max(2, args.num_env_runners + 1)}))
    try:
        algo = ppo_config(args.task, args.sharing, args.episode_windows, args.num_env_runners, args.seed, args.lr,
                          args.train_batch, args.minibatch, args.epochs, trace_path=args.trace_path).build_algo()
        trained_s, it = 0.0, 0
        with open(out / "eval.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["iteration", "env_steps", "train_wall_s", "eval_score_mean", "eval_score_std", "episodes"])
            while True:
                t0 = time.perf_counter()
                result = algo.train()
                trained_s += time.perf_counter() - t0
                it += 1
                steps = int(result.get("num_env_steps_sampled_lifetime", 0))
                last = (args.iterations is not None and it >= args.iterations) or \
                       (args.minutes is not None and trained_s >= 60 * args.minutes)
                if it % args.eval_every == 0 or last:
                    scores = evaluate(algo, args.task, args.eval_episodes, args.episode_windows, args.trace_path)
                    w.writerow([it, steps, round(trained_s, 2), float(np.mean(scores)), float(np.std(scores)),
                                len(scores)])
                    f.flush()
                    ck = out / "checkpoint"
                    if ck.exists():
                        shutil.rmtree(ck)
                    algo.save(str(ck))
                    print(f"iteration {it}: {steps} env steps, {trained_s:.0f} s, held-out score "
                          f"{np.mean(scores):.3f}", flush=True)
                if last:
                    break
        (out / "summary.json").write_text(json.dumps({"iterations": it, "env_steps": steps,
                                                      "train_wall_s": round(trained_s, 1),
                                                      "steps_per_s": round(steps / max(trained_s, 1e-9), 1)}))
        algo.stop()
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
