"""Tuning the baselines on training seeds; results cached in igym_marl/agents/data/.

    python -m igym_marl.agents.analysis.tuning best-constant [--tasks all] [--workers 2]
    python -m igym_marl.agents.analysis.tuning heuristic [--tasks all] [--seeds 8] [--workers 2]

* ``best-constant``: the **global** best constant configuration of a task, by successive halving
  over the whole joint grid of the agents' action levels (batch_cap x chunked prefill: 20,
  KV budget x tier: 30, speculation depth: 9, priority routing: 2; 10,800 configurations):
  every configuration plays one full training episode, the best 5 % play two more, the best
  54 of those five more (8 seeds), and the best 10 eight more (16 seeds); the ranking of the
  last round is the result. Each episode is scored exactly as the environment scores it
  (:func:`constant_score`, tested equal). Writes ``igym_marl/agents/data/best_constant.json``: the winner
  and the top 10 per task, and the search log (every configuration's score on every seed it
  played, configurations numbered in :func:`joint_grid` order).
* ``heuristic``: a coordinate search over the heuristic's parameters (``HEURISTIC_GRID``), started
  from the parameters that make it play the task's global best constant, so the tuned heuristic
  scores at least that constant on the tuning seeds. Writes ``igym_marl/agents/data/heuristic_params.json``.

Training seeds are disjoint from evaluation seeds (igym_marl.workloads.probes.TRAIN_SEEDS /
EVAL_SEEDS).
"""

from __future__ import annotations

from igym_marl.paths import TUNED_DIR, shipped_json

import argparse
import itertools
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from functools import lru_cache

import numpy as np

from igym_marl.envs import AGENTS, AGENT_KNOBS, joint_knobs
from igym_marl.envs.reward import MEMORY_COST, ScoreKeeper
from igym_marl.sim import Knobs, Simulator
from igym_marl.workloads import TASKS, VLLM_DEFAULT, TaskSpec, get_task
from igym_marl.workloads.probes import TRAIN_SEEDS, coordinate_search

from igym_marl.agents.evaluation import run_episode

DATA = TUNED_DIR
BEST_CONSTANT_FILE = DATA / "best_constant.json"
# (seeds a configuration has played after the round, how many go on to the next round)
HALVING = ((1, 540), (3, 54), (8, 10), (16, 10))


# ---------------------------------------------------------------------------------- scoring
@lru_cache(maxsize=8)
def _workload(task: TaskSpec, seed: int):
    return task.workload(seed)


def constant_score(task: TaskSpec, knobs: Knobs, seed: int, memory_cost: float = MEMORY_COST,
                   value: str = "tokens", workload=None, config=None) -> float:
    """The environment's episode score of playing `knobs` every window, computed on the simulator
    alone: the engine starts with FP16 weights as the env does, and a constant needs no window
    boundaries, so the whole episode is one ``advance`` (tests check equality with the env).
    `workload` and `config` replace the seed's episode and the task's replica (for what-if probes)."""
    workload = _workload(task, seed) if workload is None else workload
    sim = Simulator(task.config if config is None else config)
    sim.reset(workload, seed=seed)
    r = sim.replica
    keeper = ScoreKeeper.for_episode(workload, task.horizon_s, r.gpu.memory_gb * r.tp, memory_cost, value)
    keeper.window(sim.advance(task.horizon_s, knobs))
    return keeper.score


def joint_grid() -> list[Knobs]:
    """Every joint action of the four agents, as Knobs, in index order (batch_scheduler index
    slowest, tenant_router fastest): 10,800 configurations."""
    return [joint_knobs(dict(zip(AGENTS, idx))) for idx in itertools.product(*(range(AGENT_KNOBS[a].n) for a in AGENTS))]


def _seeds(n: int) -> list[int]:
    return [TRAIN_SEEDS.start + i for i in range(n)]


def _score_job(args) -> float:
    task_id, index, seed = args
    return constant_score(get_task(task_id), _grid()[index], seed)


@lru_cache(maxsize=1)
def _grid() -> tuple[Knobs, ...]:
    return tuple(joint_grid())


def _pool(workers: int) -> ProcessPoolExecutor | None:
    # spawn: workers start clean (no inherited numba/torch locks)
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if workers > 1 else None


def _map(fn, jobs: list, workers: int, pool: ProcessPoolExecutor | None = None) -> list:
    """fn over jobs, in order; in `pool` if given, else in a pool of `workers` made for the call."""
    if pool is not None:
        return list(pool.map(fn, jobs, chunksize=max(1, len(jobs) // (8 * pool._max_workers))))
    if workers <= 1:
        return [fn(j) for j in jobs]
    with _pool(workers) as ex:
        return _map(fn, jobs, workers, ex)


def successive_halving(task_id: str, configs: list[int] | None = None, halving=HALVING, workers: int = 1,
                       progress: bool = False) -> dict:
    """Rank configurations (indices into joint_grid()) by mean training-seed score, by successive
    halving (`halving`: (seeds played after the round, survivors)). Returns {"ranking": [(index,
    mean score), ...] of the last round, "scores": {index: [score per seed]}, "rounds": [...]}."""
    alive = list(range(len(_grid()))) if configs is None else list(configs)
    scores: dict[int, list[float]] = {i: [] for i in alive}
    rounds = []
    for seeds_after, keep in halving:
        t0 = time.perf_counter()
        jobs = [(task_id, i, seed) for i in alive for seed in _seeds(seeds_after)[len(scores[i]):]]
        for (_, i, _), v in zip(jobs, _map(_score_job, jobs, workers)):
            scores[i].append(float(v))
        ranked = sorted(alive, key=lambda i: (-float(np.mean(scores[i])), i))
        rounds.append({"configurations": len(alive), "seeds": seeds_after, "episodes": len(jobs),
                       "seconds": round(time.perf_counter() - t0, 1)})
        if progress:
            best = ranked[0]
            print(f"  {task_id}: {len(alive)} configurations x {seeds_after} seeds ({len(jobs)} episodes, "
                  f"{rounds[-1]['seconds']:.0f} s); best so far {_grid()[best].as_dict()} "
                  f"{np.mean(scores[best]):.4f}", flush=True)
        alive = ranked[:keep]
    return {"ranking": [(i, float(np.mean(scores[i]))) for i in alive], "scores": scores, "rounds": rounds}


# ---------------------------------------------------------------------------------- cache
def _best_constants(for_update: bool = False) -> dict:
    return shipped_json(BEST_CONSTANT_FILE, "igym-marl tune best-constant", for_update)


def load_best_constant(task_id: str) -> Knobs:
    """The task's global best constant (``python -m igym_marl.agents.analysis.tuning best-constant`` computes it)."""
    data = _best_constants()
    if task_id not in data.get("best", {}):
        raise ValueError(f"no best constant configuration for task {task_id!r} in {BEST_CONSTANT_FILE}; "
                         f"searched tasks: {sorted(data.get('best', {}))} (run python -m igym_marl.agents.analysis.tuning best-constant)")
    return Knobs(**data["best"][task_id]["knobs"])


def best_constant_or_default(task_id: str) -> tuple[Knobs, bool]:
    """(the task's searched best constant, True), or (vLLM's default, False) for a task nobody
    searched (a trace): the fallback the best-constant policy and the oracle state in their stats."""
    data = _best_constants()
    if task_id in data.get("best", {}):
        return Knobs(**data["best"][task_id]["knobs"]), True
    return VLLM_DEFAULT, False


def top_constants(task_id: str) -> list[tuple[Knobs, float]]:
    """The task's ten best constants with their mean training score (16 seeds), best first."""
    data = _best_constants()
    if task_id not in data.get("best", {}):
        raise ValueError(f"no best constant configuration for task {task_id!r} in {BEST_CONSTANT_FILE}")
    return [(Knobs(**e["knobs"]), e["score"]) for e in data["best"][task_id]["top10"]]


def _write_best_constant(task_id: str, result: dict) -> dict:
    grid = _grid()
    top = [{"knobs": grid[i].as_dict(), "score": v, "index": i} for i, v in result["ranking"]]
    entry = {"knobs": top[0]["knobs"], "score": top[0]["score"], "training_seeds": _seeds(HALVING[-1][0]),
             "top10": top, "rounds": result["rounds"],
             "log": {str(i): [round(x, 6) for x in v] for i, v in sorted(result["scores"].items())}}
    data = _best_constants(for_update=True)
    data["grid"] = {"order": "joint_grid(): agents' Discrete indices, batch_scheduler slowest",
                    "agents": {a: AGENT_KNOBS[a].n for a in AGENTS}, "configurations": len(grid)}
    data["search"] = {"method": "successive halving", "halving": [list(h) for h in HALVING]}
    data.setdefault("best", {})[task_id] = entry
    DATA.mkdir(exist_ok=True)
    BEST_CONSTANT_FILE.write_text(json.dumps(data, indent=0, sort_keys=True) + "\n")
    return entry


# ---------------------------------------------------------------------------------- heuristic
def _heuristic_job(args) -> float:
    task_id, params, seed = args
    from igym_marl.agents.policies.heuristic import HeuristicParams, HeuristicPolicy
    return run_episode(HeuristicPolicy(HeuristicParams(**params)), task_id, seed)["score"]


def tune_heuristic(task_id: str, n_seeds: int = 8, passes: int = 2, workers: int = 1):
    """Coordinate search over HEURISTIC_GRID from two starts, keeping the better: the parameters that
    play the global best constant (so the result is at least that constant on these seeds), and the
    default adaptive rules with the best constant's tier and chunking. Returns (params, score,
    log of both searches, score of the constant-playing start)."""
    from igym_marl.agents.policies.heuristic import HEURISTIC_GRID, HeuristicParams
    seeds = _seeds(n_seeds)
    constant = load_best_constant(task_id)
    starts = [asdict(HeuristicParams.playing(constant)),
              asdict(HeuristicParams(tier=constant.quantization_tier, split=constant.prefill_decode_split))]
    grid = {k: tuple(dict.fromkeys((*levels, *(st[k] for st in starts)))) for k, levels in HEURISTIC_GRID.items()}

    pool = _pool(workers)
    try:
        def evaluate(point: dict) -> float:
            try:
                HeuristicParams(**point)
            except ValueError:  # e.g. batch_min above batch_max: not a heuristic
                return float("-inf")
            return float(np.mean(_map(_heuristic_job, [(task_id, point, s) for s in seeds], workers, pool)))

        start_value = evaluate(starts[0])
        best, value, log = None, float("-inf"), []
        for start in starts:
            b, v, lg = coordinate_search(start, grid, evaluate, passes)
            log += lg
            if v > value:
                best, value = b, v
    finally:
        if pool is not None:
            pool.shutdown()
    return HeuristicParams(**best), value, log, start_value


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["best-constant", "heuristic"])
    ap.add_argument("--tasks", default="all", help="comma-separated task ids, or all (default all)")
    ap.add_argument("--seeds", type=int, default=8, help="heuristic: training seeds per evaluation (default 8)")
    ap.add_argument("--passes", type=int, default=2, help="heuristic: coordinate-search passes (default 2)")
    ap.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    args = ap.parse_args(argv)
    tasks = list(TASKS) if args.tasks == "all" else [get_task(t).id for t in args.tasks.split(",")]
    for task_id in tasks:
        t0 = time.perf_counter()
        if args.what == "best-constant":
            entry = _write_best_constant(task_id, successive_halving(task_id, workers=args.workers, progress=True))
            print(f"{task_id}: {entry['knobs']} score {entry['score']:.4f} ({time.perf_counter() - t0:.0f} s)")
        else:
            from igym_marl.agents.policies.heuristic import HEURISTIC_GRID, PARAMS_FILE
            best, value, log, start_value = tune_heuristic(task_id, args.seeds, args.passes, args.workers)
            data = shipped_json(PARAMS_FILE, "igym-marl tune heuristic", for_update=True)
            data["grid"] = {k: list(v) for k, v in HEURISTIC_GRID.items()}
            data["training_seeds"] = _seeds(args.seeds)
            data.setdefault("params", {})[task_id] = asdict(best)
            data.setdefault("scores", {})[task_id] = {
                "score": value, "evaluated": len(log),
                "start_score": start_value, "start": "the parameters that play the global best constant"}
            PARAMS_FILE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
            print(f"{task_id}: {asdict(best)} score {value:.4f} (start {start_value:.4f}; {len(log)} settings, "
                  f"{time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
