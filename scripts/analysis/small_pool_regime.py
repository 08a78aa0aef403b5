"""Why the adversarial day's "small pool + priority" constant lost its edge on today's engine.

    python scripts/analysis/small_pool_regime.py [--seeds 4]

Scores (the environment's episode score, `igym_marl.agents.analysis.tuning.constant_score`) the 2023 benchmark's
day regime (batch_cap 128, KV 0.1, INT8, priority on) against today's global best constant
(batch_cap 512, KV 1.0, FP16, 1-token speculation, priority on) on adversarial_multitenant's
training seeds 0.., three ways: as the task is; with the requests stripped of their prefix keys
(nothing shared, nothing cached); and with the 2023 engine's per-sequence CPU cost (0.269 ms per
running sequence per iteration) put back into the V1 profile. docs/simulator.md quotes the result.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np


from igym_marl.agents.analysis.tuning import constant_score
from igym_marl.sim import Knobs, Workload
from igym_marl.sim.profiles import get_engine
from igym_marl.workloads import get_task

SMALL_POOL = Knobs(batch_cap=128, kv_budget_fraction=0.1, speculation_depth=0, quantization_tier="INT8",
                   prefill_decode_split=False, priority_routing=True)
FULL_POOL = Knobs(batch_cap=512, kv_budget_fraction=1.0, speculation_depth=1, quantization_tier="FP16",
                  prefill_decode_split=False, priority_routing=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=4, help="training seeds 0.. (default 4)")
    args = ap.parse_args(argv)
    task = get_task("adversarial_multitenant")
    per_seq = dataclasses.replace(get_engine(task.config.engine), name="vllm-0.15+seq",
                                  seq_overhead_s=get_engine("vllm-0.2").seq_overhead_s)

    def keyless(w):
        return Workload(w.arrival_s, w.prompt_tokens, w.output_tokens, w.tenant, w.tenants, w.name)

    variants = (("as the task is", task.config, lambda w: w),
                ("no prefix keys (nothing cached)", task.config, keyless),
                ("V1 + the 2023 per-sequence cost", dataclasses.replace(task.config, engine=per_seq), lambda w: w))
    print("| variant | small pool + priority | full pool + priority |")
    print("|---|---|---|")
    for name, config, shape in variants:
        cells = []
        for knobs in (SMALL_POOL, FULL_POOL):
            cells.append(np.mean([constant_score(task, knobs, s, workload=shape(task.workload(s)), config=config)
                                  for s in range(args.seeds)]))
        print(f"| {name} | {cells[0]:.3f} | {cells[1]:.3f} |")


if __name__ == "__main__":
    main()
