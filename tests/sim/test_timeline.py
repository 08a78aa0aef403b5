"""Hand-derived timelines: the batch of every iteration is worked out by hand from the
scheduling rules, and its duration taken from the cost model's iteration_s."""


import numpy as np
import pytest

from igym_marl.sim import Knobs, SimConfig, Simulator, Tenant, Workload
from igym_marl.sim import cost_model as cm
from igym_marl.sim.reference import ReferenceSimulator

LOOSE = (Tenant("t", ttft_slo_ms=1e6, tpot_slo_ms=1e6),)


def it(c, prefills=(), decode_ctx=(), k=0):
    """iteration_s for prefill chunks [(chunk, prefix)] and decode contexts, as the engine prices them."""
    lin = sum(ch for ch, _ in prefills) + len(decode_ctx) * (1 + k)
    pairs = sum(cm.prefill_pairs(float(ch), float(p)) for ch, p in prefills)
    kv = float(sum(decode_ctx))
    return cm.iteration_s(c, float(lin), float(len(prefills) + len(decode_ctx) * (1 + k)), pairs, kv,
                          kv * (1 + k), float(len(prefills) + len(decode_ctx)))


@pytest.fixture(params=[Simulator, ReferenceSimulator], ids=["fast", "reference"])
def sim_cls(request):
    return request.param


def test_two_requests_chunked(sim_cls):
    w = Workload.from_requests([(0.0, 100, 3, 0), (0.0, 200, 2, 0)], LOOSE)
    sim = sim_cls(SimConfig())
    sim.reset(w, seed=0)
    m = sim.advance(1.0, Knobs(batch_cap=8, prefill_decode_split=True))
    c = sim._consts["FP16"]
    t1 = it(c, prefills=[(100, 0), (200, 0)])  # both prompts in one chunked iteration
    t2 = t1 + it(c, decode_ctx=[101, 201])  # both decode; request 1 is done (2 tokens)
    t3 = t2 + it(c, decode_ctx=[102])  # request 0 alone
    assert sim.rf[0, 1] == pytest.approx(t1, rel=1e-12) and sim.rf[1, 1] == pytest.approx(t1, rel=1e-12)
    assert sim.rf[1, 2] == pytest.approx(t2, rel=1e-12)
    assert sim.rf[0, 2] == pytest.approx(t3, rel=1e-12)
    assert m.finished == 2 and m.iterations == 3
    assert m.latency.ttft_p50_ms == pytest.approx(1e3 * t1)
    assert m.tenants[0].latency.tpot_p50_ms == pytest.approx(1e3 * np.percentile([(t3 - t1) / 2, t2 - t1], 50))
    assert m.throughput_tps == pytest.approx(5.0)  # 5 output tokens in 1 s
    assert m.prefill_tps == pytest.approx(300.0)


def test_prefill_first_stalls_decodes(sim_cls):
    """Without chunking, a prompt arriving mid-decode gets its own iteration: the running
    request's inter-token gap includes it (the TBT spike that chunked prefill removes)."""
    w = Workload.from_requests([(0.0, 64, 10, 0), (0.03, 1000, 1, 0)], LOOSE)
    sim = sim_cls(SimConfig())
    sim.reset(w, seed=0)
    m = sim.advance(1.0, Knobs(batch_cap=8, prefill_decode_split=False))
    c = sim._consts["FP16"]
    t = it(c, prefills=[(64, 0)])
    gen = 1
    while t < 0.03:  # request 0 decodes alone until request 1 has arrived
        t += it(c, decode_ctx=[64 + gen])
        gen += 1
    stall = it(c, prefills=[(1000, 0)])  # prefill-only: request 0 stalls
    t_pf = t + stall
    assert sim.rf[1, 1] == pytest.approx(t_pf, rel=1e-12)
    assert sim.rf[1, 2] == pytest.approx(t_pf, rel=1e-12)  # output 1: done at its first token
    gap = stall + it(c, decode_ctx=[64 + gen])  # request 0's inter-token gap across the stall
    t = t_pf
    while gen < 10:
        t += it(c, decode_ctx=[64 + gen])
        gen += 1
    assert sim.rf[0, 2] == pytest.approx(t, rel=1e-12)
    assert m.prefill_only_iterations == 2
    assert m.tenants[0].latency.itl_p99_ms == pytest.approx(1e3 * gap, rel=0.05)  # histogram bin: +-4.5 %


def test_preemption_by_recompute(sim_cls):
    """Two prompts fill the KV pool exactly; the first decode of the older one needs a block, so
    the younger one is preempted, re-queued in front, and recomputed once the older finishes."""
    cfg = SimConfig(watermark_fraction=0.0)
    knobs = Knobs(batch_cap=8, kv_budget_fraction=0.1, prefill_decode_split=False)
    cap = cfg.replica().kv_capacity_blocks("FP16", 0.1, 16)
    b0 = cap // 2
    b1 = cap - b0
    w = Workload.from_requests([(0.0, 16 * b0, 2, 0), (0.0, 16 * b1, 2, 0)], LOOSE)
    sim = sim_cls(SimConfig(watermark_fraction=0.0, prefill_token_budget=1 << 20))
    sim.reset(w, seed=0, knobs=knobs)
    m = sim.advance(30.0, knobs)
    c = sim._consts["FP16"]
    p0, p1 = 16 * b0, 16 * b1
    t1 = it(c, prefills=[(p0, 0), (p1, 0)])  # both prompts fit exactly: one prefill iteration
    t2 = t1 + it(c, decode_ctx=[p0 + 1])  # request 1 was preempted before this decode
    t3 = t2 + it(c, prefills=[(p1 + 1, 0)])  # recompute prompt + its 1 generated token
    assert m.preemptions == 1 and m.finished == 2
    assert sim.ri[1, 9] == 1  # NPRE of request 1
    assert sim.rf[0, 2] == pytest.approx(t2, rel=1e-12)
    assert sim.rf[1, 1] == pytest.approx(t1, rel=1e-12)  # TTFT kept from the first run
    assert sim.rf[1, 2] == pytest.approx(t3, rel=1e-12)  # its 2nd token comes from the recompute
    assert m.prefill_tps == pytest.approx((p0 + p1 + p1 + 1) / 30.0)


def test_reject_prompt_larger_than_pool(sim_cls):
    cfg = SimConfig()
    cap = cfg.replica().kv_capacity_blocks("FP16", 0.1, 16)
    w = Workload.from_requests([(0.0, 16 * cap + 1, 5, 0), (0.0, 10, 2, 0)], LOOSE)
    sim = sim_cls(cfg)
    sim.reset(w, seed=0)
    m = sim.advance(1.0, Knobs(kv_budget_fraction=0.1))
    assert m.rejected == 1 and m.finished == 1 and m.slo_missed == 1 and m.slo_met == 1
    e = sim.episode_metrics()
    assert e.offered == 2 and e.rejected == 1 and e.slo_attainment == 0.5


def test_late_waiting_request_counts_as_miss_immediately(sim_cls):
    """batch_cap 1 and a long first request: the second waits past its 100 ms TTFT SLO and is
    counted as missed at the first window's end, before it is ever served."""
    tight = (Tenant("i", ttft_slo_ms=100.0, tpot_slo_ms=1e6),)
    w = Workload.from_requests([(0.0, 100, 400, 0), (0.0, 100, 2, 0)], tight)
    sim = sim_cls(SimConfig())
    sim.reset(w, seed=0)
    m = sim.advance(1.0, Knobs(batch_cap=1))
    assert m.slo_missed == 1 and m.finished == 0 and m.queue_depth == 1
    assert m.tenants[0].oldest_wait_ms == pytest.approx(1e3 * m.clock_s)
    m2 = sim.advance(10.0, Knobs(batch_cap=1))
    assert m2.finished == 2 and m2.slo_missed == 0  # already counted; request 0 met (TTFT ~14 ms)
    assert m2.slo_met == 1
    assert sim.episode_metrics().slo_met == 1


def test_speculation_tokens_and_cost(sim_cls):
    """With acceptance 0.99 at zero context (almost all drafts accepted), depth 4 delivers up to
    5 tokens per pass; each pass costs the verification of 5 tokens plus 4 draft steps (the
    draft's GPU work at draft_cost_ratio of a decode step, plus a full step's CPU overhead)."""
    ten = (Tenant("code", ttft_slo_ms=1e6, tpot_slo_ms=1e6, spec_acceptance=0.99),)
    w = Workload.from_requests([(0.0, 16, 50, 0)], ten)
    cfg = SimConfig(acceptance_half_context=1e9)
    sim = sim_cls(cfg)
    sim.reset(w, seed=3)
    m = sim.advance(2.0, Knobs(batch_cap=1, speculation_depth=4))
    assert m.finished == 1
    passes = m.iterations - 1
    assert passes <= 13  # 49 decode tokens at <= 5 per pass: >= 10 passes, ~0.96^4 all accepted
    assert passes >= 10
    assert m.spec_proposed_tokens == 4 * passes
    c = sim._consts["FP16"]
    first = it(c, prefills=[(16, 0)])
    # bound the total time with the pass prices at the smallest and largest contexts
    lo = first + passes * (it(c, decode_ctx=[17], k=4) + 4 * cm.draft_step_s(c, 1.0, 17.0, cfg.draft_cost_ratio))
    hi = first + passes * (it(c, decode_ctx=[66], k=4) + 4 * cm.draft_step_s(c, 1.0, 66.0, cfg.draft_cost_ratio))
    assert lo <= sim.rf[0, 2] <= hi
