"""The leaderboard's aggregates by rliable (Agarwal et al., "Deep RL at the edge of the statistical
precipice", NeurIPS 2021): across the tasks, each agent's IQM, mean, median and optimality gap with
stratified-bootstrap 95 % CIs, the probability that one agent beats another on a task, and
performance profiles (the share of episodes scoring above tau) with their CIs.

    python -m igym_marl.agents.analysis.rliable_report docs/leaderboard_episodes.json \\
        --markdown docs/leaderboard_rliable.md --plot docs/img/performance_profiles.png

The input is ``evaluate.py --out``'s per-episode records (``make leaderboard`` keeps the
leaderboard's in docs/leaderboard_episodes.json). An agent's scores form rliable's matrix
[episodes x tasks]: row k holds the k-th held-out seed on every task, and the bootstrap resamples
the episodes within each task (stratified), as the hand-written CI of igym_marl.agents.analysis.stats
does. Scores are already normalized (the share of the offered value served within SLO, 1 at best),
so tau runs over 0..1 and the optimality gap is against 1.

rliable 1.2.0 requires arch < 8, and arch 7 does not import under pandas 3, which the main
environment runs: this module runs where the ``rliable`` extra is installed, in its own environment
(``make test-rliable`` builds .venv-rliable, with pandas 2). Its bootstrap draws from numpy's global
generator, so each call seeds it (``seed``): the same records give the same report.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

METRICS = ("IQM", "mean", "median", "optimality gap")
TAUS = np.linspace(0.0, 1.0, 51)


def _rliable():
    try:
        from rliable import library, metrics
    except ImportError as e:
        raise ImportError(f"the rliable report needs the rliable extra, in its own environment (make test-rliable "
                          f"builds .venv-rliable; rliable 1.2.0 requires arch < 8, which needs pandas < 3): {e}") from None
    return library, metrics


def score_matrices(records: list[dict], agents=None, tasks=None) -> tuple[dict, list[str], list[int]]:
    """{agent: float[episodes, tasks]}, the tasks and the seeds. Every agent must have played every
    task on the same seeds, since row k pairs the k-th seed across tasks; a gap is an error that
    names it."""
    if not records:
        raise ValueError("no records: give evaluate.py --out's per-episode records")
    for i, r in enumerate(records):
        missing = [k for k in ("agent", "task", "seed", "score") if k not in r]
        if missing:
            raise ValueError(f"record {i} has no {', '.join(missing)}: these are evaluate.py --out's per-episode records")
    agents = list(agents or dict.fromkeys(r["agent"] for r in records))
    tasks = list(tasks or dict.fromkeys(r["task"] for r in records))
    table = {(r["agent"], r["task"], int(r["seed"])): float(r["score"]) for r in records}
    seeds = sorted({s for (a, t, s) in table if a == agents[0] and t == tasks[0]})
    if not seeds:
        raise ValueError(f"agent {agents[0]!r} has no episode on task {tasks[0]!r}")
    out = {}
    for a in agents:
        m = np.empty((len(seeds), len(tasks)))
        for j, t in enumerate(tasks):
            for k, s in enumerate(seeds):
                if (a, t, s) not in table:
                    raise ValueError(f"agent {a!r} has no episode on task {t!r} at seed {s}: rliable's matrix needs "
                                     f"every agent on every task at the same seeds ({seeds[0]}..{seeds[-1]})")
                m[k, j] = table[(a, t, s)]
        extra = {s for (x, t, s) in table if x == a and t in tasks} - set(seeds)
        if extra:
            raise ValueError(f"agent {a!r} has episodes at seeds {sorted(extra)[:3]} that {agents[0]!r} lacks on "
                             f"{tasks[0]!r}")
        out[a] = m
    return out, tasks, seeds


def _seed(seed: int) -> None:
    """rliable's stratified bootstraps draw their resamples from numpy's global generator (arch's own
    generator, its random_state, goes unused by them), so seeding that one makes a report reproducible."""
    np.random.seed(seed)


def aggregates(matrices: dict, reps: int = 2000, seed: int = 0) -> dict:
    """{agent: {metric: (point, low, high)}} for METRICS, 95 % stratified-bootstrap CIs."""
    library, metrics = _rliable()

    def agg(x):
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x), metrics.aggregate_median(x),
                         metrics.aggregate_optimality_gap(x, 1.0)])
    _seed(seed)
    point, ci = library.get_interval_estimates(matrices, agg, reps=reps)
    return {a: {m: (float(point[a][i]), float(ci[a][0][i]), float(ci[a][1][i])) for i, m in enumerate(METRICS)}
            for a in matrices}


def improvement(matrices: dict, pairs, reps: int = 2000, seed: int = 0) -> dict:
    """{(x, y): (P(x > y), low, high)}: the probability that agent x scores above agent y on an
    episode of a task, averaged over the tasks (ties count a half), with its 95 % CI."""
    library, metrics = _rliable()
    pairs = list(pairs)
    for x, y in pairs:
        for a in (x, y):
            if a not in matrices:
                raise ValueError(f"agent {a!r} has no scores; agents: {', '.join(matrices)}")
    data = {f"{x}|{y}": (matrices[x], matrices[y]) for x, y in pairs}
    _seed(seed)
    point, ci = library.get_interval_estimates(
        data, lambda a, b: np.array([metrics.probability_of_improvement(a, b)]), reps=reps)
    return {(x, y): (float(point[f"{x}|{y}"][0]), float(ci[f"{x}|{y}"][0][0]), float(ci[f"{x}|{y}"][1][0]))
            for x, y in pairs}


def profiles(matrices: dict, reps: int = 2000, seed: int = 0) -> tuple[dict, dict]:
    """Performance profiles over TAUS: {agent: share of episodes scoring above tau}, and their CIs."""
    library, _ = _rliable()
    _seed(seed)
    return library.create_performance_profile(matrices, TAUS, reps=reps)


def plot_profiles(matrices: dict, path: str | Path, reps: int = 2000, seed: int = 0) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rliable import plot_utils
    from matplotlib.lines import Line2D
    prof, cis = profiles(matrices, reps, seed)
    palette = plt.get_cmap("tab10")
    colors = {a: palette(i % 10) for i, a in enumerate(prof)}
    fig, ax = plt.subplots(figsize=(7, 4))
    plot_utils.plot_performance_profiles(prof, TAUS, performance_profile_cis=cis, ax=ax, colors=colors,
                                         xlabel=r"score $\tau$ (share of the offered value served within SLO)",
                                         ylabel=r"share of episodes scoring above $\tau$", labelsize="medium",
                                         ticklabelsize="medium")
    ax.legend([Line2D([0], [0], color=colors[a], lw=2) for a in prof], list(prof), loc="lower left", fontsize=8)
    ax.set_title("performance profiles, every task's held-out episodes (rliable)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(agg: dict, imp: dict, tasks: list[str], seeds: list[int], reps: int) -> str:
    from igym_marl.agents.analysis.stats import footnotes, label
    head = (f"Across {', '.join(tasks)}: {len(seeds)} held-out episodes per task (seeds {seeds[0]}..{seeds[-1]}), "
            f"95 % stratified-bootstrap CIs ({reps} resamples), computed by rliable "
            f"(`python -m igym_marl.agents.analysis.rliable_report`). The optimality gap is the mean shortfall "
            f"below a score of 1.\n\n")
    rows = ["| agent | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for a, ms in agg.items():
        rows.append(f"| {label(a)} | " + " | ".join(f"{p:.3f} [{lo:.3f}, {hi:.3f}]" for p, lo, hi in ms.values()) + " |")
    text = head + "\n".join(rows) + "\n"
    if imp:
        text += ("\nProbability of improvement, P(X > Y): the chance that X scores above Y on an episode of a task, "
                 "averaged over the tasks (0.5: level). rliable treats the two agents' episodes as independent "
                 "samples; the leaderboard's paired differences (docs/leaderboard.md) compare them seed by seed "
                 "and are the sharper test when both played the same seeds:\n\n"
                 "| X | Y | P(X > Y) [95 % CI] |\n|---|---|---|\n")
        text += "".join(f"| {label(x)} | {label(y)} | {p:.3f} [{lo:.3f}, {hi:.3f}] |\n"
                        for (x, y), (p, lo, hi) in imp.items())
    notes = footnotes(agg)
    return text + (f"\n{notes}\n" if notes else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m igym_marl.agents.analysis.rliable_report",
                                 description="The leaderboard's aggregates by rliable: IQM, mean, median, optimality "
                                             "gap, probability of improvement and performance profiles")
    ap.add_argument("records", help="evaluate.py --out's per-episode records (JSON)")
    ap.add_argument("--markdown", default=None, help="write the tables here")
    ap.add_argument("--plot", default=None, help="write the performance profiles here (PNG)")
    ap.add_argument("--reference", default="heuristic",
                    help="the agent every other is compared with for the probability of improvement (default heuristic)")
    ap.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    ap.add_argument("--seed", type=int, default=0, help="the bootstrap's seed (default 0)")
    args = ap.parse_args(argv)
    if args.reps < 100:
        ap.error(f"--reps={args.reps} must be >= 100")
    try:
        records = json.loads(Path(args.records).read_text())
        matrices, tasks, seeds = score_matrices(records)
        if args.reference not in matrices:
            raise ValueError(f"--reference {args.reference!r} has no scores; agents: {', '.join(matrices)}")
    except (OSError, ValueError) as e:
        ap.error(str(e))
    agg = aggregates(matrices, args.reps, args.seed)
    imp = improvement(matrices, [(a, args.reference) for a in matrices if a != args.reference], args.reps, args.seed)
    text = markdown(agg, imp, tasks, seeds, args.reps)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    if args.plot:
        plot_profiles(matrices, args.plot, args.reps, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
