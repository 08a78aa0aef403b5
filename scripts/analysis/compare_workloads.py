"""Generated vs real traffic, side by side (the tables of docs/workloads.md).

    python scripts/analysis/compare_workloads.py [--azure data/traces/azure_conv_2023_1h.csv]

* BurstGPT-calibrated generator, one week at native time scale, seeds 0-2, against the published
  statistics of BurstGPT_1 (61 days; Wang et al., "BurstGPT", KDD 2025).
* Azure-calibrated generator, one hour, seeds 0-2, against the real Azure 2023 conversation hour
  shipped in data/traces/azure_conv_2023_1h.csv (data/README.md).
"""
from __future__ import annotations

import argparse

import numpy as np

from igym_marl.paths import data_path
from igym_marl.workloads import azure_conv_workload, burstgpt_workload, load_azure, traffic_stats

BURSTGPT_PUBLISHED = {"mean_rps": 0.271, "interarrival_mean_s": 3.69, "interarrival_median_s": 1.0,
                      "interarrival_p99_s": 52.0, "rate_60s_peak_over_mean": 77.0, "rate_60s_cv": 2.91,
                      "prompt_mean": 622.0, "output_mean": 126.0}
ROWS = ["mean_rps", "interarrival_mean_s", "interarrival_median_s", "interarrival_p99_s", "interarrival_cv",
        "rate_60s_peak_over_mean", "rate_60s_cv", "prompt_mean", "prompt_p10", "prompt_p50", "prompt_p90",
        "prompt_p99", "output_mean", "output_p10", "output_p50", "output_p90", "output_p99"]


def fmt(x):
    return "n/a" if x is None else (f"{x:,.3g}" if abs(x) < 100 else f"{x:,.0f}")


def table(title, ref_name, ref, gens):
    print(f"\n### {title}\n")
    print(f"| statistic | {ref_name} | generator (mean of seeds 0-2) | per seed |")
    print("|---|---|---|---|")
    for k in ROWS:
        vals = [g[k] for g in gens]
        print(f"| {k} | {fmt(ref.get(k))} | {fmt(float(np.mean(vals)))} | {', '.join(fmt(v) for v in vals)} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--azure", default=None, help="the Azure conversation hour (default: data/traces/azure_conv_2023_1h.csv)")
    args = ap.parse_args(argv)
    gens = [traffic_stats(burstgpt_workload(7 * 86400.0, seed=s)) for s in range(3)]
    table("BurstGPT generator (7 days) vs published BurstGPT_1 (61 days)", "BurstGPT_1 published",
          BURSTGPT_PUBLISHED, gens)
    real, _ = load_azure(args.azure or data_path("traces", "azure_conv_2023_1h.csv"))
    gens = [traffic_stats(azure_conv_workload(3500.0, seed=s)) for s in range(3)]
    table("Azure generator (1 hour) vs the real Azure 2023 conversation hour", "Azure hour (real)",
          traffic_stats(real), gens)


if __name__ == "__main__":
    main()
