"""serving_cluster_v0: the PettingZoo contract, the score, determinism and clear errors."""

import subprocess
import sys

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from igym_marl import serving_cluster_v0
from igym_marl.envs import AGENTS, DEFAULT_ACTIONS
from igym_marl.envs.cluster import N_CLUSTER, N_REPLICA, ROUTER_RULES
from igym_marl.envs.features import OBS_DIM, STATE_DIM
from igym_marl.sim import Knobs
from igym_marl.sim.cluster import Routing


def short(**kw):
    kw.setdefault("episode_windows", 12)
    return serving_cluster_v0.parallel_env(task=kw.pop("task", "cluster_bursty"), **kw)


def default_actions(env, target=None):
    act = {a: DEFAULT_ACTIONS[a.split("/")[1]] for a in env.possible_agents if "/" in a}
    act["router"] = ROUTER_RULES.index("least_outstanding")
    act["autoscaler"] = (target or env.n) - 1
    return act


def test_parallel_api_and_seed():
    parallel_api_test(short(), num_cycles=20)
    parallel_seed_test(lambda: short(replicas=2))


def test_agents_spaces_and_state_scale_with_n():
    env = short(replicas=3)
    assert env.possible_agents[:4] == [f"r0/{a}" for a in AGENTS]
    assert env.possible_agents[-2:] == ["router", "autoscaler"] and len(env.possible_agents) == 14
    assert env.observation_space("r2/kv_manager").shape == (OBS_DIM["kv_manager"] + N_REPLICA,)
    assert env.observation_space("router").shape == (N_CLUSTER,)
    assert env.action_space("autoscaler").n == 3 and env.action_space("router").n == len(ROUTER_RULES) == 8
    obs, _ = env.reset(seed=0)
    assert env.state().shape == (N_CLUSTER + STATE_DIM,)
    for a, o in obs.items():
        assert env.observation_space(a).contains(o), a


def test_rewards_sum_to_the_score_and_cost_counts_billed_replicas():
    """The team's rewards sum to 100 x score = goodput x quality - cost_weight x GPU share; with
    every replica billed all episode the GPU share is 1, on 2 of 4 replicas (after the first
    window, which has all 4) about half."""
    scores = {}
    for target in (4, 2):
        env = short(episode_windows=30)
        env.reset(seed=5)
        total = 0.0
        while env.agents:
            _, rew, _, _, infos = env.step(default_actions(env, target))
            total += rew["router"]
            assert len(set(rew.values())) == 1
        ep = infos["router"]["episode"]
        assert total == pytest.approx(100 * env.score)
        assert ep["score"] == pytest.approx(ep["goodput"] * ep["quality"] - 0.5 * ep["gpu_share"])
        scores[target] = ep
    assert scores[4]["cost"] == pytest.approx(0.5) and scores[4]["gpu_share"] == pytest.approx(1.0)
    assert 0.5 < scores[2]["gpu_share"] < 0.6


def test_same_seed_same_episode_across_processes():
    code = ("from igym_marl import serving_cluster_v0 as s; from tests.envs.test_cluster_env import default_actions;"
            "e = s.parallel_env(task='cluster_diurnal', episode_windows=15); e.reset(seed=9)\n"
            "while e.agents: e.step(default_actions(e, 3))\n"
            "print(repr(e.score))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    assert len(outs) == 1 and float(outs.pop()) > 0


def test_clone_has_the_same_future():
    env = short()
    env.reset(seed=2)
    env.step(default_actions(env, 2))
    twin = env.clone()
    for _ in range(4):
        a = env.step(default_actions(env, 3))
        b = twin.step(default_actions(twin, 3))
        assert a[1] == b[1]
        assert all(np.array_equal(a[0][k], b[0][k]) for k in a[0])
    assert env.score == twin.score


def test_step_cluster_takes_weighted_routing_and_bad_weights_fail_by_name():
    env = short(replicas=2)
    env.reset(seed=1)
    env.step_cluster(Knobs(), Routing("weighted", np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])), 2)
    with pytest.raises(ValueError, match=r"weights\[1, 0\]=-2.0 must be finite and >= 0"):
        env.step_cluster(Knobs(), Routing("weighted", np.array([[1.0, 0.0], [-2.0, 1.0], [0.0, 1.0]])), 2)


@pytest.mark.parametrize("agent, value, match", [
    ("autoscaler", 4, r"agent 'autoscaler': action=4 must be an integer in 0..3: target active replicas - 1"),
    ("router", -1, r"agent 'router': action=-1 must be an integer in 0..7: a routing rule: 0 round_robin, .*, "
                          r"3 prefix_affinity, 4 scored:0.2, 5 scored:0.43, 6 scored:0.6, 7 scored:0.8"),
    ("router", 1.0, r"agent 'router': action=1.0"),
    ("r1/kv_manager", 30, r"agent 'r1/kv_manager'"),
])
def test_bad_actions_name_the_agent_and_what_is_allowed(agent, value, match):
    env = short()
    env.reset(seed=0)
    act = default_actions(env)
    act[agent] = value
    with pytest.raises(ValueError, match=match):
        env.step(act)


def test_bad_env_arguments():
    with pytest.raises(ValueError, match="task='cluster_x' is unknown; allowed: cluster_diurnal, cluster_bursty"):
        serving_cluster_v0.parallel_env(task="cluster_x")
    with pytest.raises(ValueError, match="replicas=65 must be an integer in 1..64"):
        serving_cluster_v0.parallel_env(replicas=65)
    with pytest.raises(ValueError, match="unknown option"):
        serving_cluster_v0.parallel_env(speed=3)
    with pytest.raises(ValueError, match="cost_weight=2 must be a number in 0..1"):
        serving_cluster_v0.parallel_env(cost_weight=2)
    env = short()
    assert env.state().shape == (N_CLUSTER + STATE_DIM,) and not env.state().any()
    with pytest.raises(RuntimeError, match="call reset"):
        env.step({})
    with pytest.raises(RuntimeError, match="call reset"):
        env.score
    with pytest.raises(RuntimeError, match="call reset"):
        env.clone()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="no action for agent"):
        env.step({"router": 0})


def test_the_episode_reports_ttft_attainment_and_prefix_hits_as_the_replicas_saw_them():
    """Recomputed here from every replica's requests: the share of arrived requests whose first token
    met their tenant's TTFT SLO, and the cached share of admitted prompt tokens (positive on
    conversations that resend their history)."""
    env = short(task="cluster_conversation", episode_windows=20)
    env.reset(seed=3)
    while env.agents:
        _, _, _, _, infos = env.step(default_actions(env))
    ep = infos["router"]["episode"]
    ok = n = 0
    hit = tok = 0
    ttfts = []
    for sim in env.cluster.sims:
        r = sim.requests()
        for i in range(len(r.arrival_s)):
            if r.arrival_s[i] >= env.task.horizon_s:
                continue
            n += 1
            ttft = r.first_token_s[i] - r.arrival_s[i]
            ttfts.append(ttft if ttft == ttft else float("inf"))
            ok += int(ttft == ttft and ttft <= sim.workload.tenants[int(r.tenant[i])].ttft_slo_ms / 1e3)
            if r.first_token_s[i] == r.first_token_s[i]:
                hit += int(r.cached_prompt_tokens[i])
                tok += int(r.prompt_tokens[i])
    assert n > 20 and ep["ttft_attainment"] == pytest.approx(ok / n, rel=1e-12)
    assert ep["prefix_hit_rate"] == pytest.approx(hit / tok, rel=1e-12) and ep["prefix_hit_rate"] > 0.0
    assert ep["ttft_p50_ms"] == pytest.approx(1e3 * sorted(ttfts)[n // 2] if n % 2 else
                                              500 * (sorted(ttfts)[n // 2 - 1] + sorted(ttfts)[n // 2]), rel=1e-12)
