"""igym_marl/agents/policies/mpc.py: the oracle's search on a persistence forecast. It must never see the future."""

import numpy as np
import pytest

from igym_marl.agents import make_policy
from igym_marl.agents.evaluation import run_episode
from igym_marl.agents.policies.mpc import MPCPolicy, persistence_forecast
from igym_marl.agents.policies.oracle import OraclePolicy
from igym_marl import serving_v0
from igym_marl.envs import AGENTS
from igym_marl.sim import Knobs, Simulator
from igym_marl.sim.types import Workload
from igym_marl.workloads import get_task


def test_the_forecast_replays_the_last_lookback_seconds():
    """Hand-checked: arrivals at 1, 5, 9 and 11 s; at the clock 10 s with a 6-s look-back only 5 and 9
    are recent (11 has not arrived: the forecast never reads it), replayed every 6 s: at 11, 15,
    then 17, 21, up to 10 + 12 s."""
    tenants = get_task("static_workload").tenants
    w = Workload(np.array([1.0, 5.0, 9.0, 11.0]), np.array([10, 20, 30, 40]), np.array([5, 6, 7, 8]),
                 np.zeros(4, dtype=np.int64), tenants=tenants)
    sim = Simulator()
    sim.reset(w, seed=0)
    sim.advance(10.0, Knobs())
    arr, prompt, out, ten = persistence_forecast(sim, 6.0, 12.0)
    assert arr.tolist() == [11.0, 15.0, 17.0, 21.0]
    assert prompt.tolist() == [20, 30, 20, 30] and out.tolist() == [6, 7, 6, 7] and ten.tolist() == [0] * 4
    assert persistence_forecast(sim, 0.5, 12.0)[0].size == 0  # nothing arrived in the last half second


def _actions(policy, task, workload, windows):
    env = serving_v0.parallel_env(task=task)
    obs, infos = env.reset(seed=7)
    env.workload = workload  # the traffic we choose, before anything is served
    env.sim.reset(workload, seed=7)
    policy.reset(env.task, 7)
    policy.attach(env)
    out = []
    for _ in range(windows):
        act = policy.act(obs, infos, env.state())
        out.append(tuple(act[a] for a in AGENTS))
        obs, _, _, _, infos = env.step(act)
    return out


def test_the_mpc_never_sees_traffic_that_has_not_arrived_and_the_oracle_does():
    """Two workloads equal up to 60 s and different after (the second loses every later request):
    the MPC's decisions up to that moment are the same on both; the oracle's are not."""
    task = get_task("adversarial_multitenant", episode_windows=24)
    w = task.workload(7)
    cut = w.arrival_s < 60.0
    short = w.take(np.flatnonzero(cut))  # keys and all: only the traffic after 60 s differs
    decided = int(60.0 // task.window_s)  # windows decided before the traffic differs
    mpc = [_actions(MPCPolicy(horizon=3, tail=6), task, x, decided) for x in (w, short)]
    assert mpc[0] == mpc[1]
    oracle = [_actions(OraclePolicy(horizon=3, tail=6), task, x, decided) for x in (w, short)]
    assert oracle[0] != oracle[1]


def test_the_mpc_plays_an_episode_from_the_registry_and_refuses_bad_settings():
    rec = run_episode(make_policy("mpc"), get_task("bursty_workload", episode_windows=12), 1_000_000)
    assert 0.0 <= rec["score"] <= 1.0 and rec["policy.rollouts"] > 0
    with pytest.raises(ValueError, match="lookback_s=0 must be a number > 0"):
        MPCPolicy(lookback_s=0)
    with pytest.raises(RuntimeError, match="needs the env"):
        p = make_policy("mpc")
        p.reset(get_task("static_workload"), 1_000_000)
        p.act({}, {}, None)
