"""Run one episode with a policy and save its timeline (docs/img/).

    python scripts/analysis/plot_timeline.py [--agent heuristic] [--task adversarial_multitenant] [--seed 1000000] [--out PATH]
"""
from __future__ import annotations

import argparse
from pathlib import Path


from igym_marl.agents import make_policy
from igym_marl.agents.evaluation import run_episode
from igym_marl import serving_v0
from igym_marl.envs import save_timeline


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", default="heuristic", help="a registry policy name (default heuristic)")
    ap.add_argument("--task", default="adversarial_multitenant")
    ap.add_argument("--seed", type=int, default=1_000_000)
    ap.add_argument("--out", default=None, help="PNG path (default docs/img/timeline_<task>.png)")
    args = ap.parse_args(argv)
    env = serving_v0.parallel_env(task=args.task)
    run_episode(make_policy(args.agent), args.task, args.seed, env=env)
    out = args.out or f"docs/img/timeline_{args.task}.png"
    save_timeline(env, out)
    print(f"{out}: {args.agent}, score {env.score:.3f}")


if __name__ == "__main__":
    main()
