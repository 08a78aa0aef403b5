"""How much adapting the knobs is worth on each task: the adaptivity gap, per phase.

    python scripts/analysis/measure_adaptivity.py [--tasks all] [--episodes 10] [--workers 2] [--json PATH]

For every task, on held-out seeds 1,000,000.. (the leaderboard's):

* the **adaptivity gap** = (oracle - global best constant) / global best constant, from the mean
  scores over the same seeds, with a 95 % bootstrap CI (seeds resampled, paired);
* **per phase** (adversarial: day / evening / night by the hour of the compressed day; bursty:
  quiet / storm seconds), the value-weighted share served within SLO of the requests that
  arrived in that phase, under the global best constant, under each phase's own best constant,
  and under the oracle. A phase's best constant is chosen on training seeds 0 and 1 among the
  task's ten best constants and a coarse grid (batch_cap 32..512, chunked prefill on/off, KV
  budget 0.1..1.0, FP16/INT8, speculation 0, priority on/off: 320 configurations).

Prints Markdown (the tables of docs/tasks.md). Takes about 40 minutes on 2 cores for all tasks on today's engine.
"""
from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


from igym_marl.agents.analysis.stats import adaptivity_gap
from igym_marl.agents.analysis.tuning import top_constants
from igym_marl.envs.reward import ScoreKeeper, request_values
from igym_marl.sim import SLO_MET, Knobs, Simulator
from igym_marl.workloads import EVAL_SEEDS, TASKS, get_task

EVAL_START = EVAL_SEEDS.start
COARSE = [Knobs(batch_cap=b, prefill_decode_split=sp, kv_budget_fraction=kv, quantization_tier=q, priority_routing=pr)
          for b, sp, kv, q, pr in itertools.product((32, 64, 128, 256, 512), (True, False),
                                                      (0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9, 1.0), ("FP16", "INT8"),
                                                      (False, True))]


def phase_scores(task, seed, sim) -> tuple[float, np.ndarray]:
    """(episode score, value share served within SLO per phase) of a finished episode."""
    w = task.workload(seed)
    names, labels = task.phase_labels(seed)
    inside = w.arrival_s < task.horizon_s
    v = request_values(w)
    met = (sim.requests().slo[: len(w)] == SLO_MET) & inside
    phase = labels[np.minimum(w.arrival_s.astype(np.int64), labels.shape[0] - 1)]
    per = np.array([v[met & (phase == p)].sum() / max(v[inside & (phase == p)].sum(), 1e-9) for p in range(len(names))])
    return float(v[met].sum() / v[inside].sum()), per


def _constant(args):
    task_id, knobs, seed = args
    task = get_task(task_id)
    sim = Simulator(task.config)
    w = task.workload(seed)
    sim.reset(w, seed=seed)
    keeper = ScoreKeeper.for_episode(w, task.horizon_s, sim.replica.gpu.memory_gb * sim.replica.tp)
    keeper.window(sim.advance(task.horizon_s, knobs))
    score, per = phase_scores(task, seed, sim)
    return keeper.score, per.tolist()


def _oracle(args):
    task_id, seed = args
    from igym_marl.agents import make_policy
    from igym_marl.agents.evaluation import run_episode
    from igym_marl import serving_v0
    env = serving_v0.parallel_env(task=task_id)
    run_episode(make_policy("oracle"), task_id, seed, env=env)
    return env.score, phase_scores(env.task, seed, env.sim)[1].tolist()


def _map(fn, jobs, workers):
    if workers <= 1:
        return [fn(j) for j in jobs]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
        return list(ex.map(fn, jobs))


def _short(k: Knobs) -> str:
    return (f"batch_cap {k.batch_cap}, {'chunked' if k.prefill_decode_split else 'prefill-first'}, KV "
            f"{k.kv_budget_fraction:g}, {k.quantization_tier}, spec {k.speculation_depth}, "
            f"priority {'on' if k.priority_routing else 'off'}")


def measure(task_id: str, episodes: int, workers: int) -> dict:
    task = get_task(task_id)
    names = task.phase_labels(EVAL_START)[0]
    top = top_constants(task_id)
    best = top[0][0]
    seeds = [EVAL_START + i for i in range(episodes)]
    cands = list(dict.fromkeys([k for k, _ in top] + COARSE))
    train = _map(_constant, [(task_id, k, s) for k in cands for s in (0, 1)], workers)
    per_train = np.array([r[1] for r in train]).reshape(len(cands), 2, len(names)).mean(axis=1)
    phase_best = [cands[int(np.argmax(per_train[:, p]))] for p in range(len(names))]
    rows = {"global best constant": best}
    for p, name in enumerate(names):
        rows.setdefault(f"best constant of the {name} phase", phase_best[p])
    held = {label: _map(_constant, [(task_id, k, s) for s in seeds], workers) for label, k in rows.items()}
    oracle = _map(_oracle, [(task_id, s) for s in seeds], workers)
    c = np.array([r[0] for r in held["global best constant"]])
    o = np.array([r[0] for r in oracle])
    gap, gap_lo, gap_hi = adaptivity_gap(c, o)
    return {"task": task_id, "episodes": episodes, "phases": list(names),
            "best_constant": best.as_dict(), "best_constant_score": float(c.mean()), "oracle_score": float(o.mean()),
            "gap": gap, "gap_ci": [gap_lo, gap_hi],
            "top10": [{"knobs": k.as_dict(), "training_score": v} for k, v in top],
            "phase_table": {label: {"knobs": rows[label].as_dict(), "score": float(np.mean([r[0] for r in res])),
                                    "phases": np.mean([r[1] for r in res], axis=0).tolist()}
                            for label, res in held.items()}
            | {"oracle *": {"knobs": None, "score": float(o.mean()), "phases": np.mean([r[1] for r in oracle], axis=0).tolist()}},
            "phase_share": _phase_share(task, seeds)}


def _phase_share(task, seeds) -> list[float]:
    """Share of the offered value that arrives in each phase (mean over seeds)."""
    out = []
    for s in seeds:
        w = task.workload(s)
        names, labels = task.phase_labels(s)
        inside = w.arrival_s < task.horizon_s
        v = request_values(w)
        phase = labels[np.minimum(w.arrival_s.astype(np.int64), labels.shape[0] - 1)]
        out.append([v[inside & (phase == p)].sum() / v[inside].sum() for p in range(len(names))])
    return np.mean(out, axis=0).tolist()


def markdown(res: dict) -> str:
    lines = [f"### {res['task']}", "",
             f"Adaptivity gap (oracle - best constant) / best constant over {res['episodes']} held-out episodes: "
             f"**{100 * res['gap']:.0f} %** [95 % CI {100 * res['gap_ci'][0]:.0f}, {100 * res['gap_ci'][1]:.0f}] "
             f"(best constant {res['best_constant_score']:.3f}, oracle {res['oracle_score']:.3f}).", "",
             "| configuration | score | " + " | ".join(f"{p} ({100 * sh:.0f} % of value)" for p, sh in
                                                     zip(res["phases"], res["phase_share"])) + " |",
             "|---|---|" + "---|" * len(res["phases"])]
    for label, row in res["phase_table"].items():
        knobs = "" if row["knobs"] is None else f" ({_short(Knobs(**row['knobs']))})"
        lines.append(f"| {label}{knobs} | {row['score']:.3f} | " + " | ".join(f"{x:.3f}" for x in row["phases"]) + " |")
    lines += ["", "Ten best constants (mean score on 16 training seeds):", "", "| rank | configuration | score |",
              "|---|---|---|"]
    lines += [f"| {i + 1} | {_short(Knobs(**e['knobs']))} | {e['training_score']:.3f} |" for i, e in enumerate(res["top10"])]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="all", help="comma-separated task ids, or all (default all)")
    ap.add_argument("--episodes", type=int, default=10, help="held-out episodes per task (default 10)")
    ap.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = ap.parse_args(argv)
    tasks = list(TASKS) if args.tasks == "all" else [get_task(t).id for t in args.tasks.split(",")]
    results = []
    for t in tasks:
        results.append(measure(t, args.episodes, args.workers))
        print(markdown(results[-1]) + "\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
