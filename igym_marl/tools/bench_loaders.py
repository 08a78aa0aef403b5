"""Trace loading speed on a BurstGPT_1-sized file (1.43 M rows), generated here.

    python benchmarks/bench_loaders.py [--rows 1429737] [--keep FILE]

The file has BurstGPT's release format (CRLF, integer-second timestamps with ties, ~1.8 % failed
rows, both models and log types). The recorded baseline, measured in the same run, is pandas'
plain read_csv of the same file: the ratio says what validation, tie spreading and tenant
mapping cost on top of parsing. Then the trace task's reset: the file is parsed once and each
reset cuts a 10-minute window (``window``); the second ratio is a reset against a parse.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import pandas as pd

from igym_marl.workloads import load_burstgpt, parse_burstgpt, window


def make_file(path: str, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, 61 * 86400, rows))
    req = np.floor(rng.pareto(0.9, rows) * 30 + 1).clip(1, 8192).astype(int)
    resp = rng.integers(1, 800, rows)
    resp[rng.random(rows) < 0.018] = 0
    model = np.where(rng.random(rows) < 0.7, "ChatGPT", "GPT-4")
    log = np.where(rng.random(rows) < 0.6, "Conversation log", "API log")
    df = pd.DataFrame({"Timestamp": ts, "Model": model, "Request tokens": req, "Response tokens": resp,
                       "Total tokens": req + resp, "Log Type": log})
    df.to_csv(path, index=False, lineterminator="\r\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_429_737)
    ap.add_argument("--keep", default=None, help="write the generated file here instead of a temp file")
    args = ap.parse_args(argv)
    path = args.keep or os.path.join(tempfile.mkdtemp(), "burstgpt_like.csv")
    make_file(path, args.rows)
    size_mb = os.path.getsize(path) / 1e6
    t0 = time.perf_counter()
    pd.read_csv(path)
    base = time.perf_counter() - t0
    t0 = time.perf_counter()
    w, rep = load_burstgpt(path, seed=0)
    ours = time.perf_counter() - t0
    print(f"{args.rows:,} rows, {size_mb:.0f} MB: load_burstgpt {ours:.2f} s "
          f"(pandas read_csv alone {base:.2f} s, ratio {ours / base:.1f}x); kept {rep.kept:,}, "
          f"failed dropped {rep.failed_dropped:,}, tenants {rep.tenants}")
    t0 = time.perf_counter()
    parsed = parse_burstgpt(path)
    parse_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    starts = rng.uniform(0, parsed.span_s - 600, 20)
    t0 = time.perf_counter()
    for i, st in enumerate(starts):
        window(parsed, start_s=float(st), duration_s=600.0, seed=i)
    reset_s = (time.perf_counter() - t0) / len(starts)
    print(f"trace task reset (a 600 s window cut from the parsed file): {reset_s * 1e3:.2f} ms, parsing once "
          f"{parse_s:.2f} s: a reset costs {reset_s / parse_s:.4f} x a parse")
    if not args.keep:
        os.remove(path)


if __name__ == "__main__":
    main()
