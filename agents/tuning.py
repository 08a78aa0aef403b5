"""Tuning the baselines on training seeds; results cached in agents/data/.

    python -m agents.tuning best-constant [--tasks all] [--seeds 4]
    python -m agents.tuning heuristic [--tasks all] [--seeds 4]

* ``best-constant``: coordinate search over the agents' full action grid (every level of every
  knob, two passes from vLLM's default), each configuration scored by the environment's episode
  score averaged over training seeds 0..N-1. Writes ``agents/data/best_constant.json`` with the
  grid, every evaluated configuration and its score, and the winner per task.
* ``heuristic``: the same search over the heuristic's thresholds (``HEURISTIC_GRID``), from the
  defaults of ``HeuristicParams``. Writes ``agents/data/heuristic_params.json``.

Training seeds are disjoint from evaluation seeds (igym_marl.workloads.probes.TRAIN_SEEDS /
EVAL_SEEDS).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from igym_marl.sim import Knobs
from igym_marl.workloads import TASKS, VLLM_DEFAULT, get_task
from igym_marl.workloads.probes import GRID, TRAIN_SEEDS, coordinate_search

from .evaluation import run_episode
from .heuristic import PARAMS_FILE, HeuristicParams, HeuristicPolicy
from .simple import ConstantPolicy

DATA = Path(__file__).parent / "data"
BEST_CONSTANT_FILE = DATA / "best_constant.json"

HEURISTIC_GRID = {
    "batch_min": (8, 16, 32, 64, 128),
    "batch_start": (64, 128, 256, 512),
    "drain_wait": (0.25, 0.5, 1.0),
    "tpot_margin": (0.8, 1.0, 1.2),
    "kv_min": (0.1, 0.2, 0.3, 0.4, 0.6),
    "kv_start": (0.1, 0.3, 0.5, 0.7, 0.9),
    "kv_low": (0.3, 0.5, 0.7),
    "tier": ("FP16", "INT8", "INT4"),
    "spec_depth": (0, 1, 2),
    "spec_max_batch": (2, 4, 8),
    "prio_on": (0.25, 0.5, 1.0),
    "prio_att": (0.5, 0.8, 0.95),
    "prio_patience": (1, 3, 6),
}


def _seeds(n: int) -> list[int]:
    return [TRAIN_SEEDS.start + i for i in range(n)]


def mean_score(policy, task_id: str, seeds) -> float:
    return float(np.mean([run_episode(policy, task_id, s)["score"] for s in seeds]))


def search_best_constant(task_id: str, n_seeds: int = 4, passes: int = 2):
    seeds = _seeds(n_seeds)
    best, value, log = coordinate_search(VLLM_DEFAULT.as_dict(), GRID,
                                         lambda p: mean_score(ConstantPolicy(Knobs(**p)), task_id, seeds), passes)
    return Knobs(**best), value, log


def tune_heuristic(task_id: str, n_seeds: int = 4, passes: int = 2):
    seeds = _seeds(n_seeds)
    best, value, log = coordinate_search(asdict(HeuristicParams()), HEURISTIC_GRID,
                                         lambda p: mean_score(HeuristicPolicy(HeuristicParams(**p)), task_id, seeds),
                                         passes)
    return HeuristicParams(**best), value, log


def load_best_constant(task_id: str) -> Knobs:
    if not BEST_CONSTANT_FILE.exists():
        raise FileNotFoundError(f"{BEST_CONSTANT_FILE} is missing: run `python -m agents.tuning best-constant`")
    data = json.loads(BEST_CONSTANT_FILE.read_text())
    if task_id not in data["best"]:
        raise ValueError(f"no best constant configuration for task {task_id!r} in {BEST_CONSTANT_FILE}; "
                         f"searched tasks: {sorted(data['best'])}")
    return Knobs(**data["best"][task_id]["knobs"])


def _write(path: Path, key: str, task_id: str, entry: dict, grid: dict, seeds: list[int]) -> None:
    DATA.mkdir(exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault("grid", {k: list(v) for k, v in grid.items()})
    data["training_seeds"] = seeds
    data.setdefault(key, {})[task_id] = entry
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["best-constant", "heuristic"])
    ap.add_argument("--tasks", default="all", help="comma-separated task ids, or all")
    ap.add_argument("--seeds", type=int, default=4, help="training seeds per evaluated configuration")
    ap.add_argument("--passes", type=int, default=2)
    args = ap.parse_args(argv)
    tasks = list(TASKS) if args.tasks == "all" else [get_task(t).id for t in args.tasks.split(",")]
    for task_id in tasks:
        t0 = time.perf_counter()
        if args.what == "best-constant":
            best, value, log = search_best_constant(task_id, args.seeds, args.passes)
            entry = {"knobs": best.as_dict(), "score": value,
                     "evaluated": [{"knobs": p, "score": v} for p, v in log]}
            _write(BEST_CONSTANT_FILE, "best", task_id, entry, GRID, _seeds(args.seeds))
            print(f"{task_id}: {best.as_dict()} score {value:.4f} ({len(log)} configurations, "
                  f"{time.perf_counter() - t0:.0f} s)")
        else:
            best, value, log = tune_heuristic(task_id, args.seeds, args.passes)
            entry = asdict(best)
            _write(PARAMS_FILE, "params", task_id, entry, HEURISTIC_GRID, _seeds(args.seeds))
            data = json.loads(PARAMS_FILE.read_text())
            data.setdefault("scores", {})[task_id] = {"score": value, "evaluated": len(log)}
            PARAMS_FILE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
            print(f"{task_id}: {entry} score {value:.4f} ({len(log)} settings, {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()

