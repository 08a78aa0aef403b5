"""Results in marl-eval's JSON format, the raw-data layout that marl-eval (Gorsane et al., 2022)
and BenchMARL read:

    {environment: {task: {algorithm: {run: {"step_0": {"step_count": int, metric: [one value per
     evaluation episode], ...}, ..., "absolute_metrics": {metric: [...]}}}}}}

* ``evaluate.py --marl-eval FILE``: each agent on each task is one run (``run_0``) with one step
  (``step_count`` 0: fixed and shipped policies are not trained here), its held-out episodes'
  score, goodput, SLO attainment and throughput, repeated as ``absolute_metrics``.
* ``train_marl.py`` writes ``marl_eval.json`` in its run folder: the run is ``run_<seed>``, each
  held-out evaluation during training is a step (``step_count`` = env steps so far) with its
  episodes' scores, and the last one is also ``absolute_metrics``.

The environment name is ``igym_marl``. Values are plain floats; ``check`` validates the layout.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

ENVIRONMENT = "igym_marl"
EPISODE_METRICS = ("score", "goodput", "slo_attainment", "throughput_tps")


def from_episodes(records: list[dict], environment: str = ENVIRONMENT) -> dict:
    """evaluate.py's per-episode records -> marl-eval's layout (one run, one step per agent and task)."""
    out: dict = {}
    for r in sorted(records, key=lambda r: (r["task"], r["agent"], r["seed"])):
        run = out.setdefault(environment, {}).setdefault(r["task"], {}).setdefault(r["agent"], {}).setdefault(
            "run_0", {"step_0": {"step_count": 0, **{m: [] for m in EPISODE_METRICS}}})
        for m in EPISODE_METRICS:
            run["step_0"][m].append(float(r[m]))
    for tasks in out.values():
        for algos in tasks.values():
            for runs in algos.values():
                step = runs["run_0"]["step_0"]
                runs["run_0"]["absolute_metrics"] = {m: list(step[m]) for m in EPISODE_METRICS}
    check(out)
    return out


def add_training_eval(path: Path, task: str, algorithm: str, seed: int, step_count: int, scores: list[float],
                      environment: str = ENVIRONMENT) -> dict:
    """Add one held-out evaluation of a training run to its marl-eval file (created on first use;
    a resumed run continues it). The newest evaluation is also ``absolute_metrics``."""
    path = Path(path)
    data = json.loads(path.read_text()) if path.exists() else {}
    run = data.setdefault(environment, {}).setdefault(task, {}).setdefault(algorithm, {}).setdefault(f"run_{seed}", {})
    steps = [k for k in run if k.startswith("step_")]
    run[f"step_{len(steps)}"] = {"step_count": int(step_count), "score": [float(s) for s in scores]}
    run["absolute_metrics"] = {"score": [float(s) for s in scores]}
    check(data)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)
    return data


def check(data: dict) -> None:
    """ValueError naming the first place where ``data`` departs from marl-eval's layout."""
    for where, run, body in _runs(data):
        if not run.startswith("run_"):
            _bad(where, "run keys are run_<i>")
        steps = sorted((k for k in body if k.startswith("step_")), key=lambda k: int(k[5:]))
        if not steps or "absolute_metrics" not in body or set(body) - set(steps) - {"absolute_metrics"}:
            _bad(where, f"needs step_<i> entries and absolute_metrics, got {sorted(body)}")
        if steps != [f"step_{i}" for i in range(len(steps))]:
            _bad(where, f"steps must be step_0..step_{len(steps) - 1}, got {steps}")
        counts = [body[k].get("step_count") for k in steps]
        for k, count in zip(steps, counts):
            if not isinstance(count, int) or isinstance(count, bool):
                _bad(f"{where}/{k}", "step_count must be an integer")
            _metrics({m: v for m, v in body[k].items() if m != "step_count"}, f"{where}/{k}")
        if counts != sorted(counts):
            _bad(where, f"step_count must not decrease: {counts}")
        _metrics(body["absolute_metrics"], f"{where}/absolute_metrics")


def _runs(data: dict):
    """(where, run key, run body) of every run, each level checked to be a non-empty object."""
    for env, tasks in _items(data, "top"):
        for task, algos in _items(tasks, env):
            for algo, runs in _items(algos, f"{env}/{task}"):
                for run, body in _items(runs, f"{env}/{task}/{algo}"):
                    yield f"{env}/{task}/{algo}/{run}", run, body


def _bad(where: str, what: str):
    raise ValueError(f"marl-eval layout: {where}: {what}")


def _items(obj, where: str):
    if not isinstance(obj, dict) or not obj:
        _bad(where, "a non-empty object is required")
    return obj.items()


def _metrics(metrics: dict, where: str) -> None:
    if not metrics:
        _bad(where, "no metrics")
    for m, values in metrics.items():
        if not isinstance(values, list) or not values or not all(
                isinstance(v, float) and math.isfinite(v) for v in values):
            _bad(f"{where}/{m}", "a non-empty list of finite floats (one per evaluation episode) is required")


__all__ = ["ENVIRONMENT", "EPISODE_METRICS", "from_episodes", "add_training_eval", "check"]
