"""Traffic statistics used to compare generated and real traffic (docs/workloads.md)."""

from __future__ import annotations

import numpy as np

from ..sim.types import Workload

QUANTILES = (10, 50, 90, 99)


def traffic_stats(w: Workload, window_s: float = 60.0) -> dict:
    """Rates, inter-arrival and windowed-rate burstiness, and length quantiles of a workload."""
    arr = w.arrival_s
    if arr.shape[0] < 2:
        raise ValueError("traffic_stats needs at least two requests")
    span = float(arr[-1] - arr[0])
    ia = np.diff(arr)
    counts = np.histogram(arr, bins=np.arange(arr[0], arr[-1] + window_s, window_s))[0] / window_s
    out = {
        "requests": int(arr.shape[0]), "duration_s": span, "mean_rps": arr.shape[0] / span,
        "interarrival_mean_s": float(ia.mean()), "interarrival_median_s": float(np.median(ia)),
        "interarrival_p99_s": float(np.percentile(ia, 99)), "interarrival_cv": float(ia.std() / ia.mean()),
        f"rate_{int(window_s)}s_peak_over_mean": float(counts.max() / counts.mean()),
        f"rate_{int(window_s)}s_cv": float(counts.std() / counts.mean()),
        "prompt_mean": float(w.prompt_tokens.mean()), "output_mean": float(w.output_tokens.mean()),
    }
    for q in QUANTILES:
        out[f"prompt_p{q}"] = float(np.percentile(w.prompt_tokens, q))
        out[f"output_p{q}"] = float(np.percentile(w.output_tokens, q))
    return out
