"""Reports in marl-eval's JSON layout, from evaluate.py and from training runs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from igym_marl.agents.analysis.marl_eval import add_training_eval, check, from_episodes

ROOT = Path(__file__).resolve().parents[2]


def test_evaluate_writes_marl_eval_json_with_every_episode(tmp_path):
    path, out = tmp_path / "me.json", tmp_path / "r.json"
    r = subprocess.run([sys.executable, "evaluate.py", "--agent", "vllm-default,heuristic", "--task", "bursty_workload",
                        "--episodes", "2", "--out", str(out), "--marl-eval", str(path), "--no-progress"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    data = json.loads(path.read_text())
    check(data)
    records = json.loads(out.read_text())
    for agent in ("vllm-default", "heuristic"):
        run = data["igym_marl"]["bursty_workload"][agent]["run_0"]
        mine = sorted((x for x in records if x["agent"] == agent), key=lambda x: x["seed"])
        assert run["step_0"]["step_count"] == 0
        assert run["step_0"]["score"] == [x["score"] for x in mine] == run["absolute_metrics"]["score"]
        assert run["step_0"]["throughput_tps"] == [x["throughput_tps"] for x in mine]


def test_training_evaluations_accumulate_as_steps(tmp_path):
    path = tmp_path / "marl_eval.json"
    add_training_eval(path, "bursty_workload", "mappo", 3, 1000, [0.1, 0.2])
    data = add_training_eval(path, "bursty_workload", "mappo", 3, 2000, [0.3, 0.4])
    run = data["igym_marl"]["bursty_workload"]["mappo"]["run_3"]
    assert run["step_0"] == {"step_count": 1000, "score": [0.1, 0.2]}
    assert run["step_1"] == {"step_count": 2000, "score": [0.3, 0.4]}
    assert run["absolute_metrics"] == {"score": [0.3, 0.4]}
    assert json.loads(path.read_text()) == data


@pytest.mark.parametrize("data, fragment", [
    ({}, "non-empty"),
    ({"e": {"t": {"a": {"seed_0": {"step_0": {"step_count": 0, "s": [1.0]}, "absolute_metrics": {"s": [1.0]}}}}}},
     "run keys are run_<i>"),
    ({"e": {"t": {"a": {"run_0": {"step_0": {"step_count": 0, "s": [1.0]}}}}}}, "absolute_metrics"),
    ({"e": {"t": {"a": {"run_0": {"step_1": {"step_count": 0, "s": [1.0]}, "absolute_metrics": {"s": [1.0]}}}}}},
     "step_0"),
    ({"e": {"t": {"a": {"run_0": {"step_0": {"step_count": 1.5, "s": [1.0]}, "absolute_metrics": {"s": [1.0]}}}}}},
     "step_count must be an integer"),
    ({"e": {"t": {"a": {"run_0": {"step_0": {"step_count": 0, "s": [float("nan")]},
                                  "absolute_metrics": {"s": [1.0]}}}}}}, "e/t/a/run_0/step_0/s"),
])
def test_the_layout_check_names_what_is_wrong(data, fragment):
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[")):
        check(data)


def test_records_of_two_tasks_and_agents_group_by_task_then_agent():
    recs = [dict(agent=a, task=t, seed=s, score=0.5, goodput=0.5, slo_attainment=0.9, throughput_tps=10.0)
            for a in ("x", "y") for t in ("t1", "t2") for s in (1, 2)]
    data = from_episodes(recs)
    assert sorted(data["igym_marl"]) == ["t1", "t2"] and sorted(data["igym_marl"]["t1"]) == ["x", "y"]
    assert data["igym_marl"]["t2"]["y"]["run_0"]["step_0"]["score"] == [0.5, 0.5]
