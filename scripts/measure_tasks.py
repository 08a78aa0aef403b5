"""Measure what docs/tasks.md reports: capacities, knob trade-offs, the best constant configurations.

    python scripts/measure_tasks.py [--search-seeds 3] [--eval-episodes 10]

1. Capacity of each task's replica for the task's length mix (measure_capacity_rps, seeds 0-2).
2. For every knob, a phase where raising it helps and one where it hurts (probes.TRADEOFFS, seeds 0-2).
3. The best constant configuration per task: coordinate search over the agents' action grid on
   training seeds, then evaluated with vLLM's default on held-out evaluation seeds (1,000,000+).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from igym_marl.workloads import TASKS, VLLM_DEFAULT
from igym_marl.workloads.probes import (EVAL_SEEDS, constant_search, episode_value, measure_tradeoffs,
                                        run_episode)


def knobs_str(k):
    return (f"batch_cap {k.batch_cap}, kv {k.kv_budget_fraction}, spec {k.speculation_depth}, "
            f"{k.quantization_tier}, chunked {'on' if k.prefill_decode_split else 'off'}, "
            f"priority {'on' if k.priority_routing else 'off'}")


def ci95(x):
    x = np.asarray(x)
    return 1.96 * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else float("nan")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--search-seeds", type=int, default=3, help="training seeds per configuration in the search")
    ap.add_argument("--eval-episodes", type=int, default=10, help="held-out evaluation episodes")
    args = ap.parse_args(argv)

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

    print("\n### Best constant configuration\n")
    print(f"Search: {args.search_seeds} training seeds; evaluation: {args.eval_episodes} held-out seeds "
          f"from {EVAL_SEEDS.start}. Value: tenant-weighted SLO attainment x quality factor.\n")
    print("| task | best constant | search value | held-out value (95 % CI) | vLLM default held-out | evaluations | time |")
    print("|---|---|---|---|---|---|---|")
    for tid, t in TASKS.items():
        t0 = time.perf_counter()
        best, v, log = constant_search(t, seeds=tuple(range(args.search_seeds)))
        seeds = [EVAL_SEEDS.start + i for i in range(args.eval_episodes)]
        ev = [episode_value(t, run_episode(t, best, s)) for s in seeds]
        dv = [episode_value(t, run_episode(t, VLLM_DEFAULT, s)) for s in seeds]
        print(f"| {tid} | {knobs_str(best)} | {v:.3f} | {np.mean(ev):.3f} +- {ci95(ev):.3f} | "
              f"{np.mean(dv):.3f} +- {ci95(dv):.3f} | {len(log)} | {time.perf_counter() - t0:.0f} s |")


if __name__ == "__main__":
    main()
