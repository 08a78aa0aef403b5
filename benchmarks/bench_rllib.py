"""Where an RLlib PPO iteration on serving_v0 spends its time: the inputs of docs/scaling.md.

    python benchmarks/bench_rllib.py [--iterations 3] [--train-batch 2000] [--json out.json]

Needs the ray extra. For 0 remote env runners (sampling in the driver) and 1 (sampling in a
worker process), after one warm-up iteration: RLlib's own timers per iteration (env-runner
sampling, learner update, weight synchronisation) and the whole iteration, as env steps per
second of one core. Run it on an otherwise idle machine: the figures are absolute.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np



def measure(runners: int, iterations: int, batch: int, sharing: str) -> dict:
    import ray

    from igym_marl.agents.training.rllib import ppo_config
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        algo = ppo_config("bursty_workload", sharing, num_env_runners=runners, train_batch=batch,
                          minibatch=min(250, batch)).build_algo()
        algo.train()  # warm-up
        rows = []
        for _ in range(iterations):
            t0 = time.perf_counter()
            r = algo.train()
            rows.append({"total_s": time.perf_counter() - t0, "sample_s": r["timers"]["env_runner_sampling_timer"],
                         "learn_s": r["timers"]["learner_update_timer"], "sync_s": r["timers"]["synch_weights"]})
        algo.stop()
    finally:
        ray.shutdown()
    m = {k: float(np.mean([row[k] for row in rows])) for k in rows[0]}
    m["other_s"] = m["total_s"] - m["sample_s"] - m["learn_s"] - m["sync_s"]
    return {"env_runners": runners, "train_batch": batch, **{k: round(v, 3) for k, v in m.items()},
            "sample_steps_per_s": round(batch / m["sample_s"], 1), "learn_steps_per_s": round(batch / m["learn_s"], 1),
            "loop_steps_per_s": round(batch / m["total_s"], 1)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--train-batch", type=int, default=2000)
    ap.add_argument("--sharing", default="shared", choices=("shared", "per-agent"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    out = [measure(r, args.iterations, args.train_batch, args.sharing) for r in (0, 1)]
    for row in out:
        print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
