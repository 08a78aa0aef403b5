"""The cluster engine: routing, autoscaling with cold starts and drains, conservation, determinism."""

import doctest

import numpy as np
import pytest

import igym_marl.sim.cluster as cluster_mod
from igym_marl.sim import Knobs, SimConfig, Workload
from igym_marl.sim.cluster import Cluster, ClusterConfig, Routing, ROUTING_RULES
from igym_marl.sim.layout import FINISHED
from igym_marl.workloads.generators import poisson_workload
from tests.sim.test_timeline import LOOSE, Cfg, it

KNOBS = Knobs(batch_cap=8, prefill_decode_split=True)


def test_module_example():
    assert doctest.testmod(cluster_mod).failed == 0


def test_two_replica_timeline_by_hand():
    """Replica 1 is started at t=0 (cold start 5 s + 16 GB of weights at 16 GB/s ~ 6 s) and serves
    from the next window boundary; round robin sends the first two requests to replica 0 (the
    only active one) and the pair at 40 s one to each; scaled down at 50 s, the empty replica 1
    drains and is off from 60 s. Every first token and finish is the cost model's iteration
    time, summed by hand; GPU cost is billed for starting, active and draining replicas."""
    cfg = ClusterConfig(replicas=2, replica=Cfg(), engine_start_s=5.0, storage_gb_per_s=16.0, initial_active=1)
    w = Workload.from_requests([(0.0, 100, 3, 0), (0.0, 200, 2, 0), (40.0, 50, 2, 0), (40.0, 80, 2, 0)], LOOSE)
    c = Cluster(cfg)
    c.reset(w, seed=0)
    cold = 5.0 + c.sims[1].replica.weights_gb("FP16") / 16.0
    assert 5.5 < cold < 10.0
    rr = Routing("round_robin")
    wins = [c.advance(10.0, KNOBS, rr, target_active=2 if k < 5 else 1) for k in range(7)]
    assert [w_.states for w_ in wins] == [("active", "starting")] + [("active", "active")] * 4 + \
        [("active", "draining"), ("active", "off")]
    assert [list(w_.routed[0]) + list(w_.routed[1]) for w_ in wins] == \
        [[2, 0]] + [[0, 0]] * 3 + [[1, 1]] + [[0, 0]] * 2
    k = c.sims[0]._consts["FP16"]
    r0, r1 = c.sims[0].requests(), c.sims[1].requests()
    t1 = it(k, prefills=[(100, 0), (200, 0)])
    t2 = t1 + it(k, decode_ctx=[101, 201])
    t3 = t2 + it(k, decode_ctx=[102])
    np.testing.assert_allclose(r0.first_token_s[:2], [t1, t1], rtol=1e-12)
    np.testing.assert_allclose(r0.finish_s[:2], [t3, t2], rtol=1e-12)
    f2 = 40.0 + it(k, prefills=[(50, 0)])
    f3 = 40.0 + it(k, prefills=[(80, 0)])
    assert r0.first_token_s[2] == pytest.approx(f2, rel=1e-12)
    assert r0.finish_s[2] == pytest.approx(f2 + it(k, decode_ctx=[51]), rel=1e-12)
    assert r1.first_token_s.tolist() == pytest.approx([f3], rel=1e-12)
    assert r1.finish_s[0] == pytest.approx(f3 + it(k, decode_ctx=[81]), rel=1e-12)
    usd_h = c.sims[0].config.gpu_hour_usd
    assert [w_.billed_usd for w_ in wins] == pytest.approx([2 * usd_h * 10 / 3600] * 6 + [usd_h * 10 / 3600])
    assert c.owner.tolist() == [0, 0, 0, 1] and c.row.tolist() == [0, 1, 2, 0]
    assert (c.request_status() == FINISHED).all()
    c.check_invariants()


def _random_run(seed, windows=60, n=4):
    w = poisson_workload(16.0, 10.0 * windows, seed)
    c = Cluster(ClusterConfig(replicas=n, engine_start_s=5.0))
    c.reset(w, seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(windows):
        rule = ROUTING_RULES[rng.integers(3)]
        knobs = [Knobs(batch_cap=int(rng.choice([4, 16, 64])), kv_budget_fraction=float(rng.choice([0.1, 0.5])))
                 for _ in range(n)]
        out.append(c.advance(10.0, knobs, Routing(rule), int(rng.integers(1, n + 1))))
        c.check_invariants()
    return c, w, out


def test_no_request_is_lost_across_replicas_scaling_and_drains():
    """Random rules, knobs and targets: every arrival is routed to exactly one replica, off
    replicas hold nothing, and every request ends on its replica accounted for (finished,
    rejected, abandoned, or still waiting or running)."""
    c, w, wins = _random_run(3)
    states = {s for w_ in wins for s in w_.states}
    assert states == {"off", "starting", "active", "draining"}
    assert sum(sum(r) for w_ in wins for r in w_.routed) == len(w)
    assert sum(s.n for s in c.sims) == len(w)
    assert sum(m.arrived for w_ in wins for m in w_.replicas) <= len(w)
    status = c.request_status()
    assert np.all(status >= 1)  # every request arrived on its replica


def test_same_seed_same_cluster_trajectory_and_clone_has_the_same_future():
    a = _random_run(7, windows=20)[2]
    b = _random_run(7, windows=20)[2]
    assert a == b
    w = poisson_workload(16.0, 200.0, 1)
    c = Cluster(ClusterConfig(replicas=3))
    c.reset(w, seed=1)
    c.advance(10.0, KNOBS, Routing("least_outstanding"), 2)
    twin = c.clone()
    weights = Routing("weighted", np.array([[1.0, 2.0, 0.5]]))
    for target in (3, 1, 2, 3):
        x, y = c.advance(10.0, KNOBS, weights, target), twin.advance(10.0, KNOBS, weights, target)
        assert x == y


def test_weighted_routing_follows_the_weights():
    w = poisson_workload(40.0, 100.0, 2)
    c = Cluster(ClusterConfig(replicas=3))
    c.reset(w, seed=2)
    wins = [c.advance(10.0, Knobs(), Routing("weighted", np.array([[6.0, 3.0, 1.0]])), 3) for _ in range(10)]
    share = np.sum([np.array([r[0] for r in x.routed]) for x in wins], axis=0) / len(w)
    np.testing.assert_allclose(share, [0.6, 0.3, 0.1], atol=0.04)


@pytest.mark.parametrize("weights, match", [
    ([[1.0, -1.0]], r"weights\[0, 1\]=-1.0 must be finite and >= 0"),
    ([[np.nan, 1.0]], r"weights\[0, 0\]=nan must be finite"),
    ([[0.0, 0.0]], r"weights\[0\] are all zero"),
    ([1.0, 1.0], "must be 2-D"),
])
def test_bad_routing_weights_are_refused(weights, match):
    with pytest.raises(ValueError, match=match):
        Routing("weighted", np.array(weights))


def test_routing_and_scaling_errors_name_the_field():
    with pytest.raises(ValueError, match="rule='random' is unknown; allowed: round_robin"):
        Routing("random")
    with pytest.raises(ValueError, match="weights are for rule 'weighted' only"):
        Routing("round_robin", np.ones((1, 2)))
    c = Cluster(ClusterConfig(replicas=2))
    c.reset(poisson_workload(5.0, 50.0, 0), seed=0)
    with pytest.raises(ValueError, match=r"weights have shape \(1, 3\); expected \(1, 2\)"):
        c.advance(10.0, Knobs(), Routing("weighted", np.ones((1, 3))), 2)
    with pytest.raises(ValueError, match="target_active=3 must be an integer in 1..2"):
        c.advance(10.0, Knobs(), Routing(), 3)
    with pytest.raises(ValueError, match="target_active=0"):
        c.advance(10.0, Knobs(), Routing(), 0)
    with pytest.raises(ValueError, match="one Knobs or a sequence of 2 Knobs"):
        c.advance(10.0, [Knobs()], Routing(), 2)
    with pytest.raises(ValueError, match="seconds"):
        c.advance(float("nan"), Knobs(), Routing(), 2)
    assert c.windows == 0 and c.next == 0  # refused calls changed nothing
    # weights that send a tenant only to replicas that are off
    c.advance(10.0, Knobs(), Routing(), 1)
    c.advance(10.0, Knobs(), Routing(), 1)
    before = (c.state.tolist(), c.next, c.windows)
    with pytest.raises(ValueError, match=r"weights for tenant 0 \(default\) are zero on every active replica \[0\]"):
        c.advance(10.0, Knobs(), Routing("weighted", np.array([[0.0, 1.0]])), 2)  # would start replica 1
    assert (c.state.tolist(), c.next, c.windows) == before  # it did not


@pytest.mark.parametrize("kwargs, match", [
    (dict(replicas=0), "replicas=0 must be in 1..64"),
    (dict(replicas=65), "replicas=65"),
    (dict(replicas=(SimConfig(), "h100")), "replicas must hold 1..64 SimConfig"),
    (dict(storage_gb_per_s=0.0), "storage_gb_per_s=0.0 must be a finite number >= 0.001"),
    (dict(engine_start_s=float("inf")), "engine_start_s=inf"),
    (dict(replicas=2, initial_active=3), "initial_active=3 must be None or an integer in 1..2"),
])
def test_bad_cluster_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClusterConfig(**kwargs)


def test_heterogeneous_fleet_bills_each_replica_at_its_price():
    cfg = ClusterConfig(replicas=(SimConfig(), SimConfig(gpu="h100-80gb")))
    c = Cluster(cfg)
    c.reset(poisson_workload(5.0, 50.0, 0), seed=0)
    x = c.advance(3600.0, Knobs(), Routing(), 2)
    assert x.billed_usd == pytest.approx(sum(s.config.gpu_hour_usd for s in c.sims))
    assert c.sims[1].replica.gpu.name != c.sims[0].replica.gpu.name


def _keyed_two_replicas():
    """Two active replicas. Window 1: A (4 blocks, keys 1-4) and B (keys 11-14). Window 2: D (a
    1,024-token prompt with new keys 100-163), then C (keys 1-4 again: cached on the replica that
    served A), E (keys 1, 50-52: a quarter of it cached there, below the 0.3 threshold) and G (keys
    100-102: D's first blocks, sent this window and not computed yet)."""
    reqs = [(0.0, 64, 2, 0), (0.1, 64, 2, 0), (10.0, 1024, 50, 0), (10.1, 64, 2, 0), (10.2, 64, 2, 0),
            (10.3, 48, 2, 0)]
    keys = [[1, 2, 3, 4], [11, 12, 13, 14], list(range(100, 164)), [1, 2, 3, 4], [1, 50, 51, 52], [100, 101, 102]]
    w = Workload.from_requests(reqs, LOOSE, keys=keys)
    c = Cluster(ClusterConfig(replicas=2, replica=Cfg(), initial_active=2))
    c.reset(w, seed=0)
    return c


def test_prefix_affinity_sends_a_cached_prefix_home_and_the_rest_to_the_least_loaded():
    """By hand: A goes to replica 0 (nothing cached anywhere, equal loads, lowest index), B to the
    idle replica 1. In window 2 D goes to 0 (both idle again, A's blocks cached there); C, whose
    whole prompt replica 0 caches, follows it there although 0 now holds D's 1,074 tokens; E (a
    quarter cached) goes to the least loaded, 1; G, D's first blocks sent to 0 this window, to 0.
    least_outstanding spreads the same window by load alone."""
    c = _keyed_two_replicas()
    rule = Routing("prefix_affinity")
    c.advance(10.0, KNOBS, rule, target_active=2)
    assert c.owner[:2].tolist() == [0, 1]
    assert c.sims[0].cached_prefix_blocks(np.array([1, 2, 3, 4])) == 4  # A finished; its blocks stay cached
    c.advance(10.0, KNOBS, rule, target_active=2)
    assert c.owner.tolist() == [0, 1, 0, 0, 1, 0]
    assert c.sims[0].requests().cached_prompt_tokens[2] == 48  # C: 3 of its 4 blocks (vLLM recomputes the last token)
    lo = _keyed_two_replicas()
    for _ in range(2):
        lo.advance(10.0, KNOBS, Routing("least_outstanding"), target_active=2)
    assert lo.owner.tolist() == [0, 1, 0, 1, 1, 1]
    c.check_invariants()


def test_scored_rule_weighs_prefix_against_queue_and_memory():
    """prefix_weight 1: the prefix score alone (C and G to replica 0, the rest to the lowest index
    among equals); 0: queue and KV scores alone, each request sent this window counting as waiting
    (D to 0, then C to 1, E to 0 as the queues are level again, G to 1)."""
    routes = {}
    for wgt in (1.0, 0.0):
        c = _keyed_two_replicas()
        for _ in range(2):
            c.advance(10.0, KNOBS, Routing("scored", prefix_weight=wgt), target_active=2)
        routes[wgt] = c.owner.tolist()
        c.check_invariants()
    assert routes[1.0][2:] == [0, 0, 0, 0]
    assert routes[0.0][2:] == [0, 1, 0, 1]


@pytest.mark.parametrize("kwargs, match", [
    ({"rule": "scored"}, r"prefix_weight=None must be a number in \[0, 1\] for rule 'scored' \(llm-d's default: 0.428"),
    ({"rule": "scored", "prefix_weight": 1.5}, r"prefix_weight=1.5 must be a number in \[0, 1\]"),
    ({"rule": "scored", "prefix_weight": True}, r"prefix_weight=True"),
    ({"rule": "prefix_affinity", "prefix_weight": 0.5}, r"prefix_weight is for rule 'scored' only; rule is 'prefix_affinity'"),
])
def test_bad_scored_routing_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Routing(**kwargs)
