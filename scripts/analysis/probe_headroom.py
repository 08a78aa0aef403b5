"""Where the oracle's headroom above the tuned heuristic comes from (igym_marl/agents/analysis/headroom.py).

    python scripts/analysis/probe_headroom.py [--task adversarial_multitenant] [--episodes 40] [--workers 2]
                                     [--first-seed 2000] [--mlp] [--json PATH]

On training seeds (from --first-seed), every 3rd window of a heuristic episode, every coordinate
move from the heuristic's decision is tried on an env clone (held 3 windows, then the heuristic for
12); its gain is the score it earns over those 15 windows minus the heuristic's own. Prints
Markdown (docs/training.md, "What the headroom is made of"):

* per phase and move: mean gain per decision in 1e-3 score points, its 95 % CI over episodes, and
  the share of decisions where the move gains;
* per episode, the clairvoyant selection (the best move wherever one gains) and the deployable one
  (ridge regressions on env.state() and the phase, 4-fold cross-validated by episode; --mlp adds a
  small MLP), each the sum over decisions of the gains realized, mean and 95 % CI over episodes.

About 8 s per episode of adversarial_multitenant per core (40 episodes: about 3 minutes with 2
workers), and about a minute more for --mlp on 40 episodes.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


from igym_marl.agents.analysis.headroom import clairvoyant_selection, deviation_gains, predicted_selection
from igym_marl.agents.analysis.stats import bootstrap_ci
from igym_marl.workloads import TRAIN_SEEDS, get_task


def _gains(job):
    return deviation_gains(*job)


def report(rows: list[dict], phases: tuple[str, ...], mlp: bool = False) -> str:
    seeds = sorted({r["seed"] for r in rows})
    lines = [f"Counterfactual gain of one-knob moves from the heuristic's decision ({len(seeds)} episodes, "
             f"{len({(r['seed'], r['window']) for r in rows})} decisions), 1e-3 score points per decision:", "",
             "| phase | move | decisions | mean gain [95 % CI] | share that gains |", "|---|---|---|---|---|"]
    groups = {}
    for r in rows:
        groups.setdefault((r["phase"], r["knob"], r["move"]), []).append(r)
    for (phase, knob, move), part in sorted(groups.items(), key=lambda kv: -np.mean([r["gain"] for r in kv[1]])):
        per_seed = [[1e3 * r["gain"] for r in part if r["seed"] == s] for s in seeds]
        per_seed = [np.mean(x) for x in per_seed if x]
        lo, hi = bootstrap_ci([per_seed])
        gains = np.array([r["gain"] for r in part])
        lines.append(f"| {phases[phase]} | {knob} {move} | {len(part)} | {1e3 * gains.mean():+.3f} [{lo:+.3f}, {hi:+.3f}] "
                     f"| {100 * (gains > 0).mean():.0f} % |")
    lines += ["", "Gain realized per episode by a selection of moves, summed over its decisions (score points):", "",
              "| selection | gain per episode [95 % CI] |", "|---|---|"]
    selections = [("clairvoyant: the best move wherever one gains", clairvoyant_selection(rows)),
                  ("deployable: ridge on env.state() and phase, 4-fold by episode", predicted_selection(rows))]
    if mlp:
        selections.append(("deployable: MLP on env.state() and phase, 4-fold by episode",
                           predicted_selection(rows, model="mlp")))
    for name, sel in selections:
        x = [sel.get(s, 0.0) for s in seeds]
        lo, hi = bootstrap_ci([x])
        lines.append(f"| {name} | {np.mean(x):+.4f} [{lo:+.4f}, {hi:+.4f}] |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="adversarial_multitenant")
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--first-seed", type=int, default=2000, help="first training seed (default: 2000)")
    ap.add_argument("--episode-windows", type=int, default=None, help="shorter episodes (default: the task's)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--mlp", action="store_true", help="also select with a small MLP (slower)")
    ap.add_argument("--json", type=Path, default=None, help="also write every gain here")
    args = ap.parse_args(argv)
    try:
        task = get_task(args.task)
    except ValueError as e:
        ap.error(str(e))
    if args.episodes < 4:
        ap.error(f"--episodes={args.episodes} must be >= 4 (the deployable selection is cross-validated on 4 folds)")
    seeds = [args.first_seed + i for i in range(args.episodes)]
    if seeds[0] not in TRAIN_SEEDS or seeds[-1] not in TRAIN_SEEDS:
        ap.error(f"--first-seed={args.first_seed}: seeds {seeds[0]}..{seeds[-1]} must be training seeds "
                 f"({TRAIN_SEEDS.start}..{TRAIN_SEEDS.stop - 1})")
    jobs = [(task.id, s, 3, 12, 3, args.episode_windows) for s in seeds]
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as ex:
            rows = [r for part in ex.map(_gains, jobs) for r in part]
    else:
        rows = [r for job in jobs for r in _gains(job)]
    if args.json:
        args.json.write_text(json.dumps(rows))
    print(report(rows, task.phase_labels(seeds[0])[0], args.mlp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
