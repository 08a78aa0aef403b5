"""train_marl.py: help text, bad input, determinism, checkpoints and resume, the three algorithms."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from igym_marl.workloads import get_task
from train_marl import Args, parse_args, train

ROOT = Path(__file__).resolve().parents[1]


def tiny(tmp_path, **kw) -> Args:
    # --steps rounds up to whole rollouts (num_envs x rollout = 160 steps here)
    base = dict(task="bursty_workload", steps=480, num_envs=4, rollout=40, epochs=2, minibatches=2,
                eval_every=0, eval_episodes=1, checkpoint_every=240, progress=False, tensorboard=False,
                out=str(tmp_path / "run"))
    base.update(kw)
    return Args(**base)


def test_help_lists_every_hyperparameter():
    r = subprocess.run([sys.executable, "train_marl.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0
    for flag in ("--task", "--algo", "--steps", "--seed", "--num-envs", "--rollout", "--lr", "--gamma", "--gae-lambda",
                 "--epochs", "--minibatches", "--clip", "--ent-coef", "--vf-coef", "--max-grad-norm", "--hidden",
                 "--value-norm", "--freeze", "--checkpoint-every", "--eval-every", "--eval-episodes", "--resume",
                 "--ablation", "--quick"):
        assert flag in r.stdout
    assert "PPO clip range" in r.stdout and "centralized critic" in r.stdout


@pytest.mark.parametrize("argv,fragment", [
    (["--algo", "qmix"], "--algo 'qmix'"), (["--task", "nope"], "task='nope' is unknown"),
    (["--steps", "0"], "--steps 0: must be >= 1"), (["--freeze", "kv_manager"], "expected AGENT=POLICY"),
    (["--freeze", "cache=heuristic"], "unknown agent 'cache'"),
    (["--freeze", "spec_controller=constant:12"], "index 12 out of range 0..8"),
    (["--freeze", "spec_controller=greedy"], "allowed policies"),
    (["--algo", "ppo-single", "--freeze", "spec_controller=constant:0"], "multi-agent algorithms"),
])
def test_bad_arguments(argv, fragment, capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(argv)
    assert e.value.code == 2 and fragment in capsys.readouterr().err


@pytest.mark.parametrize("algo", ["mappo", "ippo", "ppo-single"])
def test_each_algorithm_trains_and_checkpoints(tmp_path, algo):
    s = train(tiny(tmp_path, algo=algo))
    run = Path(s["run"])
    assert s["steps"] == 480 and (run / "checkpoint.pt").exists() and s["eval_score"] is not None
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [160, 320, 480]
    assert {"train_episode_score", "policy_loss", "value_loss", "entropy", "steps_per_s"} <= set(rows[0])


def test_determinism_under_a_seed(tmp_path):
    a = train(tiny(tmp_path / "a", seed=3))
    b = train(tiny(tmp_path / "b", seed=3))
    ra = (Path(a["run"]) / "metrics.csv").read_text().splitlines()
    rb = (Path(b["run"]) / "metrics.csv").read_text().splitlines()
    strip = lambda lines: [",".join(l.split(",")[:8]) for l in lines]  # drop timing columns
    assert strip(ra) == strip(rb) and a["eval_score"] == b["eval_score"]


def test_resume_continues_from_the_checkpoint(tmp_path):
    first = train(tiny(tmp_path, steps=320))
    assert first["steps"] == 320
    resumed = train(tiny(tmp_path, steps=640, resume=True))
    rows = list(csv.DictReader(open(Path(resumed["run"]) / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [160, 320, 480, 640]
    assert [int(r["update"]) for r in rows] == [1, 2, 3, 4]
    # an interrupted run loses only the steps after its last checkpoint: compare with an uninterrupted one
    whole = train(tiny(tmp_path / "whole", steps=640))
    assert resumed["steps"] == whole["steps"] == 640
    with pytest.raises(SystemExit, match="no checkpoint"):
        train(tiny(tmp_path / "fresh", resume=True))


def test_freeze_holds_an_agent_fixed(tmp_path):
    s = train(tiny(tmp_path, freeze=["spec_controller=constant:0", "kv_manager=heuristic"]))
    from agents.networks import load_checkpoint
    blob = load_checkpoint(Path(s["run"]) / "checkpoint.pt", algos=("mappo",))
    assert blob["frozen"] == {"spec_controller": "constant:0", "kv_manager": "heuristic"}


def test_trained_checkpoint_evaluates(tmp_path):
    s = train(tiny(tmp_path))
    r = subprocess.run([sys.executable, "evaluate.py", "--agent", "mappo", "--task", "bursty_workload", "--episodes", "1",
                        "--checkpoint", str(Path(s["run"]) / "checkpoint.pt"), "--no-progress"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "| mappo |" in r.stdout
    r = subprocess.run([sys.executable, "evaluate.py", "--agent", "mappo", "--task", "static_workload", "--episodes", "1",
                        "--checkpoint", str(Path(s["run"]) / "checkpoint.pt"), "--no-progress"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "trained on task 'bursty_workload', not 'static_workload'" in r.stderr


@pytest.mark.parametrize("algo,name", [("ppo-single", "ppo"), ("ippo", "mappo")])
def test_other_checkpoints_load_into_their_policies(tmp_path, algo, name):
    from agents import make_policy
    from agents.evaluation import run_episode
    s = train(tiny(tmp_path, algo=algo))
    rec = run_episode(make_policy(name, checkpoint=Path(s["run"]) / "checkpoint.pt"), "bursty_workload", 1_000_000,
                      episode_windows=10)
    assert 0.0 <= rec["score"] < 1.0
    with pytest.raises(ValueError, match="expected one of"):
        other = "mappo" if name == "ppo" else "ppo"
        make_policy(other, checkpoint=Path(s["run"]) / "checkpoint.pt").reset(get_task("bursty_workload"), 0)
