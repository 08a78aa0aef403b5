"""Evaluate policies on igym-marl tasks over held-out seeds, with honest statistics.

    python evaluate.py --agent heuristic --task all --episodes 10
    python evaluate.py --agent random,vllm-default,best-constant,heuristic --task bursty_workload --out r.json
    python evaluate.py --compare --episodes 10 --workers 2 --markdown results.md --plot scores.png
    python evaluate.py --agent mappo --task adversarial_multitenant --checkpoint runs/x/checkpoint.pt
    python evaluate.py --agent heuristic --task bursty_workload --timeline heuristic.png

Agents: random, vllm-default, constant:KNOB=VALUE,..., best-constant, heuristic, llm, ppo, mappo.
Seeds: evaluation uses 1,000,000 + i (i < --episodes) unless --seeds lists others; every seed
must lie in the evaluation range 1,000,000..1,999,999, disjoint from training seeds (0..999,999).
Per episode: score, its components and the main metrics (JSON with --out, CSV beside it).
Summary per agent and task: mean, interquartile mean (IQM) and a 95 % bootstrap confidence
interval of the mean (2,000 resamples of the episodes; across tasks, stratified: resampled
within each task), printed as a table and written as Markdown with --markdown.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


from agents.stats import MIN_HEADROOM, REFERENCES, footnotes, headroom, headroom_markdown, label, markdown, summarize

COMPARE = ("random", "vllm-default", "best-constant", "heuristic", "mappo", "oracle")
EVAL_START, EVAL_END = 1_000_000, 2_000_000


# ---------------------------------------------------------------------------------- running
def _job(args):
    name, task, seed, options = args
    from agents import make_policy
    from agents.evaluation import run_episode
    policy = make_policy(name, **options)
    return run_episode(policy, task, seed, agent_name=name)


def run_jobs(jobs: list, workers: int, progress: bool) -> list[dict]:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    bar = tqdm(total=len(jobs), desc="episodes", disable=not progress or tqdm is None, file=sys.stderr)
    out = []
    if workers <= 1:
        for j in jobs:
            out.append(_job(j))
            bar.update(1)
    else:
        # spawn: a worker must not inherit a lock held by torch or numba threads in the parent
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as ex:
            for rec in ex.map(_job, jobs):
                out.append(rec)
                bar.update(1)
    bar.close()
    return out


def plot_scores(rows: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    tasks = [t for t in dict.fromkeys(r["task"] for r in rows) if t != "all"]
    agents = list(dict.fromkeys(r["agent"] for r in rows))
    cell = {(r["agent"], r["task"]): r for r in rows}
    width = 0.8 / len(agents)
    fig, ax = plt.subplots(figsize=(2.5 + 2.2 * len(tasks), 4))
    for i, a in enumerate(agents):
        xs, ys, err = [], [], [[], []]
        for j, t in enumerate(tasks):
            r = cell.get((a, t))
            if r:
                xs.append(j + (i - (len(agents) - 1) / 2) * width)
                ys.append(r["mean"])
                err[0].append(r["mean"] - r["ci_low"])
                err[1].append(r["ci_high"] - r["mean"])
        ax.bar(xs, ys, width, yerr=err, capsize=3, label=label(a),
               **({"hatch": "//", "edgecolor": "0.3", "fill": False} if a in REFERENCES else {}))
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks)
    ax.set_ylabel("episode score (mean, 95 % CI)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_timeline_of(name: str, task: str, seed: int, options: dict, path: str) -> float:
    from agents import make_policy
    from agents.evaluation import run_episode
    from igym_marl import serving_v0
    from igym_marl.envs import save_timeline
    env = serving_v0.parallel_env(task=task)
    run_episode(make_policy(name, **options), task, seed, agent_name=name, env=env)
    save_timeline(env, path)
    return env.score


# ---------------------------------------------------------------------------------- CLI
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", default=None, help="policy name(s), comma-separated")
    ap.add_argument("--task", default="all", help="task id, alias, or all")
    ap.add_argument("--episodes", type=int, default=10, help="held-out episodes per agent and task")
    ap.add_argument("--seeds", default=None, help="explicit comma-separated evaluation seeds (1,000,000..1,999,999)")
    ap.add_argument("--checkpoint", default=None, help="checkpoint file or folder of <task>.pt (ppo, mappo)")
    ap.add_argument("--workers", type=int, default=1, help="processes running episodes")
    ap.add_argument("--out", default=None, help="write per-episode records as JSON (and CSV beside it)")
    ap.add_argument("--markdown", default=None, help="write the summary table as Markdown")
    ap.add_argument("--plot", default=None, help="write a bar chart of scores with CIs (PNG)")
    ap.add_argument("--timeline", default=None, help="write the first episode's timeline of the first agent (PNG)")
    ap.add_argument("--compare", action="store_true", help=f"the leaderboard: {', '.join(COMPARE)} on every task")
    ap.add_argument("--llm-base-url", default=None)
    ap.add_argument("--llm-model", default=None)
    ap.add_argument("--llm-api-key", default=None)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.compare and args.agent:
        ap.error("--compare runs its own agents; drop --agent")
    if not args.compare and not args.agent:
        ap.error("give --agent NAME[,NAME...] or --compare")
    if args.episodes < 1:
        ap.error(f"--episodes {args.episodes}: must be >= 1")
    if args.workers < 1:
        ap.error(f"--workers {args.workers}: must be >= 1")
    return args, ap


def main(argv=None) -> int:
    args, ap = parse_args(argv)
    from agents import make_policy
    from igym_marl.workloads import TASKS, get_task
    agents = list(COMPARE) if args.compare else [a.strip() for a in args.agent.split(",") if a.strip()]
    try:
        tasks = list(TASKS) if args.task == "all" else [get_task(args.task).id]
    except ValueError as e:
        ap.error(str(e))
    if args.seeds:
        try:
            seeds = [int(s) for s in args.seeds.split(",")]
        except ValueError:
            ap.error(f"--seeds {args.seeds!r}: expected comma-separated integers")
        bad = [s for s in seeds if not EVAL_START <= s < EVAL_END]
        if bad:
            ap.error(f"--seeds {bad}: evaluation seeds must lie in {EVAL_START}..{EVAL_END - 1} "
                     f"(0..{EVAL_START - 1} are training seeds)")
    else:
        seeds = [EVAL_START + i for i in range(args.episodes)]
    options = {"checkpoint": args.checkpoint, "llm_base_url": args.llm_base_url, "llm_model": args.llm_model,
               "llm_api_key": args.llm_api_key}
    # fail fast on bad names, missing files and incompatible checkpoints, before any episode runs
    for a in agents:
        try:
            p = make_policy(a, **options)
            for t in tasks:
                p.reset(get_task(t), seeds[0])
        except (ValueError, FileNotFoundError) as e:
            ap.error(f"--agent {a}: {e}")
    jobs = [(a, t, s, options) for a in agents for t in tasks for s in seeds]
    records = run_jobs(jobs, args.workers, not args.no_progress)
    rows = summarize(records)
    report = markdown(rows)
    room = headroom(records)
    if room:
        report += ("\n\nShare of the headroom captured, (score - best constant) / (oracle - best constant), "
                   "mean [95 % CI] over the same seeds (\"no headroom\": the oracle is less than "
                   f"{MIN_HEADROOM} above the best constant):\n\n" + headroom_markdown(room))
    notes = footnotes(agents)
    if notes:
        report += "\n\n" + notes
    print(report)
    if args.out:
        Path(args.out).write_text(json.dumps(records, indent=1) + "\n")
        import pandas as pd
        pd.DataFrame(records).to_csv(Path(args.out).with_suffix(".csv"), index=False)
    if args.markdown:
        Path(args.markdown).write_text(report + "\n")
    if args.plot:
        plot_scores(rows, args.plot)
    if args.timeline:
        score = save_timeline_of(agents[0], tasks[0], seeds[0], options, args.timeline)
        print(f"timeline of {agents[0]} on {tasks[0]}, seed {seeds[0]} (score {score:.3f}): {args.timeline}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
