"""Replay measured serving runs through the simulator and compare, or fit an engine profile to them.

    python scripts/replay_serving_runs.py                                   # the shipped H100 vLLM 0.15.1 runs
    python scripts/replay_serving_runs.py my_runs.csv --engine vllm-0.2     # any runs file, any engine profile
    python scripts/replay_serving_runs.py my_runs.csv --fit --engine-name my-engine   # fit a profile to them

A runs file has one row per stage of a serving benchmark: the server's settings, the stage's
arrivals, rate, duration, prompt-length distribution and output length, and the TTFT and
end-to-end latency its clients measured (``igym_marl/workloads/replay.py`` lists the columns;
``data/calibration/h100_vllm_v1_serving_runs.csv`` is one). Each run is served with its own settings
and traffic rebuilt from the file (seeded); per run and stage the tool prints the simulated and
measured TTFT and E2E (mean, p50, p90, p99, ms) and their errors, then the median absolute error of
the means over the stages. A stage is *overloaded* when some of its requests did not finish within
600 s of the run's end, or its simulated mean TTFT passed 1 s.

``--fit`` fits the engine profile's constants (``--fields``; by default iter_overhead_s,
seq_overhead_s, api_overhead_s and layer_overhead_scale) to the measured mean TTFT and E2E, GPU
physics held, starting from ``--engine``, and prints the ``EngineProfile(...)`` to use with
``SimConfig(engine=...)``, then the table with it. The shipped ``vllm-0.15`` profile is the result
of ``--fit --engine vllm-0.15`` on the shipped runs (its custom all-reduce latency held).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from igym_marl.paths import DATA_DIR
from igym_marl.sim.profiles import ENGINES, DEFAULT_ENGINE
from igym_marl.workloads.replay import FIT_FIELDS, MEASURES, errors, fit_engine_to_runs, load_runs, replay

DEFAULT_RUNS = DATA_DIR / "calibration" / "h100_vllm_v1_serving_runs.csv"


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:+.1f} %"


def table(rows: list[dict]) -> str:
    out = ["| run | stage (req/s) | measure | measured mean / p50 / p90 / p99 (ms) | simulated (ms) | error of each |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        for kind in ("ttft", "e2e"):
            real = " / ".join(f"{r[f'real_{kind}_{s}_ms']:,.1f}" for s in ("mean", "p50", "p90", "p99"))
            sim = " / ".join(f"{r[f'sim_{kind}_{s}_ms']:,.1f}" for s in ("mean", "p50", "p90", "p99"))
            err = " / ".join(_pct(r[f"sim_{kind}_{s}_ms"] / r[f"real_{kind}_{s}_ms"] - 1)
                             for s in ("mean", "p50", "p90", "p99"))
            flag = " (overloaded)" if r["overloaded"] else ""
            out.append(f"| {r['run']} | {r['stage']} ({r['rate_rps']:g}){flag} | {kind.upper()} | {real} | {sim} | {err} |")
    return "\n".join(out)


def summary(rows: list[dict]) -> str:
    means = np.concatenate([errors(rows, "ttft_mean_ms"), errors(rows, "e2e_mean_ms")])
    means = np.abs(means[np.isfinite(means)])
    p99 = np.abs(errors(rows, "ttft_p99_ms"))
    p99 = p99[np.isfinite(p99)]
    over = sum(r["overloaded"] for r in rows)
    return (f"{len(rows)} stages: median absolute error of the TTFT and E2E means {100 * np.median(means):.1f} %, "
            f"largest {100 * means.max():.1f} %; p99 TTFT median {100 * np.median(p99):.1f} %, largest "
            f"{100 * p99.max():.1f} %; overloaded stages: {over}; prefix hit rate "
            f"{np.mean([r['prefix_hit_rate'] for r in rows]):.3f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="?", type=Path, default=DEFAULT_RUNS, help=f"the runs file (default: {DEFAULT_RUNS})")
    ap.add_argument("--engine", default=DEFAULT_ENGINE, help=f"engine profile to replay with: {', '.join(ENGINES)} "
                                                             f"(default: {DEFAULT_ENGINE})")
    ap.add_argument("--fit", action="store_true", help="fit an engine profile to the runs, starting from --engine")
    ap.add_argument("--fields", nargs="+", default=["iter_overhead_s", "seq_overhead_s", "api_overhead_s",
                                                    "layer_overhead_scale"], choices=FIT_FIELDS,
                    help="the profile's constants --fit fits (the others keep --engine's)")
    ap.add_argument("--engine-name", default="my-engine", help="name of the fitted profile")
    ap.add_argument("--max-evals", type=int, default=300, help="replays the fit may run (each replays every run)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the rebuilt traffic")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    args = ap.parse_args(argv)
    if args.engine not in ENGINES:
        ap.error(f"--engine {args.engine!r}: allowed {', '.join(ENGINES)}")
    if args.max_evals < 1 or args.seed < 0:
        ap.error("--max-evals must be >= 1, --seed >= 0")
    try:
        stages = load_runs(args.runs)
    except (ValueError, FileNotFoundError) as e:
        ap.error(str(e))
    engine = ENGINES[args.engine]
    if args.fit:
        try:
            engine, loss = fit_engine_to_runs(stages, engine, args.fields, args.seed, name=args.engine_name, max_evals=args.max_evals,
                                              description=f"fitted on {args.runs.name} by "
                                                          f"scripts/replay_serving_runs.py --fit")
        except ValueError as e:
            ap.error(str(e))
        print(f"## Engine profile fitted on {len(stages)} stages of {args.runs} (loss {loss:.4g})\n")
        print(f"    {engine!r}\n")
    rows = replay(stages, engine, args.seed)
    text = f"Engine `{engine.name}`, {args.runs.name}:\n\n{table(rows)}\n\n{summary(rows)}"
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
