"""Simulator.add_requests: requests appended to a running replica (cluster mode routes traffic so)."""

import dataclasses

import numpy as np
import pytest

from igym_marl.sim import Knobs, Simulator
from igym_marl.sim.types import Workload, take_keys
from igym_marl.workloads import get_task


def _empty(tenants) -> Workload:
    z = np.zeros(0, dtype=np.int64)
    return Workload(np.zeros(0), z, z, z, tenants=tenants)


def test_requests_fed_in_pieces_give_the_trajectory_of_the_whole_workload():
    """Fed each window's requests one window ahead (so every request is known before the clock
    reaches it, even when an iteration overruns a window's end), the replica's windows, requests
    and episode equal those of a replica loaded with the whole workload at reset, across growth
    of its arrays and knob changes that preempt."""
    task = get_task("adversarial_multitenant", episode_windows=40)
    w = task.workload(3)
    assert w.has_keys  # its interactive tenant's sessions share prefixes: the cache is exercised
    whole, pieces = Simulator(task.config), Simulator(task.config)
    whole.reset(w, seed=5)
    pieces.reset(_empty(w.tenants), seed=5)
    knobs = [Knobs(batch_cap=64, kv_budget_fraction=0.2, priority_routing=True), Knobs()]
    for i in range(40):
        lo, hi = (i + 1) * task.window_s if i else 0.0, (i + 2) * task.window_s
        sel = (w.arrival_s >= lo) & (w.arrival_s < hi)
        rows = pieces.add_requests(w.arrival_s[sel], w.prompt_tokens[sel], w.output_tokens[sel], w.tenant[sel],
                                   *take_keys(w.key_ptr, w.block_keys, np.flatnonzero(sel)))
        assert rows.tolist() == np.flatnonzero(sel).tolist()
        k = knobs[(i // 7) % 2]
        assert whole.advance(task.window_s, k) == pieces.advance(task.window_s, k), f"window {i}"
        pieces.check_invariants()
    a, b = whole.requests(), pieces.requests()
    assert b.arrival_s.shape == (len(w),) and pieces.ri.shape[0] > len(w)  # padding rows stay hidden
    for f in dataclasses.fields(a):
        np.testing.assert_array_equal(getattr(a, f.name), getattr(b, f.name))
    assert whole.episode_metrics() == pieces.episode_metrics()


@pytest.mark.parametrize("args, match", [
    (([1.0, 0.5], [10, 10], [5, 5], [0, 0]), "sorted"),
    (([np.nan], [10], [5], [0]), "finite"),
    (([1.0], [0], [5], [0]), "prompt_tokens must be >= 1"),
    (([1.0], [10], [1.5], [0]), "output_tokens must hold integers"),
    (([1.0], [10], [5], [3]), "tenant=3 is out of range; allowed 0..0"),
    (([1.0, 2.0], [10], [5, 5], [0, 0]), r"prompt_tokens has shape \(1,\); expected \(2,\)"),
])
def test_bad_requests_are_refused_by_name(args, match):
    sim = Simulator()
    sim.reset(_empty(get_task("static_workload").tenants), seed=0)
    with pytest.raises(ValueError, match=match):
        sim.add_requests(*args)


def test_requests_cannot_arrive_before_the_window_or_the_last_request():
    sim = Simulator()
    sim.reset(_empty(get_task("static_workload").tenants), seed=0)
    sim.add_requests([3.0], [10], [5], [0])
    with pytest.raises(ValueError, match=r">= 3.0"):
        sim.add_requests([2.0], [10], [5], [0])
    sim.advance(5.0, Knobs())
    with pytest.raises(ValueError, match=r">= 5.0"):
        sim.add_requests([4.0], [10], [5], [0])
    with pytest.raises(RuntimeError, match="reset"):
        Simulator().add_requests([1.0], [10], [5], [0])


def test_clone_with_future_replaces_only_what_has_not_arrived():
    """Given the workload's own remaining requests, the what-if clone follows the original exactly;
    given none, it serves what is already in the engine and nothing more; either way the original
    is left alone."""
    task = get_task("adversarial_multitenant", episode_windows=30)
    w = task.workload(4)
    sim = Simulator(task.config)
    sim.reset(w, seed=4)
    k = Knobs(batch_cap=64, kv_budget_fraction=0.2, priority_routing=True)
    for _ in range(10):
        sim.advance(task.window_s, k)
    before = (sim.ri.copy(), sim.rf.copy())
    arrived = int((sim.requests().status > 0).sum())  # status 0: not arrived yet
    same = sim.clone_with_future(w.arrival_s[arrived:], w.prompt_tokens[arrived:], w.output_tokens[arrived:],
                                 w.tenant[arrived:], *take_keys(w.key_ptr, w.block_keys, np.arange(arrived, len(w))))
    empty = sim.clone_with_future([], [], [], [])
    assert np.array_equal(sim.ri, before[0]) and np.array_equal(sim.rf, before[1], equal_nan=True)
    twin = sim.clone()
    for _ in range(5):
        assert same.advance(task.window_s, k) == twin.advance(task.window_s, k)
    for _ in range(30):
        m = empty.advance(task.window_s, k)
    assert m.arrived == 0 and empty.requests().arrival_s.shape == (arrived,)
    assert empty.episode_metrics().offered == arrived
    with pytest.raises(ValueError, match="sorted"):
        sim.clone_with_future([500.0, 400.0], [10, 10], [5, 5], [0, 0])
