"""The honest bar: exact clones, the fast constant scorer, the global search, the heuristic that can
play any constant, the oracle's rollouts and the headroom statistic."""

import numpy as np
import pytest

from igym_marl.agents import make_policy
from igym_marl.agents.evaluation import run_episode
from igym_marl.agents.policies.heuristic import HeuristicParams, HeuristicPolicy
from igym_marl.agents.policies.oracle import OraclePolicy, neighbours
from igym_marl.agents.policies.simple import ConstantPolicy
from igym_marl.agents.analysis.tuning import constant_score, joint_grid, successive_halving
from igym_marl import serving_v0
from igym_marl.envs import AGENTS, AGENT_KNOBS
from igym_marl.sim import Knobs, Simulator
from igym_marl.workloads import get_task

STARVE = Knobs(batch_cap=128, kv_budget_fraction=0.1, quantization_tier="INT8", prefill_decode_split=False,
               priority_routing=True)


def test_a_simulator_clone_has_the_same_future_and_its_own_state():
    task = get_task("adversarial_multitenant")
    sim = Simulator(task.config)
    sim.reset(task.workload(3), seed=3)
    for _ in range(40):
        sim.advance(6.0, STARVE)
    twin = sim.clone()
    other = sim.clone()
    other.advance(30.0, Knobs(batch_cap=2, kv_budget_fraction=1.0))  # a diverging copy leaves the others alone
    plan = [Knobs(), STARVE, Knobs(speculation_depth=3, quantization_tier="INT4"), STARVE]
    for k in plan:
        assert sim.advance(6.0, k) == twin.advance(6.0, k)
    assert np.array_equal(sim.ri, twin.ri) and np.array_equal(sim.rf, twin.rf, equal_nan=True)
    assert not np.array_equal(sim.ri, other.ri)
    assert sim.episode_metrics() == twin.episode_metrics()


def test_an_env_clone_has_the_same_future():
    env = serving_v0.parallel_env(task="bursty_workload")
    env.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(30):
        env.step({a: int(rng.integers(AGENT_KNOBS[a].n)) for a in AGENTS})
    twin = env.clone()
    assert twin.observation_space("kv_manager") is not env.observation_space("kv_manager")  # spaces never shared
    while env.agents:
        act = {a: int(rng.integers(AGENT_KNOBS[a].n)) for a in AGENTS}
        o1, r1, *_ = env.step(act)
        o2, r2, *_ = twin.step(act)
        assert r1 == r2 and all(np.array_equal(o1[a], o2[a]) for a in AGENTS)
    assert env.score == twin.score
    with pytest.raises(RuntimeError, match="reset"):
        serving_v0.parallel_env(task="static_workload").clone()


@pytest.mark.parametrize("task_id", ["static_workload", "bursty_workload", "adversarial_multitenant"])
def test_constant_score_is_the_env_score_and_the_heuristic_can_play_any_constant(task_id):
    """The search scores a constant on the simulator alone in one advance; it must equal the env's
    score window by window, and the heuristic set to play that constant must score the same."""
    task = get_task(task_id, episode_windows=40)
    k = Knobs(batch_cap=64, kv_budget_fraction=0.3, quantization_tier="INT8", speculation_depth=1,
              prefill_decode_split=False, priority_routing=True)
    fast = constant_score(task, k, 7)
    assert fast == pytest.approx(run_episode(ConstantPolicy(k), task, 7)["score"], rel=1e-12, abs=1e-15)
    assert fast == pytest.approx(run_episode(HeuristicPolicy(HeuristicParams.playing(k)), task, 7)["score"],
                                 rel=1e-12, abs=1e-15)


def test_the_joint_grid_is_every_joint_action_in_index_order():
    grid = joint_grid()
    assert len(grid) == 20 * 30 * 9 * 2 == len(set(grid))
    assert grid[0] == Knobs(batch_cap=1, prefill_decode_split=False, kv_budget_fraction=0.1, quantization_tier="FP16",
                            speculation_depth=0, priority_routing=False)
    assert grid[1].priority_routing and grid[2].speculation_depth == 1 and grid[-1].batch_cap == 512


def test_successive_halving_keeps_the_best_by_mean_training_score(monkeypatch):
    """On a short episode and 12 configurations: with everyone kept it is a brute-force argmax over
    the same seeds; with halving, each round keeps the configurations with the best means."""
    import igym_marl.agents.analysis.tuning as tuning
    monkeypatch.setattr(tuning, "get_task", lambda tid: get_task("bursty_workload", episode_windows=12))
    configs = list(range(0, 10800, 900))
    task = get_task("bursty_workload", episode_windows=12)
    brute = {i: np.mean([constant_score(task, joint_grid()[i], s) for s in (0, 1)]) for i in configs}
    full = successive_halving("bursty_workload", configs, halving=((2, len(configs)),))
    assert [i for i, _ in full["ranking"]] == sorted(configs, key=lambda i: (-brute[i], i))
    halved = successive_halving("bursty_workload", configs, halving=((1, 4), (2, 2)))
    first = sorted(configs, key=lambda i: (-halved["scores"][i][0], i))[:4]
    assert set(i for i, _ in halved["ranking"]) == set(sorted(first, key=lambda i: (-brute[i], i))[:2])
    assert all(len(halved["scores"][i]) == (2 if i in first else 1) for i in configs)


def test_oracle_lookahead_leaves_the_env_alone_and_credits_service_not_speed(monkeypatch):
    """A look-ahead runs on clones (the env's state is untouched); it values requests served within
    SLO, not how soon they finish: on the steady static task a reload to INT8 only makes requests
    finish sooner, at 0.995 quality, so FP16 must look better. On a short adversarial episode the
    oracle anchored on a constant scores at least that constant."""
    import igym_marl.agents.policies.oracle as oracle
    fp16 = Knobs(batch_cap=128, kv_budget_fraction=0.1)
    monkeypatch.setattr(oracle, "best_constant_or_default", lambda task_id: (fp16, True))
    env = serving_v0.parallel_env(task="static_workload")
    env.reset(seed=1_000_000)
    o = OraclePolicy(horizon=3, tail=10)
    o.reset(env.task, 1_000_000)
    o.attach(env)
    before = env.sim.ri.copy()
    v16 = o.value(fp16, 3, 10)
    v8 = o.value(Knobs(batch_cap=128, kv_budget_fraction=0.1, quantization_tier="INT8"), 3, 10)
    assert np.array_equal(env.sim.ri, before) and env.sim.t_nominal == 0.0
    assert v16 > v8 > 0
    assert len(neighbours(STARVE)) == len(set(neighbours(STARVE))) >= 8
    monkeypatch.setattr(oracle, "best_constant_or_default", lambda task_id: (STARVE, True))
    task = get_task("adversarial_multitenant", episode_windows=40)
    const = run_episode(ConstantPolicy(STARVE), task, 11)["score"]
    rec = run_episode(OraclePolicy(horizon=3, tail=6), task, 11)
    assert rec["score"] >= const - 1e-9 and rec["policy.rollouts"] > 0


def test_headroom_is_the_share_of_the_gap_between_best_constant_and_oracle():
    from igym_marl.agents.analysis import stats
    recs = []
    for s, (c, o, a) in enumerate([(0.5, 0.7, 0.6), (0.4, 0.8, 0.6)]):
        for agent, v in (("best-constant", c), ("oracle", o), ("x", a)):
            recs.append({"agent": agent, "task": "t", "seed": s, "score": v})
    rows = {r["agent"]: r for r in stats.headroom(recs)}
    assert rows["x"]["headroom"] == pytest.approx((0.6 - 0.45) / (0.75 - 0.45))
    assert rows["oracle"]["headroom"] == pytest.approx(1.0) and rows["best-constant"]["headroom"] == 0.0
    assert "oracle *" in stats.headroom_markdown(list(rows.values()))
    flat = [{**r, "score": 0.5 + 0.001 * (r["agent"] == "oracle")} for r in recs]  # oracle barely above
    assert all(r["headroom"] != r["headroom"] for r in stats.headroom(flat))
    assert "no headroom" in stats.headroom_markdown(stats.headroom(flat))


def test_registry_builds_the_oracle_and_it_refuses_to_run_blind():
    o = make_policy("oracle")
    assert o.sees_env and o.name == "oracle"
    o.reset(get_task("static_workload"), 1_000_000)
    with pytest.raises(RuntimeError, match="needs the env"):
        o.act({}, {}, None)
    with pytest.raises(ValueError, match="horizon"):
        OraclePolicy(horizon=0)


def test_adaptivity_gap_is_paired_over_seeds():
    """(oracle - constant) / constant from the means; when every seed gains the same, the CI
    collapses on it, and an oracle no better than the constant gives 0."""
    from igym_marl.agents.analysis.stats import adaptivity_gap
    assert adaptivity_gap([0.4, 0.5], [0.6, 0.75]) == pytest.approx((0.5, 0.5, 0.5))
    gap, lo, hi = adaptivity_gap([0.4, 0.5, 0.6], [0.4, 0.6, 0.6])
    assert gap == pytest.approx(0.1 / 1.5) and lo == 0.0 and lo <= gap <= hi


def test_paired_difference_averages_training_seeds_per_episode_and_resamples_episodes():
    """Hand-computed: the agent has two records (two training seeds) on seed 0, one on seed 1;
    the reference one each. Per seed: 0.6 - 0.5 = +0.1 and 0.2 - 0.4 = -0.2, mean -0.05; the CI
    lies between the two per-seed differences. A seed only one of them played is left out."""
    from igym_marl.agents.analysis import stats
    recs = [{"agent": "x", "task": "t", "seed": 0, "score": 0.55}, {"agent": "x", "task": "t", "seed": 0, "score": 0.65},
            {"agent": "x", "task": "t", "seed": 1, "score": 0.2}, {"agent": "x", "task": "t", "seed": 2, "score": 0.9},
            {"agent": "h", "task": "t", "seed": 0, "score": 0.5}, {"agent": "h", "task": "t", "seed": 1, "score": 0.4},
            {"agent": "h", "task": "u", "seed": 0, "score": 0.1}]
    d, lo, hi, n = stats.paired_difference(recs, "t", "x", "h")
    assert n == 2 and d == pytest.approx(-0.05)
    assert -0.2 <= lo <= d <= hi <= 0.1 + 1e-12
    assert stats.paired_difference(recs, "u", "x", "h")[3] == 0  # no shared seed on task u
    same = [{**r, "agent": "y"} for r in recs if r["agent"] == "h"]
    assert stats.paired_difference(recs + same, "t", "y", "h")[:3] == (0.0, 0.0, 0.0)  # identical: a zero CI
    table = stats.paired_markdown(recs, "h")
    assert "| x | -0.050 [" in table and "| h |" not in table
