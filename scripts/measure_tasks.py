"""Measure what docs/tasks.md reports about capacity and trade-offs (about a minute).

    python scripts/measure_tasks.py

1. Capacity of each task's replica for the task's length mix (measure_capacity_rps, seeds 0-2).
2. For every knob, a phase where raising it helps and one where it hurts (probes.TRADEOFFS, seeds 0-2).

The global best constants and the adaptivity gap: python -m agents.tuning best-constant and
scripts/measure_adaptivity.py.
"""
from __future__ import annotations

import argparse

from igym_marl.workloads import TASKS
from igym_marl.workloads.probes import measure_tradeoffs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args(argv)

    print("### Capacity\n")
    print("| task | recorded capacity (req/s) | measured, seeds 0 / 1 / 2 |")
    print("|---|---|---|")
    for tid, t in TASKS.items():
        m = [t.measure_capacity(s) for s in range(3)]
        print(f"| {tid} | {t.capacity_rps} | {' / '.join(f'{x:.2f}' for x in m)} |")

    print("\n### Knob trade-offs (mean of seeds 0-2)\n")
    print("| knob | phase | metric (better) | low setting -> value | raised setting -> value | raising |")
    print("|---|---|---|---|---|---|")
    for r in measure_tradeoffs(seeds=(0, 1, 2)):
        print(f"| {r['knob']} | {r['phase']} | {r['metric']} ({r['better']}) | {r['low_setting']} -> {r['low']:.3g} | "
              f"{r['high_setting']} -> {r['high']:.3g} | **{r['raising']}** |")



if __name__ == "__main__":
    main()
