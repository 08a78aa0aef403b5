"""Simulator speed: real-time factor of the fast kernel, and its ratio to the reference
implementation measured in the same run (the recorded baseline).

    python benchmarks/bench_sim.py [--windows 300] [--json out.json]

Setting: SimConfig's default replica (Llama-3.1-8B on one A100-80GB, engine vllm-0.15; --model and
--engine change it, e.g. ``--model llama-3-8b --engine vllm-0.2`` for the 2023 setting),
ShareGPT-like Poisson traffic, batch_cap 256, 6-s windows (the adversarial task's window). The saturation point is measured first: the request
rate the replica completes under heavy overload. Then the benchmark runs at that rate and at 3x.
Both paths are checked to give identical metrics on the windows the reference runs.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from igym_marl.sim import Knobs, SimConfig, Simulator
from igym_marl.sim.reference import ReferenceSimulator
from igym_marl.workloads import poisson_workload

WINDOW_S = 6.0
KNOBS = Knobs(batch_cap=256, kv_budget_fraction=0.9)


def saturation_rps(config: SimConfig, seconds: float = 300.0) -> float:
    sim = Simulator(config)
    sim.reset(poisson_workload(30.0, seconds, seed=0), seed=0)
    for _ in range(int(seconds / WINDOW_S)):
        sim.advance(WINDOW_S, KNOBS)
    return sim.episode_metrics().finished / seconds


def time_windows(sim, n: int, warmup: int) -> tuple[float, list]:
    for _ in range(warmup):
        sim.advance(WINDOW_S, KNOBS)
    out = []
    t0 = time.perf_counter()
    for _ in range(n):
        out.append(sim.advance(WINDOW_S, KNOBS))
    return time.perf_counter() - t0, out


def bench(config: SimConfig, rate: float, windows: int, ref_windows: int) -> dict:
    horizon = WINDOW_S * (windows + 25)
    w = poisson_workload(rate, horizon, seed=1)
    fast = Simulator(config)
    fast.reset(w, seed=0)
    fast.advance(WINDOW_S, KNOBS)  # compile / warm caches
    fast.reset(w, seed=0)
    wall, ms = time_windows(fast, windows, warmup=20)
    ref, fast2 = ReferenceSimulator(config), Simulator(config)
    ref.reset(w, seed=0)
    fast2.reset(w, seed=0)
    ref_wall, ref_ms = time_windows(ref, ref_windows, warmup=20)
    _, fast_ms = time_windows(fast2, ref_windows, warmup=20)
    identical = all(a.as_dict().__repr__() == b.as_dict().__repr__() for a, b in zip(fast_ms, ref_ms))
    per_window = wall / windows
    return {
        "rate_rps": rate, "windows": windows, "ms_per_window": 1e3 * per_window,
        "real_time_factor": WINDOW_S / per_window, "iterations_per_window": float(np.mean([m.iterations for m in ms])),
        "running_mean": float(np.mean([m.running for m in ms])),
        "reference_ms_per_window": 1e3 * ref_wall / ref_windows,
        "speedup_vs_reference": (ref_wall / ref_windows) / per_window, "identical_to_reference": identical,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=300, help="timed windows of the fast path per setting")
    ap.add_argument("--ref-windows", type=int, default=10, help="timed windows of the reference per setting")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--model", default=SimConfig().model, help="model profile (default: SimConfig's)")
    ap.add_argument("--engine", default=SimConfig().engine, help="engine profile (default: SimConfig's)")
    args = ap.parse_args(argv)
    config = SimConfig(model=args.model, engine=args.engine)
    sat = saturation_rps(config)
    res = {"model": config.model, "engine": config.engine, "saturation_rps": sat,
           "settings": [bench(config, sat, args.windows, args.ref_windows),
                        bench(config, 3 * sat, args.windows, args.ref_windows)]}
    print(f"saturation point: {sat:.2f} req/s ({config.model}, {config.gpu}, engine {config.engine}, batch_cap 256, "
          f"ShareGPT-like)")
    print("| load | req/s | ms per 6-s window | real-time factor | iterations/window | running | "
          "reference ms/window | speed-up | identical |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in zip(("saturation", "3x overload"), res["settings"]):
        print(f"| {name} | {r['rate_rps']:.2f} | {r['ms_per_window']:.3f} | {r['real_time_factor']:,.0f}x | "
              f"{r['iterations_per_window']:.0f} | {r['running_mean']:.0f} | {r['reference_ms_per_window']:.1f} | "
              f"{r['speedup_vs_reference']:.0f}x | {r['identical_to_reference']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
