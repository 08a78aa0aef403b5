"""Run one episode with a constant configuration and save its timeline (docs/img/).

    python scripts/plot_timeline.py [--task adversarial_multitenant] [--seed 1000000] [--out PATH]
"""
from __future__ import annotations

import argparse

from igym_marl import serving_v0
from igym_marl.envs import DEFAULT_ACTIONS, save_timeline


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="adversarial_multitenant")
    ap.add_argument("--seed", type=int, default=1_000_000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    env = serving_v0.parallel_env(task=args.task)
    env.reset(seed=args.seed)
    while env.agents:
        env.step(dict(DEFAULT_ACTIONS))
    out = args.out or f"docs/img/timeline_{args.task}.png"
    save_timeline(env, out)
    print(f"{out}: score {env.score:.3f}")


if __name__ == "__main__":
    main()
