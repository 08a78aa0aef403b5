"""Fit the cost model's constants to the measured profiles and report the error.

    python scripts/calibrate_cost_model.py            # refit, print the constants and the tables
    python scripts/calibrate_cost_model.py --check    # the error of the constants in profiles.py
    python scripts/calibrate_cost_model.py --fit-engine my_runs.csv --engine-name my-engine
                                                       # an engine profile for your own engine and host

The fit, stage by stage (docs/fidelity.md explains each choice):

1. **GPU efficiencies** (linear_mfu, hbm_efficiency, layer_overhead_s, knee power), per GPU, on
   Vidur's linear-operator profiles: A100 on Llama-2-7B and Llama-3-8B, H100 on Llama-2-70B
   (every octave of token counts weighted equally). The A100 Llama-2-70B profile is held out as a
   check. attn_mfu is held.
2. **All-reduce**, per GPU family and worker count, on Vidur's DGX NCCL profiles: latency plus
   bytes over bandwidth.
3. **Engine** (profile ``vllm-0.2``): tp_overhead_s on SplitwiseSim's end-to-end A100 vLLM times
   of Llama-2-70B (single-prompt prefills and decode steps), with stages 1 and 2 in place;
   iter_overhead_s and seq_overhead_s are held at the values the tasks were built on.

Only A100 end-to-end times and the A100/H100 profiles are fitted on.

``--fit-engine CSV`` fits an engine profile (iter_overhead_s, tp_overhead_s, seq_overhead_s; pick
with ``--fields``) to your own end-to-end measurements in SplitwiseSim's perf_model.csv layout
(model, hardware, tensor_parallel, prompt_size, batch_size, token_size, prompt_time, token_time),
on any GPU in profiles.GPUS, with the GPU physics held; it prints the profile to pass as
``SimConfig(engine=EngineProfile(...))`` and the error before and after. All fits minimise squared
log-ratio errors. The output is Markdown: the tables of docs/fidelity.md.

``--fit-engine`` also takes a serving-runs file (one row per stage of a serving benchmark: its
settings, traffic and client-side TTFT / E2E; the layout of
``data/calibration/h100_vllm_v1_serving_runs.csv``, known by its ``run`` and ``ttft_mean_ms``
columns): the profile is then fitted by replaying the runs, exactly as
``scripts/replay_serving_runs.py RUNS --fit`` does (which has the options of that fit).
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from igym_marl.paths import DATA_DIR
from igym_marl.sim import calibration as cal
from igym_marl.workloads.replay import FIT_FIELDS
from igym_marl.sim.profiles import ALL_REDUCE, DEFAULT_ENGINE, ENGINES, GPU_EFFICIENCY

A100, H100 = "a100-80gb", "h100-80gb"


def fit(lin, ar_points, e2e_single):
    """Stages 1 to 3; returns (efficiencies by GPU, all-reduce fits, engine profile)."""
    a_fit = [p for p in lin if p.gpu == A100 and p.model != "llama-2-70b"]
    h_fit = [p for p in lin if p.gpu == H100]
    eff = {
        A100: cal.fit_gpu_efficiency(a_fit, GPU_EFFICIENCY[A100], GPU_EFFICIENCY[A100].basis),
        H100: cal.fit_gpu_efficiency(h_fit, GPU_EFFICIENCY[H100], GPU_EFFICIENCY[H100].basis, weighted=True),
    }
    ar = cal.fit_all_reduce(ar_points)
    engine = cal.fit_engine(e2e_single, ENGINES[cal.E2E_ENGINE], ("tp_overhead_s",), ar, eff)
    return eff, ar, engine


def _stats(err) -> str:
    a = np.abs(err)
    return f"{len(a)} | {100 * np.median(a):.1f} % | {100 * np.quantile(a, 0.9):.1f} % | {100 * a.max():.1f} %"


def _errors(points, eff, ar, engine):
    return np.concatenate([cal.errors([p], engine, eff[p.gpu], ar[p.gpu][p.tp] if p.tp > 1 else None)
                           for p in points]) if points else np.array([])


def error_table(groups, eff, ar, engine):
    print("| source | GPU | model | tp | phase | n | median abs. error | p90 | max |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (source, gpu, model, tp, phase), pts in groups:
        print(f"| {source} | {gpu} | {model} | {tp} | {phase} | {_stats(_errors(pts, eff, ar, engine))} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA_DIR,
                    help="data folder holding calibration/ (default: the repository's data/)")
    ap.add_argument("--check", action="store_true", help="only report the error of the constants in profiles.py")
    ap.add_argument("--points", action="store_true", help="also print every end-to-end point")
    ap.add_argument("--fit-engine", type=Path, metavar="CSV",
                    help="fit an engine profile to end-to-end measurements in SplitwiseSim's layout")
    ap.add_argument("--engine-name", default="my-engine", help="name of the fitted engine profile")
    ap.add_argument("--fields", nargs="+", default=None, choices=sorted(set(cal.ENGINE_FIELDS) | set(FIT_FIELDS)),
                    help="constants to fit with --fit-engine (default: the three overheads; for a serving-runs "
                         "file, replay_serving_runs.py's default)")
    args = ap.parse_args(argv)
    if args.fit_engine is not None and _is_runs_file(args.fit_engine):
        from igym_marl.tools import replay
        return replay.main([str(args.fit_engine), "--fit", "--engine-name", args.engine_name]
                                        + (["--fields", *args.fields] if args.fields else []))
    if args.fit_engine is not None:
        args.fields = args.fields or list(cal.ENGINE_FIELDS)
        if not set(args.fields) <= set(cal.ENGINE_FIELDS):
            ap.error(f"--fields {' '.join(args.fields)}: a SplitwiseSim-layout file fits {', '.join(cal.ENGINE_FIELDS)}")
        try:
            return fit_engine_main(args)
        except (ValueError, FileNotFoundError) as e:
            raise SystemExit(f"calibrate_cost_model.py: error: {e}") from None
    lin = cal.load_linear_points(args.data)
    ar_points = cal.load_all_reduce_points(args.data)
    e2e = [p for p in cal.load_e2e_points(args.data) if not cal.is_outlier(p)]
    single = [p for p in e2e if not cal.is_batched_prefill(p)]
    if args.check:
        eff, ar, engine = dict(GPU_EFFICIENCY), ALL_REDUCE, ENGINES[cal.E2E_ENGINE]
    else:
        eff, ar, engine = fit(lin, ar_points, single)

    _print_constants(eff, engine)
    ar_err = _print_all_reduce(ar_points, ar)
    _print_errors(lin, e2e, eff, ar, engine)
    _print_summary(lin, e2e, eff, ar, engine, ar_err)
    _print_points_and_fit(args, e2e, eff, ar, engine)


def _print_constants(eff, engine) -> None:
    print("## Constants\n")
    print("| GPU | linear_mfu | hbm_efficiency | knee | layer_overhead_s | attn_mfu |")
    print("|---|---|---|---|---|---|")
    for g, e in eff.items():
        print(f"| {g} | {e.linear_mfu:.3f} | {e.hbm_efficiency:.3f} | {e.knee_power} | "
              f"{e.layer_overhead_s * 1e6:.1f} us | {e.attn_mfu:.3g} |")
    print(f"\nEngine `{engine.name}`: iter_overhead_s {engine.iter_overhead_s * 1e3:.3g} ms, "
          f"tp_overhead_s {engine.tp_overhead_s * 1e3:.3g} ms per doubling of tp, "
          f"seq_overhead_s {engine.seq_overhead_s * 1e3:.3g} ms")


def _print_all_reduce(ar_points, ar):
    print("\n## All-reduce inside one node (Vidur NCCL profiles)\n")
    print("| GPU | workers | latency | bandwidth | n | median abs. error | p90 | max |")
    print("|---|---|---|---|---|---|---|---|")
    ar_err = cal.all_reduce_errors(ar_points, ar)
    for gpu in ar:
        for w, f in sorted(ar[gpu].items()):
            if gpu not in cal.ALL_REDUCE_FILES:
                continue
            sel = np.array([p.gpu == gpu and p.workers == w for p in ar_points])
            print(f"| {gpu} | {w} | {f.latency_s * 1e6:.1f} us | {f.bytes_per_s / 1e9:.0f} GB/s | {_stats(ar_err[sel])} |")
    return ar_err


def _print_errors(lin, e2e, eff, ar, engine) -> None:
    print("\n## Error by source, GPU, tensor parallel degree and phase\n")
    groups = []
    for (gpu, model) in cal.LINEAR_FILES:
        src = "Vidur linear ops" + (" (held out)" if (gpu, model) == (A100, "llama-2-70b") else "")
        for tp in (1, 2, 4, 8):
            groups.append(((src, gpu, model, tp, "linear"),
                           [p for p in lin if p.gpu == gpu and p.model == model and p.tp == tp]))
    for phase, keep in (("prefill, one prompt", lambda p: p.phase == "prefill" and p.batch == 1),
                        ("prefill, batched prompts (not fitted)", cal.is_batched_prefill),
                        ("decode", lambda p: p.phase == "decode")):
        for tp in (2, 4, 8):
            groups.append((("SplitwiseSim vLLM end to end", cal.E2E_GPU, "llama-2-70b", tp, phase),
                           [p for p in e2e if p.tp == tp and keep(p)]))
    error_table(groups, eff, ar, engine)


def _print_summary(lin, e2e, eff, ar, engine, ar_err) -> None:
    print("\n## Summary\n")
    print("| points | n | median abs. error | p90 | max |")
    print("|---|---|---|---|---|")
    summary = [
        ("A100 linear layers, fitted (Llama-2-7B, Llama-3-8B)", [p for p in lin if p.gpu == A100 and p.model != "llama-2-70b"]),
        ("A100 linear layers, held out (Llama-2-70B)", [p for p in lin if p.gpu == A100 and p.model == "llama-2-70b"]),
        ("H100 linear layers (Llama-2-70B)", [p for p in lin if p.gpu == H100]),
        ("A100 end to end, one-prompt prefill", [p for p in e2e if p.phase == "prefill" and p.batch == 1]),
        ("A100 end to end, batched prefill (not fitted)", [p for p in e2e if cal.is_batched_prefill(p)]),
        ("A100 end to end, decode", [p for p in e2e if p.phase == "decode"]),
    ]
    for name, pts in summary:
        print(f"| {name} | {_stats(_errors(pts, eff, ar, engine))} |")
    print(f"| all-reduce, A100 and H100 | {_stats(ar_err)} |")


def _print_points_and_fit(args, e2e, eff, ar, engine) -> None:
    if args.points:
        print("\n## Every end-to-end point\n")
        print("| phase | tp | prompt | batch | context | measured ms | predicted ms | error |")
        print("|---|---|---|---|---|---|---|---|")
        for p in e2e:
            pred = cal.predicted_ms(p, engine, eff[p.gpu], ar[p.gpu][p.tp])
            print(f"| {p.phase} | {p.tp} | {p.tokens} | {p.batch} | {p.context} | {p.measured_ms:.1f} | "
                  f"{pred:.1f} | {100 * (pred / p.measured_ms - 1):+.1f} % |")
    if not args.check:
        print("\nPut these values in igym_marl/sim/profiles.py (GPU_EFFICIENCY, ALL_REDUCE, ENGINES).")
        for gpu, fits in ar.items():
            print(f"ALL_REDUCE[{gpu!r}] = " + ", ".join(
                f"{w}: AllReduceFit({f.latency_s:.3g}, {f.bytes_per_s:.4g})" for w, f in sorted(fits.items())))
        for g, e in eff.items():
            print(f"{g}: {dataclasses.replace(e, basis='...')}")
        print(f"engine: tp_overhead_s={engine.tp_overhead_s:.4g}")


def _is_runs_file(path: Path) -> bool:
    """A serving-runs file (scripts/replay_serving_runs.py's layout) rather than SplitwiseSim's."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            header = {c.strip() for c in f.readline(65536).split(",")}
    except OSError:
        return False
    return {"run", "ttft_mean_ms", "e2e_mean_ms"} <= header


def fit_engine_main(args) -> None:
    pts = cal.load_e2e_csv(args.fit_engine)
    start = ENGINES[cal.E2E_ENGINE]
    engine = cal.fit_engine(pts, start, args.fields, name=args.engine_name,
                            description=f"fitted on {args.fit_engine.name} by scripts/calibrate_cost_model.py")
    print(f"## Engine profile fitted on {len(pts)} points of {args.fit_engine}\n")
    print("| points | n | median abs. error | p90 | max |")
    print("|---|---|---|---|---|")
    for label, eng in ((f"with {start.name}", start), (f"with {engine.name}", engine)):
        for phase in ("prefill", "decode"):
            sel = [p for p in pts if p.phase == phase]
            if sel:
                print(f"| {phase}, {label} | {_stats(cal.errors(sel, eng))} |")
    print("\n```python")
    print("from igym_marl.sim.profiles import EngineProfile")
    print(f"engine = EngineProfile({engine.name!r}, iter_overhead_s={round(engine.iter_overhead_s, 9):.4g}, "
          f"tp_overhead_s={round(engine.tp_overhead_s, 9):.4g}, seq_overhead_s={round(engine.seq_overhead_s, 9):.4g}, "
          f"description={engine.description!r})")
    print("# SimConfig(..., engine=engine)")
    print("```")


if __name__ == "__main__":
    main()
