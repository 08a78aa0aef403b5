"""Evaluate policies on igym-marl tasks over held-out seeds, with honest statistics.

    python evaluate.py --agent heuristic --task all --episodes 10
    python evaluate.py --agent random,vllm-default,best-constant,heuristic --task bursty_workload,static_workload \\
        --out results/r.json
    python evaluate.py --compare --episodes 10 --workers 2 --markdown results.md --plot scores.png
    python evaluate.py --agent mappo --task adversarial_multitenant --checkpoint runs/x/checkpoint.pt
    python evaluate.py --agent "constant:batch_cap=64+kv_budget_fraction=0.2" --task static_workload
    python evaluate.py --agent heuristic,best-constant --trace data/traces/azure_conv_2023_1h.csv --trace-load 0.8 \\
        --trace-windows 120
    python evaluate.py --agent heuristic --task bursty_workload --timeline heuristic.png

Agents: random, vllm-default, constant:KNOB=VALUE+KNOB=VALUE..., best-constant, heuristic, llm,
ppo, mappo, rllib (the ray extra; --checkpoint), and two probes: oracle (clairvoyant) and mpc (the
oracle's search on a forecast). Inside --agent, commas separate agents; a constant's knobs are
joined by "+" (a comma followed by KNOB=VALUE also continues the constant before it).
Cluster tasks (--task cluster_diurnal, cluster_bursty, cluster_conversation) take the cluster
agents: random, vllm-default, rule:RULE (round_robin, prefix_affinity, scored:0.43, ...),
best-constant, hpa, oracle, mappo.
Seeds: evaluation uses 1,000,000 + i (i < --episodes) unless --seeds lists others; every seed
must lie in the evaluation range 1,000,000..1,999,999, disjoint from training seeds (0..999,999).
Traces: --trace replays a BurstGPT or Azure file as the task `trace`. Nobody searched a best
constant for it: best-constant (and the oracle's anchor) fall back to vLLM's default, and the
report says so.
Per episode: score, its components and the main metrics (JSON with --out, CSV beside it; the JSON
is rewritten as each episode finishes, so an interrupted run keeps what it did). An episode that
raises is reported with its error, the others still count, and the exit status is 1.
Summary per agent and task: mean, interquartile mean (IQM) and a 95 % bootstrap confidence
interval of the mean (2,000 resamples of the episodes; across tasks, stratified: resampled
within each task), printed as a table and written as Markdown with --markdown. With the heuristic
among the agents, also each other agent's paired difference against it: (score - heuristic's score)
on the same seed, mean and 95 % CI resampling the seeds, the test of "better than the heuristic"
that the episodes' own spread does not blur.
LLM: the key comes from IGYM_LLM_API_KEY / OPENAI_API_KEY or --llm-api-key-file, never from the
command line (other users can read it in the process list).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import signal
import sys
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import lru_cache
from pathlib import Path


from igym_marl.agents.analysis.stats import (MIN_HEADROOM, REFERENCES, footnotes, headroom, headroom_markdown, label, markdown,
                          paired_markdown, summarize)

COMPARE = ("random", "vllm-default", "best-constant", "heuristic", "mappo", "oracle")


# ---------------------------------------------------------------------------------- running
@lru_cache(maxsize=8)
def _task_of(ref: str):
    """A task from its reference: an id, or a JSON object of trace options (parsed once per process)."""
    from igym_marl.workloads import get_task
    from igym_marl.workloads.cluster_tasks import CLUSTER_TASK_IDS
    if ref.startswith("{"):
        return get_task(**json.loads(ref))
    if ref in CLUSTER_TASK_IDS:
        return ref  # the episode loop builds the cluster env from its id
    return get_task(ref)


def _job(args):
    name, task_ref, seed, options = args
    from igym_marl.agents import make_policy
    from igym_marl.agents.cluster.evaluate import make_cluster_policy
    from igym_marl.agents.evaluation import run_episode
    from igym_marl.workloads.cluster_tasks import CLUSTER_TASK_IDS
    cluster = task_ref in CLUSTER_TASK_IDS
    policy = make_cluster_policy(name, task_ref, **options) if cluster else make_policy(name, **options)
    return run_episode(policy, _task_of(task_ref), seed, agent_name=name)


def _safe_job(args):
    """The episode's record, or a record of its failure: one failing episode loses no other."""
    try:
        return _job(args)
    except Exception as e:  # reported, counted, and the exit status says so
        name, task_ref, seed, _ = args
        return {"agent": name, "task": _task_label(task_ref), "seed": seed, "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(limit=6)}


def _task_label(ref: str) -> str:
    return "trace" if ref.startswith("{") else ref


class Interrupted(Exception):
    """Ctrl-C during the episodes; `records` holds those that finished."""

    def __init__(self, records: list[dict]):
        super().__init__("interrupted")
        self.records = records


def _ignore_sigint() -> None:
    """In worker processes: Ctrl-C is the parent's to handle (it stops them), not theirs to print."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_jobs(jobs: list, workers: int, progress: bool, on_record=None) -> list[dict]:
    """Run every job; records come back in job order. `on_record(records_so_far)` is called as
    each episode finishes. Ctrl-C stops the workers and raises Interrupted with the finished records."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    bar = tqdm(total=len(jobs), desc="episodes", disable=not progress or tqdm is None, file=sys.stderr)
    done: dict[int, dict] = {}

    def finished(i, rec):
        done[i] = rec
        bar.update(1)
        if on_record is not None:
            on_record([done[k] for k in sorted(done)])

    try:
        if workers <= 1:
            for i, j in enumerate(jobs):
                finished(i, _safe_job(j))
        else:
            # spawn: a worker must not inherit a lock held by torch or numba threads in the parent
            ex = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_ignore_sigint)
            try:
                futures = {ex.submit(_safe_job, j): i for i, j in enumerate(jobs)}
                for f in as_completed(futures):
                    i = futures[f]
                    try:
                        rec = f.result()
                    except Exception as e:  # the worker process itself died
                        name, task_ref, seed, _ = jobs[i]
                        rec = {"agent": name, "task": _task_label(task_ref), "seed": seed,
                               "error": f"worker failed: {type(e).__name__}: {e}"}
                    finished(i, rec)
            except KeyboardInterrupt:
                for proc in list(getattr(ex, "_processes", {}).values()):  # running episodes are abandoned
                    proc.terminate()
                ex.shutdown(wait=True, cancel_futures=True)
                raise
            ex.shutdown()
    except KeyboardInterrupt:
        bar.close()
        raise Interrupted([done[k] for k in sorted(done)]) from None
    bar.close()
    return [done[k] for k in sorted(done)]


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


def save_timeline_of(name: str, task_ref: str, seed: int, options: dict, path: str) -> float:
    from igym_marl.agents import make_policy
    from igym_marl.agents.evaluation import run_episode
    from igym_marl import serving_v0
    from igym_marl.envs import save_timeline
    env = serving_v0.parallel_env(task=_task_of(task_ref))
    run_episode(make_policy(name, **options), env.task, seed, agent_name=name, env=env)
    save_timeline(env, path)
    return env.score


# ---------------------------------------------------------------------------------- CLI
class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def split_agents(text: str) -> list[str]:
    """Agents from --agent: split at commas, but a piece of the form KNOB=VALUE continues the
    constant:... before it, so "constant:batch_cap=64,kv_budget_fraction=0.2" stays one agent."""
    out: list[str] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        if "=" in piece and ":" not in piece and out and out[-1].startswith("constant:"):
            out[-1] += "+" + piece
        else:
            out.append(piece)
    return out


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=_Formatter)
    ap.add_argument("--agent", default=None, help="policy name(s), comma-separated: random, vllm-default, "
                    "constant:KNOB=VALUE+..., best-constant, heuristic, llm, ppo, mappo, rllib, oracle, mpc (cluster "
                    "tasks: random, vllm-default, rule:RULE, best-constant, hpa, oracle, mappo)")
    ap.add_argument("--task", default="all", help="task id(s) or aliases, comma-separated, or all (the "
                    "single-replica tasks); cluster tasks by id")
    ap.add_argument("--trace", default=None, metavar="PATH", help="replay this trace file (BurstGPT or Azure CSV) as "
                                                                   "the task `trace` instead of --task")
    ap.add_argument("--trace-format", default="auto", help="the trace's format: auto (from its header), burstgpt, "
                                                           "azure")
    ap.add_argument("--trace-load", type=float, default=None, help="scale the trace's rate to this multiple of the "
                    "replica's measured capacity (production traces are cluster aggregates); default: as recorded")
    ap.add_argument("--trace-windows", type=int, default=None, help="episodes of this many windows, each starting at "
                    "a seeded random point of the trace; default: one episode replays the whole trace")
    ap.add_argument("--episodes", type=int, default=10, help="held-out episodes per agent and task")
    ap.add_argument("--seeds", default=None, help="explicit comma-separated evaluation seeds (1,000,000..1,999,999)")
    ap.add_argument("--checkpoint", default=None, help="checkpoint file or folder of <task>.pt (ppo, mappo)")
    ap.add_argument("--workers", type=int, default=1, help="processes running episodes")
    ap.add_argument("--out", default=None, help="write per-episode records as JSON (and CSV beside it)")
    ap.add_argument("--markdown", default=None, help="write the summary table as Markdown")
    ap.add_argument("--marl-eval", default=None, metavar="PATH",
                    help="write the episodes in marl-eval's JSON format (what marl-eval and BenchMARL read)")
    ap.add_argument("--plot", default=None, help="write a bar chart of scores with CIs (PNG)")
    ap.add_argument("--timeline", default=None, help="write the first episode's timeline of the first agent (PNG)")
    ap.add_argument("--compare", action="store_true", help=f"the leaderboard: {', '.join(COMPARE)} on every task")
    ap.add_argument("--llm-base-url", default=None, help="OpenAI-compatible endpoint (or IGYM_LLM_BASE_URL)")
    ap.add_argument("--llm-model", default=None, help="model name (or IGYM_LLM_MODEL)")
    ap.add_argument("--llm-api-key-file", default=None, help="file whose first line is the API key (or "
                                                              "IGYM_LLM_API_KEY / OPENAI_API_KEY)")
    ap.add_argument("--llm-timeout", type=float, default=30.0, help="deadline per window for the LLM's answer, "
                                                                    "seconds (then the heuristic decides)")
    ap.add_argument("--llm-api-key", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.llm_api_key is not None:
        ap.error("--llm-api-key would put the key in the process list, where any user of the machine can read it; "
                 "set IGYM_LLM_API_KEY or give --llm-api-key-file")
    if args.compare and args.agent:
        ap.error("--compare runs its own agents; drop --agent")
    if not args.compare and not args.agent:
        ap.error("give --agent NAME[,NAME...] or --compare")
    if args.episodes < 1:
        ap.error(f"--episodes {args.episodes}: must be >= 1")
    if args.workers < 1:
        ap.error(f"--workers {args.workers}: must be >= 1")
    if not args.llm_timeout > 0 or args.llm_timeout == float("inf"):
        ap.error(f"--llm-timeout {args.llm_timeout}: must be a positive number of seconds")
    if args.trace is None and (args.trace_format != "auto" or args.trace_load is not None or
                               args.trace_windows is not None):
        ap.error("--trace-format, --trace-load and --trace-windows apply to --trace PATH")
    if args.trace is not None and args.task != "all":
        ap.error("--trace replaces --task: give one")
    return args, ap


def task_refs(args, error) -> list[str]:
    """The tasks to run, as references workers can rebuild (trace options as JSON)."""
    from igym_marl.workloads import TASKS, get_task
    if args.trace is not None:
        opts = {"task_id": "trace", "path": str(Path(args.trace).resolve()), "format": args.trace_format}
        if args.trace_load is not None:
            opts["load"] = args.trace_load
        if args.trace_windows is not None:
            opts.update(episode_windows=args.trace_windows, random_start=True)
        ref = json.dumps(opts, sort_keys=True)
        try:
            _task_of(ref)
        except (ValueError, FileNotFoundError) as e:  # TraceFormatError is a ValueError
            error(f"--trace {args.trace}: {e}")
        return [ref]
    if args.task == "all":
        return list(TASKS)
    from igym_marl.workloads.cluster_tasks import CLUSTER_TASK_IDS
    refs = []
    for t in (x.strip() for x in args.task.split(",") if x.strip()):
        if t in CLUSTER_TASK_IDS:
            refs.append(t)
            continue
        try:
            refs.append(get_task(t).id)
        except ValueError as e:
            error(f"--task: {e}; or a cluster task: {', '.join(CLUSTER_TASK_IDS)}")
    if not refs:
        error(f"--task {args.task!r}: no task named")
    return list(dict.fromkeys(refs))


def check_agents(agents: list[str], refs: list[str], seed: int, options: dict, error) -> None:
    """Fail fast on bad names, missing files and incompatible checkpoints, before any episode runs
    (a cluster task's agents come from the cluster registry)."""
    from igym_marl.agents import make_policy
    from igym_marl.agents.cluster.evaluate import make_cluster_policy
    from igym_marl.workloads.cluster_tasks import CLUSTER_TASK_IDS
    for a in agents:
        try:
            for ref in refs:
                if ref in CLUSTER_TASK_IDS:
                    make_cluster_policy(a, ref, **options)
                else:
                    make_policy(a, **options).reset(_task_of(ref), seed)
        except (ValueError, FileNotFoundError) as e:
            error(f"--agent {a}: {e}")


def prepare_outputs(args, error) -> None:
    """Create the folders of every output path and check, by creating the file, that it can be
    written, before any episode runs."""
    from igym_marl.agents.outputs import check_output_file
    for flag in ("out", "markdown", "plot", "timeline", "marl_eval"):
        path = getattr(args, flag)
        if path is not None:
            problem = check_output_file(path, f"--{flag.replace('_', '-')}")
            if problem:
                error(problem)


def write_records(records: list[dict], path: str) -> None:
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    tmp.write_text(json.dumps(records, indent=1) + "\n")
    tmp.replace(path)  # a reader never sees half a file


def eval_seeds(args, error) -> list[int]:
    """--seeds, checked (held-out range, no repeats), or the first --episodes evaluation seeds."""
    from igym_marl.workloads import EVAL_SEEDS
    start, end = EVAL_SEEDS.start, EVAL_SEEDS.stop
    if args.seeds is None:
        return [start + i for i in range(args.episodes)]
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        error(f"--seeds {args.seeds!r}: expected comma-separated integers")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        error(f"--seeds: {', '.join(map(str, repeated))} given more than once; an episode counts once")
    bad = [s for s in seeds if not start <= s < end]
    if bad:
        error(f"--seeds {bad}: evaluation seeds must lie in {start}..{end - 1} (0..{start - 1} are training seeds)")
    return seeds


NOTE_FLAGS = (("policy.fallback_vllm_default", "no best constant was searched for this task; vLLM's default "
                                               "configuration was used in its place"),
              ("policy.untuned", "no parameters were tuned for this task; it played vLLM's default configuration"),
              ("policy.anchor_vllm_default", "no best constant was searched for this task; its anchor and fallback "
                                             "was vLLM's default configuration"))
FEW_EPISODES = 5  # a confidence interval over fewer episodes is flagged


def report_of(records: list[dict], agents: list[str]) -> tuple[str, list[dict]]:
    """The Markdown report of finished episodes (summary table, headroom shares, paired differences
    against the heuristic, footnotes) and the summary rows."""
    rows = summarize(records)
    report = markdown(rows)
    room = headroom(records)
    if room:
        report += ("\n\nShare of the headroom captured, (score - best constant) / (oracle - best constant), "
                   "mean [95 % CI] over the same seeds (\"no headroom\": the oracle is less than "
                   f"{MIN_HEADROOM} above the best constant):\n\n" + headroom_markdown(room))
    paired = paired_markdown(records, "heuristic")
    if paired:
        report += ("\n\nPaired difference against the heuristic, (score - heuristic's) on the same seed, mean "
                   "[95 % CI] over the seeds:\n\n" + paired)
    notes = [footnotes(agents)] if footnotes(agents) else []
    for flag, what in NOTE_FLAGS:
        for a, t in sorted({(r["agent"], r["task"]) for r in records if r.get(flag)}):
            notes.append(f"\\* {a} on {t}: {what}.")
    few = sorted({r["task"] for r in records
                  if sum(1 for x in records if (x["agent"], x["task"]) == (r["agent"], r["task"])) < FEW_EPISODES})
    if few:
        notes.append(f"Warning: fewer than {FEW_EPISODES} episodes per agent on {', '.join(few)}: those intervals "
                     f"are too narrow to trust (a bootstrap over 1 episode has width 0); use --episodes 10 or more.")
    if notes:
        report += "\n\n" + "\n".join(notes)
    return report, rows


def _print_failures(failures: list[dict], total: int, out) -> None:
    print(f"\n{len(failures)} of {total} episodes failed:", file=sys.stderr)
    for f in failures[:10]:
        print(f"  {f['agent']} on {f['task']}, seed {f['seed']}: {f['error']}", file=sys.stderr)
    if len(failures) > 10:
        print(f"  ... and {len(failures) - 10} more" + (f" (all in {out})" if out else ""), file=sys.stderr)


def main(argv=None) -> int:
    args, ap = parse_args(argv)
    agents = list(COMPARE) if args.compare else split_agents(args.agent)
    refs = task_refs(args, ap.error)
    seeds = eval_seeds(args, ap.error)
    options = {"checkpoint": args.checkpoint, "llm_base_url": args.llm_base_url, "llm_model": args.llm_model,
               "llm_api_key_file": args.llm_api_key_file, "llm_timeout": args.llm_timeout}
    prepare_outputs(args, ap.error)
    check_agents(agents, refs, seeds[0], options, ap.error)
    jobs = [(a, ref, s, options) for a in agents for ref in refs for s in seeds]
    on_record = (lambda recs: write_records(recs, args.out)) if args.out else None
    interrupted = False
    try:
        results = run_jobs(jobs, args.workers, not args.no_progress, on_record)
    except Interrupted as stop:  # Ctrl-C: keep and report what finished, quietly
        results, interrupted = stop.records, True
        print(f"\ninterrupted: {len(results)} of {len(jobs)} episodes finished; reporting those", file=sys.stderr)
    records = [r for r in results if "error" not in r]
    failures = [r for r in results if "error" in r]
    written = []
    if args.out:
        write_records(results, args.out)
        written.append(args.out)
        if records:
            import pandas as pd
            pd.DataFrame(records).to_csv(Path(args.out).with_suffix(".csv"), index=False)
            written.append(str(Path(args.out).with_suffix(".csv")))
    if records:
        report, rows = report_of(records, agents)
        print(report)
        if args.markdown:
            Path(args.markdown).write_text(report + "\n")
            written.append(args.markdown)
        if args.plot:
            plot_scores(rows, args.plot)
            written.append(args.plot)
        if args.marl_eval:
            from igym_marl.agents.analysis.marl_eval import from_episodes
            Path(args.marl_eval).write_text(json.dumps(from_episodes(records), indent=1) + "\n")
            written.append(args.marl_eval)
    if args.timeline and records and not interrupted:
        first = records[0]
        ref = next(ref for ref in refs if _task_label(ref) == first["task"])
        score = save_timeline_of(first["agent"], ref, first["seed"], options, args.timeline)
        print(f"timeline of {first['agent']} on {first['task']}, seed {first['seed']} (score {score:.3f})")
        written.append(args.timeline)
    for path in written:
        print(f"wrote {path}")
    if interrupted:
        return 130
    if failures:
        _print_failures(failures, len(results), args.out)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
