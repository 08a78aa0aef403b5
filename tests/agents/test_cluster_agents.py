"""Cluster baselines and the cluster MAPPO trainer."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from agents.cluster import ClusterConstant, ClusterOracle, HPAPolicy, actions_for, run_cluster_episode
from igym_marl import serving_cluster_v0
from igym_marl.sim import Knobs
from igym_marl.sim.cluster import ACTIVE, OFF

ROOT = Path(__file__).resolve().parents[2]


def fake_env(active: int, n: int, outstanding: int, window: int = 1):
    state = np.array([ACTIVE] * active + [OFF] * (n - active))
    cluster = SimpleNamespace(state=state, outstanding=lambda i: (outstanding, 0))
    env = SimpleNamespace(cluster=cluster, n=n, window=window)
    env.possible_agents = []
    return env


def test_hpa_applies_the_kubernetes_rule_with_tolerance_and_downscale_stabilization(monkeypatch):
    """desired = ceil(active x metric / target): 2 replicas at 100 outstanding each against a
    target of 50 -> 4; within 10 % of the target nothing changes; scaling down waits until the
    highest desired count of the stabilization window has come down."""
    import agents.cluster as mod
    monkeypatch.setattr(mod, "actions_for", lambda env, knobs, rule, target: {"target": target, "rule": rule})
    hpa = HPAPolicy(Knobs(), target_outstanding=50.0, stabilization=3)
    hpa.reset(fake_env(2, 8, 0, window=0), 0)
    assert hpa.act(fake_env(2, 8, 100)) == {"target": 4, "rule": "least_outstanding"}
    assert hpa.act(fake_env(4, 8, 53))["target"] == 4  # 6 % over target: within tolerance
    assert hpa.act(fake_env(4, 8, 10))["target"] == 4  # desired 1, but 4 was desired within 3 windows
    assert hpa.act(fake_env(4, 8, 10))["target"] == 4
    assert hpa.act(fake_env(4, 8, 10))["target"] == 1  # the window has forgotten the 4s
    assert hpa.act(fake_env(1, 8, 1000))["target"] == 8  # capped at N


def test_constant_and_oracle_play_valid_actions_and_the_oracle_is_deterministic():
    env = serving_cluster_v0.parallel_env("cluster_bursty", replicas=2, episode_windows=6)
    env.reset(seed=0)
    act = actions_for(env, Knobs(batch_cap=64), "tenant_pinning", 1)
    assert act["router"] == 2 and act["autoscaler"] == 0 and act["r1/batch_scheduler"] == act["r0/batch_scheduler"]
    env.step(act)
    kw = dict(episode_windows=6, replicas=2)
    a = run_cluster_episode(ClusterOracle(Knobs(), horizon=2, tail=1), "cluster_bursty", 3, **kw)
    b = run_cluster_episode(ClusterOracle(Knobs(), horizon=2, tail=1), "cluster_bursty", 3, **kw)
    assert a["score"] == b["score"] and a["targets"] == b["targets"]
    c = run_cluster_episode(ClusterConstant(Knobs(), "round_robin", 1), "cluster_bursty", 3, **kw)
    assert set(c["targets"]) == {1} and c["gpu_share"] < 1.0
    with pytest.raises(ValueError, match="rule='fastest' is unknown"):
        run_cluster_episode(ClusterConstant(Knobs(), "fastest", 1), "cluster_bursty", 3, **kw)


def test_train_cluster_end_to_end_writes_a_checkpoint_that_plays(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "scripts/train_cluster.py", "--task", "cluster_bursty", "--replicas", "2", "--steps", "40",
           "--rollout", "10", "--envs", "2", "--warm-episodes", "1", "--warm-epochs", "2", "--eval-every", "20",
           "--episodes", "1", "--episode-windows", "8", "--out", str(out)]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True, timeout=600)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 40 and summary["replicas"] == 2 and len(summary["held_out"]) == 1
    assert set(summary["warm_start"]["agreement"]) == {"batch_scheduler", "kv_manager", "spec_controller",
                                                      "tenant_router", "router", "autoscaler"}
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("steps,") and len(rows) == 1 + 3  # steps 0, 20, 40
    from agents.cluster_learner import ClusterLearned
    pol = ClusterLearned(out / "checkpoint.pt")
    r = run_cluster_episode(pol, "cluster_bursty", 1_000_000, replicas=2, episode_windows=8)
    assert r["score"] == summary["held_out"][0]["score"]
    with pytest.raises(ValueError, match="trained at N=2 replicas; the env has N=3"):
        run_cluster_episode(pol, "cluster_bursty", 1, replicas=3, episode_windows=2)
    torch.save({"kind": "mappo"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a cluster MAPPO checkpoint"):
        ClusterLearned(tmp_path / "other.pt")


@pytest.mark.parametrize("args, match", [
    (["--task", "cluster_x"], "--task 'cluster_x': allowed cluster_diurnal, cluster_bursty"),
    (["--replicas", "0"], "--replicas 0: allowed 1..64"),
    (["--warm-start", "heuristic"], "--warm-start 'heuristic': allowed hpa, oracle, none"),
    (["--steps", "0"], "--steps 0: must be >= 1"),
])
def test_train_cluster_refuses_bad_arguments(args, match):
    p = subprocess.run([sys.executable, "scripts/train_cluster.py", *args], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 2 and match in p.stderr
