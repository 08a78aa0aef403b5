"""Statistics and tables for evaluation and training: one implementation for both.

Per agent and task: mean, interquartile mean (IQM) and a 95 % percentile-bootstrap confidence
interval of the mean (2,000 resamples of the episodes; across tasks, stratified: resampled within
each task), following rliable's recommendations (Agarwal et al., NeurIPS 2021). The headroom
statistic compares an agent with the global best constant and the oracle on the same seeds; the
paired difference compares an agent with a reference (the heuristic, the best constant) episode by
episode, which removes the episodes' own spread from the comparison.
"""

from __future__ import annotations

import numpy as np

REFERENCES = {"oracle": "a clairvoyant reference that sees future traffic, not a policy (igym_marl/agents/policies/oracle.py)",
              "mpc": "the oracle's search on a persistence forecast of traffic, with the engine's whole state in "
                     "view; a probe, not a policy (igym_marl/agents/policies/mpc.py)"}
MIN_HEADROOM = 0.02  # below this oracle - best constant (score points) a share of it means nothing


def iqm(x) -> float:
    """Interquartile mean: the mean of the middle 50 % (25 % trimmed from each end)."""
    x = np.sort(np.asarray(x, dtype=float))
    n = len(x)
    k = int(np.floor(0.25 * n))
    return float(x[k:n - k].mean()) if n - 2 * k > 0 else float(x.mean())


def bootstrap_ci(groups: list, stat=np.mean, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile CI of the mean over all values, resampling within each group (stratified)."""
    rng = np.random.default_rng(seed)
    groups = [np.asarray(g, dtype=float) for g in groups if len(g)]
    if not groups:
        return float("nan"), float("nan")
    boots = np.empty(n_boot)
    for b in range(n_boot):
        boots[b] = stat(np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups]))
    return float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def summarize(records: list[dict]) -> list[dict]:
    rows = []
    agents = list(dict.fromkeys(r["agent"] for r in records))
    tasks = list(dict.fromkeys(r["task"] for r in records))
    for a in agents:
        per_task = {t: [r["score"] for r in records if r["agent"] == a and r["task"] == t] for t in tasks}
        for t, xs in per_task.items():
            if xs:
                lo, hi = bootstrap_ci([xs])
                rows.append({"agent": a, "task": t, "episodes": len(xs), "mean": float(np.mean(xs)), "iqm": iqm(xs),
                             "ci_low": lo, "ci_high": hi})
        groups = [xs for xs in per_task.values() if xs]
        if len(groups) > 1:
            lo, hi = bootstrap_ci(groups)
            allx = np.concatenate(groups)
            rows.append({"agent": a, "task": "all", "episodes": int(allx.size), "mean": float(allx.mean()),
                         "iqm": iqm(allx), "ci_low": lo, "ci_high": hi})
    return rows


def adaptivity_gap(constant, oracle, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(oracle - best constant) / best constant from paired per-seed scores, with a 95 % CI by
    resampling the seeds -> (gap, ci_low, ci_high)."""
    c, o = np.asarray(constant, dtype=float), np.asarray(oracle, dtype=float)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(c), len(c))
        boots.append((o[idx].mean() - c[idx].mean()) / c[idx].mean())
    return float((o.mean() - c.mean()) / c.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def headroom(records: list[dict], n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """Share of the headroom between the best constant and the oracle that each agent captures,
    (score - best constant) / (oracle - best constant), per task, from the means over the seeds
    all three played; 95 % CI by resampling those seeds (paired: one resample serves all three).
    Where the oracle is less than MIN_HEADROOM above the best constant there is no headroom to
    share: the row says so (headroom NaN) instead of dividing by almost nothing."""
    out = []
    tasks = list(dict.fromkeys(r["task"] for r in records))
    agents = list(dict.fromkeys(r["agent"] for r in records))
    rng = np.random.default_rng(seed)
    for t in tasks:
        by = {a: {r["seed"]: r["score"] for r in records if r["agent"] == a and r["task"] == t} for a in agents}
        if not by.get("best-constant") or not by.get("oracle"):
            continue
        if any(r.get("policy.fallback_vllm_default") for r in records if r["task"] == t):
            continue  # no searched best constant (a trace): no bar to measure headroom from
        for a in agents:
            seeds = sorted(set(by[a]) & set(by["best-constant"]) & set(by["oracle"]))
            if not seeds:
                continue
            x, c, o = (np.array([by[k][s] for s in seeds]) for k in (a, "best-constant", "oracle"))
            if o.mean() - c.mean() < MIN_HEADROOM:
                out.append({"agent": a, "task": t, "headroom": float("nan"), "ci_low": float("nan"),
                            "ci_high": float("nan"), "episodes": len(seeds)})
                continue

            def share(idx):
                gap = o[idx].mean() - c[idx].mean()
                return (x[idx].mean() - c[idx].mean()) / gap if gap > 0 else float("nan")

            boots = np.array([share(rng.integers(0, len(seeds), len(seeds))) for _ in range(n_boot)])
            lo, hi = np.nanpercentile(boots, [2.5, 97.5]) if np.isfinite(boots).any() else (float("nan"),) * 2
            out.append({"agent": a, "task": t, "headroom": share(np.arange(len(seeds))), "ci_low": float(lo),
                        "ci_high": float(hi), "episodes": len(seeds)})
    return out


def paired_difference(records: list[dict], task: str, agent: str, reference: str, n_boot: int = 2000,
                      rng=None) -> tuple[float, float, float, int]:
    """Mean of (agent - reference) over the evaluation seeds both played on `task`, with a 95 %
    CI resampling those seeds -> (difference, ci_low, ci_high, seeds).

    An agent with several records on one seed (several training seeds) is averaged per seed
    first, so each evaluation episode counts once. NaN (and 0 seeds) where they share none."""
    def per_seed(name):
        by = {}
        for r in records:
            if r["agent"] == name and r["task"] == task:
                by.setdefault(r["seed"], []).append(r["score"])
        return {s: float(np.mean(v)) for s, v in by.items()}
    a, ref = per_seed(agent), per_seed(reference)
    seeds = sorted(set(a) & set(ref))
    if not seeds:
        return float("nan"), float("nan"), float("nan"), 0
    d = np.array([a[s] - ref[s] for s in seeds])
    rng = rng if rng is not None else np.random.default_rng(0)
    boots = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(n_boot)]
    return float(d.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5)), len(seeds)


def paired_markdown(records: list[dict], reference: str, agents=None) -> str:
    """An agent x task table of `paired_difference` against `reference` (every other agent that
    shares seeds with it, or `agents`); empty when the reference did not play."""
    tasks = list(dict.fromkeys(r["task"] for r in records if r["agent"] == reference))
    agents = [a for a in (agents or dict.fromkeys(r["agent"] for r in records)) if a != reference]
    rows = []
    for t in tasks:
        for a in agents:
            d, lo, hi, n = paired_difference(records, t, a, reference)
            if n:
                rows.append({"agent": a, "task": t, "d": d, "lo": lo, "hi": hi})
    if not rows:
        return ""
    return _table(rows, lambda r: "" if r is None else f"{r['d']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}]")


def _table(rows: list[dict], text) -> str:
    """An agent x task markdown table; `text(row or None)` renders a cell."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    agents = list(dict.fromkeys(r["agent"] for r in rows))
    cell = {(r["agent"], r["task"]): r for r in rows}
    out = ["| agent | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for a in agents:
        out.append(f"| {label(a)} | " + " | ".join(text(cell.get((a, t))) for t in tasks) + " |")
    return "\n".join(out)


def _headroom_cell(r) -> str:
    if r is None:
        return ""
    if r["headroom"] != r["headroom"]:
        return "no headroom"
    return f"{100 * r['headroom']:.0f} % [{100 * r['ci_low']:.0f}, {100 * r['ci_high']:.0f}]"


def headroom_markdown(rows: list[dict]) -> str:
    return _table(rows, _headroom_cell)


def label(agent: str) -> str:
    return f"{agent} *" if agent in REFERENCES else agent


def footnotes(agents) -> str:
    return "\n".join(f"\\* {a}: {REFERENCES[a]}." for a in dict.fromkeys(agents) if a in REFERENCES)


def markdown(rows: list[dict]) -> str:
    return _table(rows, lambda r: "" if r is None else f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] "
                                                        f"(IQM {r['iqm']:.3f}, n={r['episodes']})")
