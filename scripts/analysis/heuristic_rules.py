"""What each rule of the tuned heuristic adds (the table of docs/baselines.md).

    python scripts/analysis/heuristic_rules.py [--tasks bursty_workload,adversarial_multitenant] [--seeds 8]

For each task, on training seeds 0..N-1 (the seeds it was tuned on) and held-out seeds
1,000,000..: the global best constant, the tuned heuristic, and the tuned heuristic with one rule
at a time switched down to a constant (and with the KV-growth rule switched on).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np


from igym_marl.agents.evaluation import run_episode
from igym_marl.agents.policies.heuristic import HeuristicParams, HeuristicPolicy, load_tuned
from igym_marl.agents.analysis.tuning import load_best_constant
from igym_marl.workloads import EVAL_SEEDS

INF = float("inf")


def variants(p: HeuristicParams) -> dict[str, HeuristicParams]:
    r = dataclasses.replace
    return {
        "tuned heuristic": p,
        "- pressure by the premium tenant's load": r(p, pressure_load=INF),
        "- pressure by waiting or attainment": r(p, pressure_wait=INF, pressure_att=0.0),
        "- a different pool under pressure": r(p, kv_calm=p.kv_pressure),
        "- priority switched with pressure": r(p, priority="on" if p.priority == "pressure" else p.priority),
        "- batch cap adapting": r(p, batch_min=p.batch_start, batch_max=p.batch_start),
        "- speculation at small batch": r(p, spec_depth=0),
        "+ pool growth for waiting long prompts": r(p, kv_grow=2),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="bursty_workload,adversarial_multitenant")
    ap.add_argument("--seeds", type=int, default=8, help="training seeds 0..N-1 and held-out seeds (default 8)")
    args = ap.parse_args(argv)
    for task in args.tasks.split(","):
        p = load_tuned(task)
        rows = {"global best constant": HeuristicParams.playing(load_best_constant(task)), **variants(p)}
        print(f"\n### {task}\n\n| heuristic | training seeds 0-{args.seeds - 1} | held-out seeds |\n|---|---|---|")
        seen = {}
        for name, params in rows.items():
            if params in seen:
                print(f"| {name} | same as {seen[params]} | |")
                continue
            seen[params] = name
            train = np.mean([run_episode(HeuristicPolicy(params), task, s)["score"] for s in range(args.seeds)])
            held = np.mean([run_episode(HeuristicPolicy(params), task, EVAL_SEEDS.start + s)["score"]
                            for s in range(args.seeds)])
            print(f"| {name} | {train:.3f} | {held:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
