"""Train every learned policy the README reports, evaluate them with the baselines, draw the curves.

    python scripts/train_all.py [--tasks all] [--algos mappo,ippo,ppo-single] [--seeds 0,1,2] [--jobs 2]
                                [--episodes 10] [--scratch] [--ablation] [--ship] [--out runs]
                                [--ray-address ADDRESS|local] [--report-only]

* **recipe**: each algorithm, task and training seed with the recipe of train_marl.py (warm start
  from the tuned heuristic, DAgger, PPO) at RECIPE_STEPS steps: ``<out>/recipe/<task>-<algo>-s<seed>``.
* **scratch** (``--scratch``): the same from a uniform policy (``--warm-start none``) at the original
  benchmark's budgets (50k / 80k / 120k steps): ``<out>/scratch/...``.
* **ablation** (``--ablation``): on the two hard tasks, recipe MAPPO with one agent at a time held to
  vLLM's default for its knobs, or to the heuristic's part: ``<out>/ablation/<task>-<agent>-<rule>-s<seed>``.

Every trained policy plays the same held-out episodes (seeds 1,000,000..), and so do random,
vllm-default, best-constant, heuristic and the oracle; a cell pools all training seeds' episodes
(mean, IQM, 95 % bootstrap CI). The ablation reports each agent's marginal contribution, the full
MAPPO's score minus the variant's, with a 95 % CI (resampling the evaluation seeds, paired).
Outputs in ``<out>``: results.json (every episode record), results.md (the tables), and
docs/img/learning_curves.png; ``--ship`` copies the seed-0 recipe MAPPO and PPO checkpoints to
igym_marl/agents/checkpoints/; ``--report-only`` rewrites results.md from results.json alone. Runs already finished (summary.json) are kept, so an interrupted sweep
resumes; a failed run is reported by name and the others go on.

``--ray-address`` runs the training jobs and the evaluation episodes as Ray tasks (one CPU each)
on a cluster, or on a local Ray instance with ``local``; the repository is shipped to the workers
as the tasks' working directory, each finished run's files come back into ``<out>`` on this
machine, and each evaluation episode gets the checkpoint it plays as bytes. A trial whose task fails or whose worker dies is reported by name;
finished trials are skipped on the next call (needs the ray extra: ``pip install -e '.[ray]'``).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from igym_marl.agents.analysis.stats import headroom, headroom_markdown, markdown, paired_difference, paired_markdown, summarize
from igym_marl.envs import AGENTS
from igym_marl.workloads import EVAL_SEEDS

RECIPE_STEPS = {"static_workload": 20_000, "bursty_workload": 40_000, "adversarial_multitenant": 60_000,
                "mooncake_conversation": 20_000}
SCRATCH_STEPS = {"static_workload": 50_000, "bursty_workload": 80_000, "adversarial_multitenant": 120_000,
                 "mooncake_conversation": 50_000}
HARD = ("bursty_workload", "adversarial_multitenant")
BASELINES = ("random", "vllm-default", "best-constant", "heuristic", "oracle")
EVAL_START = EVAL_SEEDS.start
POLICY_OF = {"mappo": "mappo", "ippo": "mappo", "ppo-single": "ppo"}


def runs(args) -> list[dict]:
    tasks = list(RECIPE_STEPS) if args.tasks == "all" else args.tasks.split(",")
    algos, seeds = args.algos.split(","), [int(s) for s in args.seeds.split(",")]
    out = [{"kind": "recipe", "task": t, "algo": a, "seed": s, "steps": RECIPE_STEPS[t], "flags": [],
            "path": args.out / "recipe" / f"{t}-{a}-s{s}"} for t in tasks for a in algos for s in seeds]
    if args.scratch:
        out += [{"kind": "scratch", "task": t, "algo": a, "seed": s, "steps": SCRATCH_STEPS[t],
                 "flags": ["--warm-start", "none"], "path": args.out / "scratch" / f"{t}-{a}-s{s}"}
                for t in tasks for a in algos for s in seeds]
    if args.ablation:
        out += [{"kind": "ablation", "task": t, "algo": "mappo", "seed": s, "steps": RECIPE_STEPS[t],
                 "flags": ["--freeze", f"{ag}={rule}"], "variant": f"{ag} = {rule}",
                 "path": args.out / "ablation" / f"{t}-{ag}-{rule}-s{s}"}
                for t in tasks if t in HARD for ag in AGENTS for rule in ("vllm-default", "heuristic") for s in seeds]
    return out


def train_command(r: dict, out: Path, workers: int) -> list[str]:
    return [sys.executable, "train_marl.py", "--algo", r["algo"], "--task", r["task"], "--seed", str(r["seed"]),
            "--steps", str(r["steps"]), "--out", str(out), "--no-progress", "--workers", str(workers),
            "--eval-every", str(max(1, r["steps"] // 6)), *r["flags"]]


def train_one(r: dict, workers: int) -> str | None:
    """Train one run (skipped when finished); None, or the failure's name and reason."""
    if (r["path"] / "summary.json").exists():
        return None
    cmd = train_command(r, r["path"], workers)
    if r["path"].exists():
        cmd.append("--resume" if (r["path"] / "checkpoint.pt").exists() else "--force")
    p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        return f"{r['path'].name} ({r['kind']}): exit {p.returncode}: {p.stderr.strip().splitlines()[-1:]}"
    return None


def _run_remote(cmd: list[str], cwd: str | None) -> tuple[int, str, dict]:
    """On a Ray worker: train into a scratch folder and return (exit code, stderr tail, files)."""
    import os
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, *cmd[1:cmd.index("--out") + 1], str(out), *cmd[cmd.index("--out") + 2:]]
        p = subprocess.run(cmd, cwd=cwd or os.getcwd(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        files = {str(f.relative_to(out)): f.read_bytes() for f in out.rglob("*") if f.is_file()}
        return p.returncode, p.stderr[-2000:], files


def ray_session(address: str):
    """Connect to `address` (or start a local Ray instance for "local"), shipping the repository
    as the tasks' working directory when the workers are elsewhere."""
    try:
        import ray
    except ImportError:
        raise SystemExit("--ray-address needs the ray extra: pip install -e '.[ray]'") from None
    local = address == "local"
    runtime_env = None if local else {"working_dir": str(ROOT), "excludes": [
        ".git", ".venv", ".venv-ray", "runs", "docs", "**/__pycache__", "*.png"]}
    ray.init(address=None if local else address, runtime_env=runtime_env, include_dashboard=False,
             log_to_driver=False)
    return ray, local


def train_on_ray(ray, local: bool, todo: list[dict]) -> list[str]:
    """Every unfinished run as one Ray task; the runs' files come back into their folders here."""
    remote = ray.remote(num_cpus=1, max_retries=0)(_run_remote)
    pending = {}
    for r in todo:
        if (r["path"] / "summary.json").exists():
            continue
        cmd = train_command(r, r["path"], 0)
        pending[remote.remote(cmd, str(ROOT) if local else None)] = r
    failures = []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        r = pending.pop(done[0])
        try:
            code, err, files = ray.get(done[0])
        except Exception as e:  # the task raised, or its worker died
            failures.append(f"{r['path'].name} ({r['kind']}): the Ray task failed: {type(e).__name__}: "
                            f"{str(e).splitlines()[0][:200]}")
            continue
        if code != 0:
            failures.append(f"{r['path'].name} ({r['kind']}): exit {code}: {err.strip().splitlines()[-1:]}")
            continue
        if r["path"].exists():
            shutil.rmtree(r["path"])
        for name, data in files.items():
            (r["path"] / name).parent.mkdir(parents=True, exist_ok=True)
            (r["path"] / name).write_bytes(data)
    return failures


def _episode_shipped(job, checkpoint_bytes):
    """On a Ray worker: one evaluation episode, the checkpoint shipped as bytes (the driver's
    run folders are not on the workers)."""
    import tempfile
    if checkpoint_bytes is None:
        return _episode(job)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"
        path.write_bytes(checkpoint_bytes)
        return _episode((job[0], str(path), *job[2:]))


def _episode(job):
    name, checkpoint, task, seed, label = job
    from igym_marl.agents import make_policy
    from igym_marl.agents.evaluation import run_episode
    policy = make_policy(name, **({"checkpoint": checkpoint} if checkpoint else {}))
    return run_episode(policy, task, seed, agent_name=label)


def evaluate(trained: list[dict], tasks, episodes: int, jobs: int, baselines=BASELINES, ray=None) -> list[dict]:
    """Every policy on the held-out seeds: in `jobs` local processes, or as Ray tasks with `ray`."""
    work = [(b, None, t, EVAL_START + k, b) for t in tasks for b in baselines for k in range(episodes)]
    for r in trained:
        label = r["algo"] if r["kind"] == "recipe" else (f"{r['algo']} (from scratch)" if r["kind"] == "scratch"
                                                          else f"mappo, {r['variant']}")
        work += [(POLICY_OF[r["algo"]], str(r["path"] / "checkpoint.pt"), r["task"], EVAL_START + k, label)
                 for k in range(episodes)]
    if ray is not None:
        remote = ray.remote(num_cpus=1, max_retries=1)(_episode_shipped)
        blobs = {ck: ray.put(Path(ck).read_bytes()) for ck in {w[1] for w in work if w[1]}}
        records = ray.get([remote.remote(w, blobs[w[1]] if w[1] else None) for w in work])
    else:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as ex:
            records = list(ex.map(_episode, work, chunksize=4))
    for rec, w in zip(records, work):
        rec["checkpoint"] = w[1]
    return records


def marginal(records: list[dict], task: str, variant: str, rng) -> tuple[float, float, float]:
    """Full recipe MAPPO minus the variant, mean over (training seed, episode) pairs matched by
    evaluation seed, with a 95 % CI resampling the evaluation seeds."""
    return paired_difference(records, task, "mappo", f"mappo, {variant}", rng=rng)[:3]


def render(records: list[dict]) -> str:
    """The tables of results.md from the episode records: scores, headroom, paired differences
    against the heuristic and the best constant, and the ablation (agents named "mappo, VARIANT")."""
    agents = list(dict.fromkeys(r["agent"] for r in records))
    tasks = list(dict.fromkeys(r["task"] for r in records))
    report = markdown(summarize(records))
    if {"best-constant", "oracle"} <= set(agents):  # the headroom runs from the one to the other
        report += "\n\nShare of the headroom captured:\n\n" + headroom_markdown(headroom(records))
    learners = [a for a in agents if a not in BASELINES and ", " not in a]
    for ref in ("heuristic", "best-constant"):
        table = paired_markdown(records, ref, learners)
        if table:
            report += (f"\n\nPaired difference against {ref}, mean [95 % CI] over the evaluation seeds (each "
                       f"learner's training seeds averaged per seed):\n\n" + table)
    variants = [a.split(", ", 1)[1] for a in agents if a.startswith("mappo, ")]
    if variants:
        rng = np.random.default_rng(0)
        lines = ["| task | variant | score | marginal contribution of the agent [95 % CI] |", "|---|---|---|---|"]
        for task in tasks:
            for v in variants:
                scores = [r["score"] for r in records if r["agent"] == f"mappo, {v}" and r["task"] == task]
                if scores:
                    m, lo, hi = marginal(records, task, v, rng)
                    lines.append(f"| {task} | {v} | {np.mean(scores):.3f} | {m:+.3f} [{lo:+.3f}, {hi:+.3f}] |")
        report += "\n\nAblation (recipe MAPPO with one agent held to a rule):\n\n" + "\n".join(lines)
    return report


def curves(trained, tasks, records, path: Path) -> None:
    import csv

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        groups = {}
        for r in trained:
            if r["task"] == task and r["kind"] in ("recipe", "scratch"):
                label = r["algo"] + (" (scratch)" if r["kind"] == "scratch" else "")
                rows = list(csv.DictReader(open(r["path"] / "eval.csv")))
                groups.setdefault(label, []).append(([int(x["step"]) for x in rows],
                                                     [float(x["eval_score_mean"]) for x in rows]))
        for label, cs in groups.items():
            n = min(len(c[0]) for c in cs)
            x, y = np.array(cs[0][0][:n]), np.array([c[1][:n] for c in cs])
            ax.plot(x, y.mean(0), label=label, ls="--" if "scratch" in label else "-")
            ax.fill_between(x, y.min(0), y.max(0), alpha=0.15)
        for b, color in (("heuristic", "black"), ("best-constant", "grey"), ("oracle", "red")):
            v = [r["score"] for r in records if r["agent"] == b and r["task"] == task]
            if v:
                ax.axhline(np.mean(v), color=color, ls=":", lw=1.2, label=f"{b} {np.mean(v):.3f}")
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("held-out score (5 episodes; min-max of seeds)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="all", help="comma-separated task ids, or all (default all)")
    ap.add_argument("--algos", default="mappo,ippo,ppo-single")
    ap.add_argument("--seeds", default="0,1,2", help="training seeds (default 0,1,2)")
    ap.add_argument("--jobs", type=int, default=2, help="training runs at once (each steps its envs in-process)")
    ap.add_argument("--episodes", type=int, default=10, help="held-out episodes per trained policy (default 10)")
    ap.add_argument("--scratch", action="store_true", help="also train from scratch at the original budgets")
    ap.add_argument("--ablation", action="store_true", help="also the per-agent ablation on the hard tasks")
    ap.add_argument("--ship", action="store_true", help="copy the seed-0 recipe checkpoints to igym_marl/agents/checkpoints/")
    ap.add_argument("--out", type=Path, default=ROOT / "runs")
    ap.add_argument("--curves", type=Path, default=ROOT / "docs" / "img" / "learning_curves.png",
                    help="where the learning-curve figure goes (default docs/img/learning_curves.png)")
    ap.add_argument("--ray-address", default=None,
                    help="train as Ray tasks on this cluster ('local': a local Ray instance); default: this machine")
    ap.add_argument("--steps", type=int, default=None, help="every run's training steps (default: per kind and task)")
    ap.add_argument("--train-args", default="", help="extra train_marl.py arguments for every run, e.g. "
                                                      "\"--warm-start none\"")
    ap.add_argument("--baselines", default=",".join(BASELINES),
                    help=f"baselines evaluated beside the trained policies (default {','.join(BASELINES)})")
    ap.add_argument("--report-only", action="store_true",
                    help="neither train nor evaluate: rewrite <out>/results.md from <out>/results.json")
    args = ap.parse_args(argv)
    if args.report_only:
        path = args.out / "results.json"
        if not path.exists():
            ap.error(f"--report-only: {path} does not exist; run the sweep first")
        report = render(json.loads(path.read_text()))
        (args.out / "results.md").write_text(report + "\n")
        print(report)
        return 0
    baselines = tuple(b for b in args.baselines.split(",") if b)
    bad = [b for b in baselines if b not in BASELINES]
    if bad:
        ap.error(f"--baselines {bad} unknown; allowed: {', '.join(BASELINES)}")
    if args.steps is not None and args.steps < 1:
        ap.error(f"--steps={args.steps} must be >= 1")
    todo = runs(args)
    for r in todo:
        if args.steps is not None:
            r["steps"] = args.steps
        r["flags"] = [*r["flags"], *args.train_args.split()]
    tasks = list(dict.fromkeys(r["task"] for r in todo))
    workers = 0 if args.jobs > 1 else 2
    skipped = [r["path"].name for r in todo if (r["path"] / "summary.json").exists()]
    if skipped:
        print(f"finished already, kept: {', '.join(skipped)}")
    ray = None
    try:
        if args.ray_address:
            ray, local = ray_session(args.ray_address)
            failures = train_on_ray(ray, local, todo)
        else:
            with ThreadPoolExecutor(args.jobs) as ex:
                failures = [f for f in ex.map(lambda r: train_one(r, workers), todo) if f]
        for f in failures:
            print(f"FAILED {f}", file=sys.stderr)
        done = [r for r in todo if (r["path"] / "summary.json").exists()]
        records = evaluate(done, tasks, args.episodes, args.jobs, baselines, ray)
    finally:
        if ray is not None:
            ray.shutdown()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(records, indent=1, default=str))
    report = render(records)
    (args.out / "results.md").write_text(report + "\n")
    print(report)
    curves(done, tasks, records, args.curves)
    if args.ship:
        for r in done:
            if r["kind"] == "recipe" and r["seed"] == int(args.seeds.split(",")[0]) and r["algo"] in ("mappo", "ppo-single"):
                dst = ROOT / "agents" / "checkpoints" / POLICY_OF[r["algo"]] / f"{r['task']}.pt"
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(r["path"] / "checkpoint.pt", dst)
                print(f"shipped {dst.relative_to(ROOT)} ({dst.stat().st_size // 1024} KiB)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
