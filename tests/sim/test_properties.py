"""Invariants over random workloads and knob sequences, and fast kernel == reference."""

import dataclasses
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from igym_marl.sim import TOY_TENANTS, Knobs, SimConfig, Simulator
from igym_marl.sim.reference import ReferenceSimulator

from ..conftest import random_workload, same, same_requests

knob_st = st.builds(
    Knobs,
    batch_cap=st.sampled_from([1, 2, 3, 8, 32, 100, 256, 512]),
    kv_budget_fraction=st.sampled_from([0.1, 0.13, 0.5, 1.0]),
    speculation_depth=st.integers(0, 8),
    quantization_tier=st.sampled_from(["FP16", "INT8", "INT4"]),
    prefill_decode_split=st.booleans(),
    priority_routing=st.booleans(),
)

# Small pools make preemption, rejection and budget shrinking common.
configs = st.sampled_from([SimConfig(), SimConfig(model="llama-2-7b", gpu_memory_utilization=0.3),
                           SimConfig(model="llama-2-70b", tp=2, chunk_token_budget=512)])


# Impatient clients make abandonment common too.
IMPATIENT = tuple(dataclasses.replace(t, timeout_s=s) for t, s in zip(TOY_TENANTS, (1.5, 4.0)))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 120), knobs=st.lists(knob_st, min_size=1, max_size=6),
       config=configs, window=st.sampled_from([0.5, 2.0, 5.0]), tenants=st.sampled_from([TOY_TENANTS, IMPATIENT]),
       keyed=st.booleans())
def test_invariants_and_reference_equivalence(seed, n, knobs, config, window, tenants, keyed):
    """The kernel and the reference agree window by window, on traffic without shared prefixes and
    on traffic full of them (system prompts, conversations resending earlier turns)."""
    rng = np.random.default_rng(seed)
    w = random_workload(rng, n, horizon_s=window * len(knobs), tenants=tenants, max_prompt=6000, keyed=keyed)
    fast, ref = Simulator(config), ReferenceSimulator(config)
    fast.reset(w, seed=seed)
    ref.reset(w, seed=seed)
    clock = 0.0
    for kb in knobs:
        a = fast.advance(window, kb)
        b = ref.advance(window, kb)
        fast.check_invariants()
        ref.check_invariants()
        assert same(a.as_dict(), b.as_dict())
        assert same_requests(fast, ref)
        np.testing.assert_array_equal(fast.rf, ref.rf)
        assert a.clock_s >= clock  # the clock never goes back
        clock = a.clock_s
        assert a.kv_blocks_used <= a.kv_capacity_blocks
        assert 0.0 <= a.kv_occupancy <= 1.0
    e = fast.episode_metrics()
    # conservation: every arrived request is finished, rejected, abandoned, waiting or running
    assert e.offered == e.finished + e.rejected + e.abandoned + e.unfinished
    assert e.offered == int(np.count_nonzero(w.arrival_s <= fast.clock_s))
    ttft = fast.rf[:, 1] - fast.rf[:, 0]
    e2e = fast.rf[:, 2] - fast.rf[:, 0]
    done = ~np.isnan(e2e) & ~np.isnan(ttft)
    assert np.all(ttft[done] <= e2e[done])
    assert sum(t.slo_met for t in e.tenants) == e.slo_met


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cap=st.integers(1, 64))
def test_batch_cap_bounds_running_sequences(seed, cap):
    rng = np.random.default_rng(seed)
    w = random_workload(rng, 300, horizon_s=5.0, tenants=TOY_TENANTS, max_prompt=500, max_out=200)
    sim = Simulator()
    sim.reset(w, seed=seed)
    peak = 0
    for _ in range(10):
        m = sim.advance(0.5, Knobs(batch_cap=cap))
        peak = max(peak, m.running)
        assert m.running <= cap
    assert peak == cap  # 300 requests in 5 s saturate any cap up to 64
