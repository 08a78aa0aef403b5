"""Train every learned policy the README reports, evaluate them, and draw the learning curves.

    python scripts/train_all.py [--algos mappo,ippo,ppo-single] [--seeds 0,1,2] [--tasks all] [--jobs 2]
                                [--episodes 10] [--ship]

Budgets are the original benchmark's: 50k steps on static_workload, 80k on bursty_workload, 120k
on adversarial_multitenant. Each (algo, task, seed) run goes to runs/<task>-<algo>-s<seed>/; then
every final policy is evaluated greedily on the same held-out seeds (1,000,000 + i), and the
results are pooled per algorithm and task (mean, IQM, 95 % bootstrap CI over all evaluation
episodes of all training seeds). Writes runs/results.json, runs/results.md and
docs/img/learning_curves.png; with --ship, copies the seed-0 MAPPO checkpoints to
agents/checkpoints/mappo/<task>.pt (and PPO to agents/checkpoints/ppo/).
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = {"static_workload": 50_000, "bursty_workload": 80_000, "adversarial_multitenant": 120_000}


def train_one(algo: str, task: str, seed: int) -> Path:
    out = ROOT / "runs" / f"{task}-{algo}-s{seed}"
    if (out / "summary.json").exists():
        return out
    cmd = [sys.executable, "train_marl.py", "--algo", algo, "--task", task, "--steps", str(BUDGETS[task]),
           "--seed", str(seed), "--out", str(out), "--no-progress", "--eval-every", str(BUDGETS[task] // 6)]
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--algos", default="mappo,ippo,ppo-single")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--jobs", type=int, default=2, help="training runs at once")
    ap.add_argument("--episodes", type=int, default=10, help="held-out evaluation episodes per trained policy")
    ap.add_argument("--ship", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import evaluate as ev
    from agents import make_policy
    from agents.evaluation import run_episode

    algos = args.algos.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    tasks = list(BUDGETS) if args.tasks == "all" else args.tasks.split(",")
    jobs = [(a, t, s) for a in algos for t in tasks for s in seeds]
    with ThreadPoolExecutor(args.jobs) as ex:
        runs = list(ex.map(lambda j: train_one(*j), jobs))

    records = []
    for (algo, task, seed), run in zip(jobs, runs):
        name = {"ppo-single": "ppo"}.get(algo, "mappo")
        policy = make_policy(name, checkpoint=run / "checkpoint.pt")
        for i in range(args.episodes):
            rec = run_episode(policy, task, ev.EVAL_START + i, agent_name=algo)
            rec["training_seed"] = seed
            records.append(rec)
    (ROOT / "runs").mkdir(exist_ok=True)
    (ROOT / "runs" / "results.json").write_text(json.dumps(records, indent=1))
    rows = ev.summarize(records)
    table = ev.markdown(rows)
    (ROOT / "runs" / "results.md").write_text(table + "\n")
    print(table)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for algo in algos:
            curves = []
            for seed in seeds:
                path = ROOT / "runs" / f"{task}-{algo}-s{seed}" / "eval.csv"
                rows_ = list(csv.DictReader(open(path)))
                curves.append(([int(r["step"]) for r in rows_], [float(r["eval_score_mean"]) for r in rows_]))
            n = min(len(c[0]) for c in curves)
            x = curves[0][0][:n]
            y = np.array([c[1][:n] for c in curves])
            ax.plot(x, y.mean(0), label=algo)
            ax.fill_between(x, y.min(0), y.max(0), alpha=0.2)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("held-out score (5 episodes)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
    fig.savefig(ROOT / "docs" / "img" / "learning_curves.png", dpi=100)

    if args.ship:
        for task in tasks:
            for algo, folder in (("mappo", "mappo"), ("ppo-single", "ppo")):
                src = ROOT / "runs" / f"{task}-{algo}-s{seeds[0]}" / "checkpoint.pt"
                if src.exists():
                    dst = ROOT / "agents" / "checkpoints" / folder / f"{task}.pt"
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(src, dst)
                    print(f"shipped {dst.relative_to(ROOT)} ({dst.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
