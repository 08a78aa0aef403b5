"""Draw a cluster episode's timeline (docs/cluster.md's picture).

    python scripts/analysis/plot_cluster_day.py [--task cluster_diurnal] [--agent hpa] [--seed 1000000] [--out docs/img/cluster_day.png]

Plays a cluster baseline (hpa, best-constant) or a cluster MAPPO checkpoint (--checkpoint) on one
episode and saves the timeline: offered load against the fleet's capacity, replicas by state and
the target, the worst replica's p99 TTFT over each tenant's SLO, GPU cost and the running score.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

from igym_marl.agents.cluster.baselines import cluster_baseline
from igym_marl import serving_cluster_v0
from igym_marl.agents.evaluation import run_episode
from igym_marl.envs.render import cluster_timeline_figure
from igym_marl.workloads.cluster_tasks import CLUSTER_TASK_IDS


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="cluster_diurnal")
    p.add_argument("--agent", default="hpa", help="hpa or best-constant (ignored with --checkpoint)")
    p.add_argument("--checkpoint", type=Path, default=None, help="a cluster MAPPO checkpoint (scripts/train_cluster.py)")
    p.add_argument("--seed", type=int, default=1_000_000)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "cluster_day.png")
    args = p.parse_args(argv)
    if args.task not in CLUSTER_TASK_IDS:
        p.error(f"--task {args.task!r}: allowed {', '.join(CLUSTER_TASK_IDS)}")
    if args.checkpoint is not None:
        from igym_marl.agents.cluster.learner import ClusterLearned
        policy = ClusterLearned(args.checkpoint)
        kw = {"replicas": policy.model.replicas}
    else:
        if args.agent not in ("hpa", "best-constant"):
            p.error(f"--agent {args.agent!r}: allowed hpa, best-constant")
        policy, kw = cluster_baseline(args.task, args.agent), {}
    env = serving_cluster_v0.parallel_env(args.task, **kw)
    run_episode(policy, args.task, args.seed, env=env)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cluster_timeline_figure(env).savefig(args.out)
    print(f"score {env.score:.3f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
