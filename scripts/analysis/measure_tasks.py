"""Measure what docs/tasks.md reports about capacity and trade-offs (about a minute).

    python scripts/analysis/measure_tasks.py

1. Capacity of each task's replica (TaskSpec.measure_capacity: for the task's length mix, or, for
   traffic with conversations, over its own episodes; seeds 0-9, whose mean is what is recorded),
   and of each cluster task's replica.
2. For every knob, a phase where raising it helps and one where it hurts (probes.TRADEOFFS, seeds 0-2).

The global best constants and the adaptivity gap: python -m igym_marl.agents.analysis.tuning best-constant and
scripts/analysis/measure_adaptivity.py.
"""
from __future__ import annotations

import argparse

import numpy as np

from igym_marl.workloads import TASKS
from igym_marl.workloads.cluster_tasks import CLUSTER_TASKS
from igym_marl.workloads.probes import measure_tradeoffs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args(argv)

    print("### Capacity\n")
    print("| task | recorded capacity (req/s) | probe | measured, mean of seeds 0-9 (min - max) |")
    print("|---|---|---|---|")
    rows = [(tid, t.capacity_rps, t.capacity_probe, t.measure_capacity) for tid, t in TASKS.items()]
    rows += [(tid, c.replica_capacity_rps, c.capacity_probe, c.measure_replica_capacity) for tid, c in CLUSTER_TASKS.items()]
    for tid, recorded, probe, measure in rows:
        m = np.array([measure(s) for s in range(10)])
        how = "length mix" if probe is None else probe.__name__.strip("_")
        print(f"| {tid} | {recorded} | {how} | {m.mean():.2f} ({m.min():.2f} - {m.max():.2f}) |")

    print("\n### Knob trade-offs (mean of seeds 0-2)\n")
    print("| knob | phase | metric (better) | low setting -> value | raised setting -> value | raising |")
    print("|---|---|---|---|---|---|")
    for r in measure_tradeoffs(seeds=(0, 1, 2)):
        print(f"| {r['knob']} | {r['phase']} | {r['metric']} ({r['better']}) | {r['low_setting']} -> {r['low']:.3g} | "
              f"{r['high_setting']} -> {r['high']:.3g} | **{r['raising']}** |")



if __name__ == "__main__":
    main()
