"""RLlib and Ray: the env adapters, a tiny training run, evaluation of its checkpoint through
evaluate.py, and a sweep of train_marl.py jobs as Ray tasks (make test-ray; the ray extra)."""

import json
import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest

from igym_marl.agents.training.rllib import SHARED_MODULE, SharedServingEnv, make_env
from igym_marl import serving_v0
from igym_marl.envs import AGENT_KNOBS, AGENTS

ROOT = Path(__file__).resolve().parents[2]


def run(*args, timeout=900):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_the_package_runs_on_rays_gymnasium():
    import ray
    assert ray.__version__ == "2.60.0"
    assert gymnasium.__version__ == "1.2.2"  # what ray 2.60 pins; tests/envs runs on it here too


def test_shared_env_pads_tags_and_masks():
    env = SharedServingEnv({"task": "adversarial_multitenant", "episode_windows": 3})
    obs, _ = env.reset(seed=5)
    penv = serving_v0.parallel_env(task="adversarial_multitenant", episode_windows=3)
    ref, _ = penv.reset(seed=5)
    sp = env.spaces
    widest = max(penv.observation_space(a).shape[0] for a in AGENTS)  # 49: the KV manager's
    assert sp.n == 30 and sp.width == widest + 4 == 49 + 4
    for i, a in enumerate(AGENTS):
        x = obs[a]["observations"]
        d = penv.observation_space(a).shape[0]
        assert np.array_equal(x[:d], ref[a]) and not x[d:sp.width - 4].any()
        assert x[sp.width - 4:].tolist() == [float(j == i) for j in range(4)]
        assert obs[a]["action_mask"].sum() == AGENT_KNOBS[a].n
        assert env.observation_spaces[a].contains(obs[a])
    with pytest.raises(ValueError, match="agent 'tenant_router': action=5 is masked; allowed: 0..1"):
        env.step({"batch_scheduler": 0, "kv_manager": 0, "spec_controller": 0, "tenant_router": 5})
    for _ in range(3):
        obs, rew, term, trunc, _ = env.step({a: 1 for a in AGENTS})
    assert trunc["__all__"] and set(obs) == set(AGENTS)  # the last observation, for bootstrapping
    assert len(set(rew.values())) == 1  # the team reward
    with pytest.raises(ValueError, match="sharing='team' is unknown"):
        make_env({"sharing": "team"})


def test_rllib_trains_checkpoints_and_evaluate_plays_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    r = run("scripts/train_rllib.py", "--task", "bursty_workload", "--iterations", "2", "--episode-windows", "10",
            "--train-batch", "100", "--minibatch", "50", "--epochs", "1", "--eval-every", "1", "--eval-episodes", "1",
            "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    rows = (out / "eval.csv").read_text().splitlines()
    assert rows[0].startswith("iteration,env_steps,train_wall_s,eval_score_mean") and len(rows) == 3
    assert json.loads((out / "summary.json").read_text())["iterations"] == 2
    assert (out / "checkpoint" / "learner_group" / "learner" / "rl_module" / SHARED_MODULE).is_dir()
    res = tmp_path / "eval.json"
    r = run("evaluate.py", "--agent", "rllib", "--checkpoint", str(out / "checkpoint"), "--task", "bursty_workload",
            "--episodes", "1", "--out", str(res), "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads(res.read_text())
    assert len(rec) == 1 and rec[0]["agent"] == "rllib" and 0.0 <= rec[0]["score"] <= 1.0
    # the same run refuses to overwrite itself
    r = run("scripts/train_rllib.py", "--iterations", "1", "--out", str(out))
    assert r.returncode != 0 and "already holds a run" in r.stderr


def test_per_agent_modules(tmp_path):
    out = tmp_path / "run"
    r = run("scripts/train_rllib.py", "--sharing", "per-agent", "--task", "adversarial_multitenant", "--iterations",
            "1", "--episode-windows", "8", "--train-batch", "64", "--minibatch", "32", "--epochs", "1",
            "--eval-episodes", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    modules = out / "checkpoint" / "learner_group" / "learner" / "rl_module"
    assert sorted(p.name for p in modules.iterdir() if p.is_dir()) == sorted(AGENTS)
    from igym_marl.agents.training.rllib import RLlibPolicy
    from igym_marl.agents.evaluation import run_episode
    rec = run_episode(RLlibPolicy(str(out / "checkpoint")), "adversarial_multitenant", 1_000_000, episode_windows=8)
    assert 0.0 <= rec["score"] <= 1.0
    with pytest.raises(ValueError, match="is not an RLlib algorithm checkpoint"):
        RLlibPolicy(str(tmp_path))


def test_sweep_as_ray_tasks_resumes_and_reports_failures_by_name(tmp_path):
    base = ["scripts/train_all.py", "--ray-address", "local", "--tasks", "static_workload", "--algos", "mappo",
            "--seeds", "0,1", "--steps", "64", "--episodes", "1", "--jobs", "1", "--baselines", "heuristic",
            "--curves", str(tmp_path / "curves.png")]
    small = "--warm-start none --eval-episodes 1 --num-envs 2 --rollout 32"
    r = run(*base, "--train-args", small, "--out", str(tmp_path / "sweep"))
    assert r.returncode == 0, r.stderr[-3000:]
    for s in (0, 1):
        run_dir = tmp_path / "sweep" / "recipe" / f"static_workload-mappo-s{s}"
        assert (run_dir / "summary.json").exists() and (run_dir / "checkpoint.pt").exists()
    recs = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert sum(1 for x in recs if x["agent"] == "mappo") == 2 and any(x["agent"] == "heuristic" for x in recs)
    stamp = (tmp_path / "sweep" / "recipe" / "static_workload-mappo-s0" / "summary.json").stat().st_mtime
    r = run(*base, "--train-args", small, "--out", str(tmp_path / "sweep"))  # resumed: nothing retrained
    assert r.returncode == 0 and "finished already, kept: static_workload-mappo-s0, static_workload-mappo-s1" in r.stdout
    assert (tmp_path / "sweep" / "recipe" / "static_workload-mappo-s0" / "summary.json").stat().st_mtime == stamp
    r = run(*base, "--train-args", small + " --lr -1", "--out", str(tmp_path / "bad"))
    assert r.returncode == 1
    for s in (0, 1):
        assert f"FAILED static_workload-mappo-s{s} (recipe): exit" in r.stderr


def test_rllib_on_a_trace(tmp_path):
    out = tmp_path / "run"
    r = run("scripts/train_rllib.py", "--task", "trace", "--trace-path", "data/traces/azure_conv_2023_1h.csv",
            "--iterations", "1", "--episode-windows", "6", "--train-batch", "60", "--minibatch", "30", "--epochs", "1",
            "--eval-episodes", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert len((out / "eval.csv").read_text().splitlines()) == 2
    r = run("scripts/train_rllib.py", "--task", "trace", "--out", str(tmp_path / "x"))
    assert r.returncode != 0 and "--task trace needs --trace-path" in r.stderr
