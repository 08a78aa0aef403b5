"""One front door: ``igym-marl COMMAND`` runs the same function as the script it stands for."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args, timeout=600):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_evaluate_through_the_front_door_equals_the_script():
    opts = ["--agent", "vllm-default", "--task", "static_workload", "--episodes", "1", "--no-progress"]
    a = run("-m", "igym_marl.cli", "evaluate", *opts)
    b = run("evaluate.py", *opts)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert a.stdout == b.stdout and "| vllm-default |" in a.stdout


@pytest.mark.parametrize("command", ["train", "evaluate", "leaderboard", "replay", "tune", "cluster-baselines"])
def test_each_command_names_itself_in_its_usage(command):
    r = run("-m", "igym_marl.cli", command, "--help", timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: igym-marl {command}")


def test_bad_commands_and_benchmarks_are_refused_by_name():
    r = run("-m", "igym_marl.cli", "bench", "nope")
    assert r.returncode == 1 and "'nope' is not a benchmark; allowed: sim, env, loaders" in r.stderr
    r = run("-m", "igym_marl.cli", "bench", "--windows", "3")
    assert r.returncode == 1 and "need one benchmark" in r.stderr
    r = run("-m", "igym_marl.cli", "fly")
    assert r.returncode == 2 and "invalid choice: 'fly'" in r.stderr


def test_the_leaderboard_passes_the_users_options_after_its_own(monkeypatch):
    from igym_marl import cli
    from igym_marl.agents.analysis import evaluate
    seen = []
    monkeypatch.setattr(evaluate, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["leaderboard", "--episodes", "3"]) == 0
    assert seen == [cli.LEADERBOARD_ARGS + ["--episodes", "3"]]
