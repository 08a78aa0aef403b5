"""Write data/traces/burstgpt_sample.csv: a small file in BurstGPT's release format.

    python scripts/make_burstgpt_sample.py [--hours 3] [--start-hour 8] [--seed 0] [--out PATH]

The rows are **generated**, not real BurstGPT data: arrivals and lengths come from the
BurstGPT-calibrated generator (``igym_marl.workloads.burstgpt_workload``, fitted to the
published statistics of BurstGPT_1; docs/workloads.md), written in the release's column layout
so that the loader, the ``trace`` task and the examples can be tried without downloading the
1.4 M-row release. ``Timestamp`` is whole seconds from midnight of day one (ties kept, as in the
release); ``Model`` is ChatGPT or GPT-4 at 9:1 (our choice; the split is not published);
``Log Type`` follows the generator's tenant; 1.8 % of rows are failed requests with 0 response
tokens (BurstGPT_1's published failure rate). The same arguments always write the same bytes.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from igym_marl.paths import DATA_DIR
from igym_marl.workloads import burstgpt_workload

FAILURE_RATE = 0.018
GPT4_SHARE = 0.1


def rows(hours: float, start_hour: float, seed: int) -> list[str]:
    start_s = start_hour * 3600.0
    w = burstgpt_workload(start_s + hours * 3600.0, seed=seed)
    keep = w.arrival_s >= start_s
    rng = np.random.default_rng([seed, 1])
    n = int(keep.sum())
    model = np.where(rng.random(n) < GPT4_SHARE, "GPT-4", "ChatGPT")
    failed = rng.random(n) < FAILURE_RATE
    out = ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"]
    logs = {"conversation": "Conversation log", "api": "API log"}
    for i, (t, p, o, ten) in enumerate(zip(w.arrival_s[keep], w.prompt_tokens[keep], w.output_tokens[keep],
                                           w.tenant[keep])):
        resp = 0 if failed[i] else int(o)
        out.append(f"{int(t)},{model[i]},{int(p)},{resp},{int(p) + resp},{logs[w.tenants[ten].name]}")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=3.0, help="hours of traffic (default 3)")
    ap.add_argument("--start-hour", type=float, default=8.0, help="hour of day one the sample starts at (default 8)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DATA_DIR / "traces" / "burstgpt_sample.csv")
    args = ap.parse_args(argv)
    lines = rows(args.hours, args.start_hour, args.seed)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(lines) - 1} rows to {args.out}")


if __name__ == "__main__":
    main()
