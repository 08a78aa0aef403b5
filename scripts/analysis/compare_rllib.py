"""Held-out score against training wall-clock time: RLlib runs beside train_marl.py runs.

    python scripts/analysis/compare_rllib.py --run "RLlib PPO, shared=runs/rllib" --run "MAPPO=runs/mappo" \\
        --hline "heuristic=0.440" --out docs/img/rllib_vs_mappo.png

A train_marl.py folder is read from eval.csv and metrics.csv (wall time = rollouts + updates,
plus the warm start if any); a scripts/train_rllib.py folder from its eval.csv (train_wall_s).
Evaluation time is left out of both.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def curve(path: Path) -> tuple[list[float], list[float], list[int]]:
    rows = list(csv.DictReader(open(path / "eval.csv")))
    if rows and "train_wall_s" in rows[0]:  # scripts/train_rllib.py
        return ([float(r["train_wall_s"]) for r in rows], [float(r["eval_score_mean"]) for r in rows],
                [int(r["env_steps"]) for r in rows])
    metrics = {int(r["step"]): float(r["time_rollout_s"]) + float(r["time_update_s"])
               for r in csv.DictReader(open(path / "metrics.csv"))}
    summary = json.loads((path / "summary.json").read_text())
    warm = float(summary.get("warm_start", {}).get("seconds", 0.0))
    xs, ys, steps = [], [], []
    for r in rows:
        s = int(r["step"])
        xs.append(warm + metrics[max(k for k in metrics if k <= s)])
        ys.append(float(r["eval_score_mean"]))
        steps.append(s)
    return xs, ys, steps


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", required=True, help="LABEL=FOLDER (repeat)")
    ap.add_argument("--hline", action="append", default=[], help="LABEL=SCORE, a reference line (repeat)")
    ap.add_argument("--title", default="bursty_workload: held-out score (5 episodes) against training time")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for spec in args.run:
        label, _, folder = spec.partition("=")
        xs, ys, steps = curve(Path(folder))
        ax.plot(xs, ys, marker="o", ms=3, label=f"{label} ({steps[-1] // 1000}k steps in {xs[-1]:.0f} s)")
        print(f"{label}: " + ", ".join(f"{x:.0f} s / {s} steps: {y:.3f}" for x, y, s in zip(xs, ys, steps)))
    for spec, color in zip(args.hline, ("black", "grey", "red", "purple")):
        label, _, v = spec.partition("=")
        ax.axhline(float(v), ls=":", color=color, label=f"{label} {float(v):.3f}")
    ax.set_xlabel("training wall-clock seconds on one core (evaluation excluded)")
    ax.set_ylabel("held-out score")
    ax.set_title(args.title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
