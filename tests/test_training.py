"""train_marl.py: help text, bad input, the three algorithms, determinism whatever the number of
env workers, run folders (resume, refusal, --force), warm start, counterfactual credit."""

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from igym_marl.agents.training.vecenv import EnvSlot
from igym_marl import serving_v0
from igym_marl.envs import AGENTS, joint_knobs
from igym_marl.workloads import get_task
from igym_marl.agents.training.train import Args, parse_args, train

ROOT = Path(__file__).resolve().parents[1]


def tiny(tmp_path, **kw) -> Args:
    # --steps rounds up to whole rollouts (num_envs x rollout = 160 steps here)
    base = dict(task="bursty_workload", steps=480, num_envs=4, rollout=40, epochs=2, minibatches=2, workers=0,
                eval_every=0, eval_episodes=1, checkpoint_every=240, progress=False, tensorboard=False,
                warm_episodes=2, warm_epochs=2, out=str(tmp_path / "run"))
    base.update(kw)
    return Args(**base)


def metrics(run) -> list[dict]:
    return list(csv.DictReader(open(Path(run) / "metrics.csv")))


def test_help_lists_every_hyperparameter_with_its_default():
    r = subprocess.run([sys.executable, "train_marl.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0
    for f in dataclasses.fields(Args):
        assert "--" + f.name.replace("_", "-") in r.stdout
    assert "--quick" in r.stdout and "PPO clip range (default: 0.2)" in r.stdout
    assert "centralized critic" in r.stdout and "loss/policy" in r.stdout


@pytest.mark.parametrize("argv,fragment", [
    (["--algo", "qmix"], "--algo 'qmix'"), (["--task", "nope"], "task='nope' is unknown"),
    (["--steps", "0"], "--steps 0: must be >= 1"), (["--freeze", "kv_manager"], "expected AGENT=POLICY"),
    (["--freeze", "cache=heuristic"], "unknown agent 'cache'"),
    (["--freeze", "spec_controller=constant:12"], "index 12 out of range 0..8"),
    (["--freeze", "spec_controller=greedy"], "allowed policies"),
    (["--algo", "ppo-single", "--freeze", "spec_controller=constant:0"], "multi-agent algorithms"),
    (["--algo", "ppo-single", "--credit", "counterfactual"], "multi-agent algorithms"),
    (["--warm-start", "clairvoyant"], "--warm-start 'clairvoyant'"), (["--credit", "shapley"], "--credit 'shapley'"),
    (["--trace", "/no/such.csv"], "no such trace file"), (["--resume", "--force"], "give one"),
    (["--gamma", "2"], "--gamma 2.0: must be a discount in (0, 1]"), (["--gamma", "nan"], "--gamma nan"),
    (["--lr", "inf"], "--lr inf"), (["--gae-lambda", "1.5"], "--gae-lambda 1.5"),
    (["--ent-coef", "-1"], "--ent-coef -1.0"), (["--bc-until", "3"], "--bc-until 3.0"),
    (["--minibatches", "100000", "--steps", "64"], "--minibatches 100000: more than the 800 samples"),
    (["--seed", "-1"], "--seed -1: must be in 0..9"), (["--seed", "99999999999999999999"], "must be in 0..9"),
    (["--seed", "10"], "evaluation seeds begin"),
    (["--out", "/proc/run"], "--out /proc/run: cannot create the folder"),
    (["--out", "/proc/version"], "--out /proc/version: is a file"),
])
def test_bad_arguments(argv, fragment, capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(argv)
    assert e.value.code == 2 and fragment in capsys.readouterr().err


@pytest.mark.parametrize("algo,credit", [("mappo", "team"), ("ippo", "team"), ("ppo-single", "team"),
                                         ("mappo", "counterfactual")])
def test_each_algorithm_trains_and_checkpoints(tmp_path, algo, credit):
    s = train(tiny(tmp_path, algo=algo, credit=credit))
    run = Path(s["run"])
    assert s["steps"] == 480 and (run / "checkpoint.pt").exists() and s["eval_score"] is not None
    rows = metrics(run)
    assert [int(r["step"]) for r in rows] == [160, 320, 480]
    assert {"train_episode_score", "policy_loss", "value_loss", "entropy", "bc_loss", "steps_per_s"} <= set(rows[0])
    assert json.loads((run / "args.json").read_text())["algo"] == algo


def test_the_same_seed_gives_the_same_run_in_one_process_or_two_workers(tmp_path):
    a = train(tiny(tmp_path / "a", seed=3, workers=0))
    b = train(tiny(tmp_path / "b", seed=3, workers=2))
    keep = ("step", "update", "episodes", "train_episode_score", "policy_loss", "value_loss", "entropy", "bc_loss")
    ra = [{k: r[k] for k in keep} for r in metrics(a["run"])]
    rb = [{k: r[k] for k in keep} for r in metrics(b["run"])]
    assert ra == rb and a["eval_score"] == b["eval_score"]
    c = train(tiny(tmp_path / "c", seed=4, workers=0))
    assert [r["policy_loss"] for r in metrics(c["run"])] != [r["policy_loss"] for r in ra]


def test_run_folders_resume_refuse_and_restart(tmp_path):
    first = train(tiny(tmp_path, steps=320, lr=1e-3))
    assert first["steps"] == 320
    with pytest.raises(SystemExit, match="already holds a run"):
        train(tiny(tmp_path, steps=320))
    # --resume takes the run's own settings (lr 1e-3 here); only --steps comes from the command, and a
    # setting that differs is refused by name, not silently ignored (nor a size-mismatch traceback)
    with pytest.raises(SystemExit, match="--hidden 32 differs from the run's 64"):
        train(tiny(tmp_path, steps=640, resume=True, lr=1e-3, hidden=32))
    resumed = train(tiny(tmp_path, steps=640, resume=True))
    assert json.loads((Path(resumed["run"]) / "args.json").read_text())["lr"] == 1e-3
    rows = metrics(resumed["run"])
    assert [int(r["step"]) for r in rows] == [160, 320, 480, 640]  # no step twice
    assert [int(r["update"]) for r in rows] == [1, 2, 3, 4]
    # a run killed after logging past its checkpoint: resuming cuts the log back to the checkpoint
    with open(Path(resumed["run"]) / "metrics.csv", "a") as f:
        f.write("800,5,0,0.1,0,0,0,0,0,0,0,0\n")
    train(tiny(tmp_path, steps=800, resume=True))
    assert [int(r["step"]) for r in metrics(resumed["run"])] == [160, 320, 480, 640, 800]
    clean = train(tiny(tmp_path, steps=160, force=True))
    assert [int(r["step"]) for r in metrics(clean["run"])] == [160]
    with pytest.raises(SystemExit, match="no checkpoint"):
        train(tiny(tmp_path / "fresh", resume=True))


def test_freeze_holds_an_agent_fixed(tmp_path):
    s = train(tiny(tmp_path, freeze=["spec_controller=constant:speculation_depth=2", "kv_manager=heuristic"]))
    from igym_marl.agents.training.networks import load_checkpoint
    blob = load_checkpoint(Path(s["run"]) / "checkpoint.pt", algos=("mappo",))
    assert blob["frozen"] == {"spec_controller": "constant:speculation_depth=2", "kv_manager": "heuristic"}


def test_warm_start_with_dagger_plays_as_the_heuristic_it_clones(tmp_path):
    """The recipe's warm start: behaviour cloning of the tuned heuristic, then rounds of the learner's
    own rollouts labelled by the heuristic (DAgger). On the Mooncake task the heuristic adapts (a
    small KV pool while calm, the full pool once the oldest request has waited a quarter of its TTFT
    SLO, a batch cap between 16 and 32); with learning switched off after the warm start, the greedy
    learner agrees with it on most windows and plays about as well on held-out episodes."""
    from igym_marl.agents import make_policy
    from igym_marl.agents.evaluation import run_episode
    task = "mooncake_conversation"
    kw = dict(task=task, steps=160, lr=1e-12, bc_coef=0.0, ent_coef=0.0, warm_episodes=6,
              warm_epochs=20, eval_episodes=2, num_envs=8, rollout=20)
    dagger = train(tiny(tmp_path / "dagger", dagger_rounds=3, **kw))
    heuristic = np.mean([run_episode(make_policy("heuristic"), task, 1_000_000 + k)["score"] for k in range(2)])
    agree = dict(zip(AGENTS, dagger["warm_start"]["agreement"]))
    assert agree["kv_manager"] > 0.75 and agree["batch_scheduler"] > 0.6 and agree["tenant_router"] > 0.95, agree
    windows = get_task(task).episode_windows
    assert dagger["warm_start"]["windows"] == 6 * windows + 3 * 8 * 20
    assert dagger["eval_score"] == pytest.approx(heuristic, abs=0.05)


def test_counterfactual_credit_is_the_exact_difference_of_two_futures():
    """An agent that keeps its previous action gets exactly 0; one that changes it gets the team
    reward minus the reward the same window would have earned with its previous action, which an
    independent env (same seed, same history) measures here."""
    task = get_task("adversarial_multitenant", episode_windows=20)
    slot = EnvSlot({"task": task}, 0, 1, 123, 0, {}, "counterfactual", "previous", False)
    slot.reset()
    base = [0, 0, 0, 0]
    for _ in range(5):
        slot.step(np.array(base))  # batch_cap 1, KV 0.1 FP16, no speculation, FCFS
    new = np.array([17, 10, 0, 1])  # batch_cap 256 chunked, KV 0.4 INT8, spec 0 (as before), priority on
    *_, r, diff, _, _, _, _ = (None, None, *slot.step(new)[2:])
    assert diff[2] == 0.0  # spec_controller kept its action
    for i, agent in enumerate(AGENTS):
        if i == 2:
            continue
        twin = serving_v0.parallel_env(task=task)
        twin.reset(seed=123)
        for _ in range(5):
            twin.step({a: 0 for a in AGENTS})
        alt = {a: int(new[j]) for j, a in enumerate(AGENTS)}
        alt[agent] = 0
        _, rew, *_ = twin.step(alt)
        assert diff[i] == pytest.approx(r - rew[AGENTS[0]], abs=1e-9), agent
    assert joint_knobs({a: int(new[j]) for j, a in enumerate(AGENTS)}).batch_cap == 256


def test_trained_checkpoint_evaluates(tmp_path):
    s = train(tiny(tmp_path))
    # the held-out evaluation at the end, in marl-eval's layout too
    from igym_marl.agents.analysis.marl_eval import check
    me = json.loads((Path(s["run"]) / "marl_eval.json").read_text())
    check(me)
    run = me["igym_marl"]["bursty_workload"]["mappo"]["run_0"]
    assert run["step_0"]["step_count"] == s["steps"] and run["absolute_metrics"]["score"] == [pytest.approx(s["eval_score"])]
    # two spawn workers: a learned policy in the parent must not deadlock the workers (it did with fork)
    r = subprocess.run([sys.executable, "evaluate.py", "--agent", "mappo", "--task", "bursty_workload", "--episodes", "2",
                        "--workers", "2", "--checkpoint", str(Path(s["run"]) / "checkpoint.pt"), "--no-progress"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "| mappo |" in r.stdout and "n=2" in r.stdout
    r = subprocess.run([sys.executable, "evaluate.py", "--agent", "mappo", "--task", "static_workload", "--episodes", "1",
                        "--checkpoint", str(Path(s["run"]) / "checkpoint.pt"), "--no-progress"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "trained on task 'bursty_workload', not 'static_workload'" in r.stderr


@pytest.mark.parametrize("algo,name", [("ppo-single", "ppo"), ("ippo", "mappo")])
def test_other_checkpoints_load_into_their_policies(tmp_path, algo, name):
    from igym_marl.agents import make_policy
    from igym_marl.agents.evaluation import run_episode
    s = train(tiny(tmp_path, algo=algo))
    rec = run_episode(make_policy(name, checkpoint=Path(s["run"]) / "checkpoint.pt"), "bursty_workload", 1_000_000,
                      episode_windows=10)
    assert 0.0 <= rec["score"] < 1.0
    with pytest.raises(ValueError, match="expected one of"):
        other = "mappo" if name == "ppo" else "ppo"
        make_policy(other, checkpoint=Path(s["run"]) / "checkpoint.pt").reset(get_task("bursty_workload"), 0)


def test_trains_on_a_trace_with_random_start_episodes(tmp_path):
    from igym_marl.agents.training.train import parse_args
    trace = ROOT / "data" / "traces" / "azure_conv_2023_1h.csv"
    args, _ = parse_args(["--trace", str(trace), "--trace-load", "0.8", "--trace-windows", "20", "--steps", "160",
                          "--num-envs", "2", "--rollout", "40", "--workers", "0", "--warm-episodes", "1",
                          "--warm-epochs", "1", "--dagger-rounds", "0", "--eval-every", "0", "--eval-episodes", "1",
                          "--no-progress", "--no-tensorboard", "--out", str(tmp_path / "run")])
    assert args.task == "trace" and args.env_kwargs["random_start"] and args.env_kwargs["load"] == 0.8
    s = train(args)
    assert s["steps"] == 160 and 0.0 <= s["eval_score"] <= 1.0
    with pytest.raises(SystemExit):
        parse_args(["--trace", str(tmp_path / "missing.csv")])
    with pytest.raises(SystemExit):
        parse_args(["--trace-load", "0.8"])


def test_oracle_teacher_looks_ahead_from_the_episode_it_labels():
    """The clairvoyant oracle can teach (``--warm-start oracle``): the warm-start collector hands it
    the env it labels, so its recorded episode is the very episode the evaluator plays with it."""
    from igym_marl.agents import make_policy
    from igym_marl.agents.training.algos import make_learner
    from igym_marl.agents.evaluation import run_episode
    from igym_marl.agents.training.warmstart import BC_SEED_BASE, collect
    from igym_marl.workloads import get_task
    task = get_task("adversarial_multitenant", episode_windows=6)
    data = collect({"task": task}, "oracle", 1, 0, make_learner("mappo", 16), 0.9)
    assert data["actions"].shape == (6, len(AGENTS))
    assert data["score"] == run_episode(make_policy("oracle"), task, BC_SEED_BASE)["score"]
