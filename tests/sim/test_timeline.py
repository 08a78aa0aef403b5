"""Hand-derived timelines: the batch of every iteration is worked out by hand from the
scheduling rules, and its duration taken from the cost model's iteration_s."""


import dataclasses

import numpy as np
import pytest

from igym_marl.sim import Knobs, SimConfig, Simulator, Tenant, Workload
from igym_marl.sim import cost_model as cm
from igym_marl.sim.profiles import DEFAULT_ENGINE, ENGINES
from igym_marl.sim.reference import ReferenceSimulator

LOOSE = (Tenant("t", ttft_slo_ms=1e6, tpot_slo_ms=1e6),)
# The hand-derived timelines follow the engine's iterations; the default engine's client-side latency
# (EngineProfile.api_overhead_s) shifts what clients see by a constant, tested on its own below.
ENGINE = dataclasses.replace(ENGINES[DEFAULT_ENGINE], name="engine-side", api_overhead_s=0.0)


def Cfg(**kw) -> SimConfig:
    return SimConfig(engine=ENGINE, **kw)


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
    sim = sim_cls(Cfg())
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
    sim = sim_cls(Cfg())
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


def _two_prompts_filling_the_pool(sim_cls, prefix_caching):
    cfg = Cfg(watermark_fraction=0.0, prefill_token_budget=1 << 20, prefix_caching=prefix_caching)
    knobs = Knobs(batch_cap=8, kv_budget_fraction=0.1, prefill_decode_split=False)
    cap = cfg.replica().kv_capacity_blocks("FP16", 0.1, 16)
    b0 = cap // 2
    b1 = cap - b0
    w = Workload.from_requests([(0.0, 16 * b0, 2, 0), (0.0, 16 * b1, 2, 0)], LOOSE)
    sim = sim_cls(cfg)
    sim.reset(w, seed=0, knobs=knobs)
    return sim, sim.advance(30.0, knobs), 16 * b0, 16 * b1


def test_preemption_by_recompute(sim_cls):
    """Two prompts fill the KV pool exactly; the first decode of the older one needs a block, so
    the younger one is preempted, re-queued in front, and recomputed once the older finishes."""
    sim, m, p0, p1 = _two_prompts_filling_the_pool(sim_cls, prefix_caching=False)
    c = sim._consts["FP16"]
    t1 = it(c, prefills=[(p0, 0), (p1, 0)])  # both prompts fit exactly: one prefill iteration
    t2 = t1 + it(c, decode_ctx=[p0 + 1])  # request 1 was preempted before this decode
    t3 = t2 + it(c, prefills=[(p1 + 1, 0)])  # recompute prompt + its 1 generated token
    assert m.preemptions == 1 and m.finished == 2
    assert sim.ri[1, 9] == 1  # NPRE of request 1
    assert sim.rf[0, 2] == pytest.approx(t2, rel=1e-12)
    assert sim.rf[1, 1] == pytest.approx(t1, rel=1e-12)  # TTFT kept from the first run
    assert sim.rf[1, 2] == pytest.approx(t3, rel=1e-12)  # its 2nd token comes from the recompute
    assert m.prefill_tps == pytest.approx((p0 + p1 + p1 + 1) / 30.0)


def test_preemption_recompute_skips_what_the_prefix_cache_kept(sim_cls):
    """The same timeline with prefix caching: when request 1 is preempted no block is free ahead
    of its blocks in the free queue, so request 0's one new block evicts request 1's tail block;
    the rest of its prompt is still cached when it comes back, and only the last block of its
    prompt plus its generated token are computed again (after a cached prefix of p1 - 16)."""
    sim, m, p0, p1 = _two_prompts_filling_the_pool(sim_cls, prefix_caching=True)
    c = sim._consts["FP16"]
    t1 = it(c, prefills=[(p0, 0), (p1, 0)])
    t2 = t1 + it(c, decode_ctx=[p0 + 1])
    t3 = t2 + it(c, prefills=[(17, p1 - 16)])  # 16 evicted prompt tokens + the generated one
    assert m.preemptions == 1 and m.finished == 2
    assert sim.rf[1, 2] == pytest.approx(t3, rel=1e-12)
    assert m.prefill_tps == pytest.approx((p0 + p1 + 17) / 30.0)


SMALL_POOL = dict(model="llama-2-7b", kv_pool_blocks=1010, watermark_fraction=0.0, chunk_token_budget=512)


@pytest.mark.parametrize("prefix_caching", [True, False])
def test_chunked_prefill_allocates_chunk_by_chunk(sim_cls, prefix_caching):
    """vLLM V1's allocation with chunked prefill, on a 101-block pool (16-token blocks) and a
    512-token budget. Request 0 (800-token prompt, 100 outputs) and request 1 (1,200, 5 outputs):

    1. r0 admitted with its first chunk only (512 tokens, 32 blocks).
    2. r0 finishes its prompt (288 tokens, 50 blocks); r1 is admitted with 224 tokens (14 blocks)
       although its whole prompt (75 blocks) does not fit the 51 free blocks.
    3. r0 decodes (51 blocks); r1 computes 511 more (735 tokens, 46 blocks); 4 blocks are free.
    4. r1's last 465 tokens need 29 blocks: the FCFS victim is the last in the running list, r1
       itself, which stops the pass; nobody is admitted in an iteration that preempted.

    With prefix caching r1's blocks go back tail first, as vLLM frees them: its partial 46th block
    (15 tokens) joins the 4 free ones, then its 45 full blocks follow, still cached. r0's decoding
    takes 6 fresh blocks before it finishes (at contexts 817, 833, ..., 897): the 5 empty ones and
    r1's 45th; r1 cannot be admitted while r0 runs (75 blocks needed) and then needs only
    1,200 - 44 x 16 = 496 tokens: 800 + 735 + 496 = 2,031 prefill tokens, one preemption.

    Without it r1 is admitted again with a 511-token first chunk (32 blocks fit beside r0), cannot
    grow to its second chunk and preempts itself: admit, preempt, ... for each 2 of r0's 98 decode
    iterations, 49 preemptions in all, then its whole prompt once r0 is done:
    800 + 735 + 48 x 511 + 1,200 = 27,263 prefill tokens."""
    cfg = Cfg(prefix_caching=prefix_caching, **SMALL_POOL)
    w = Workload.from_requests([(0.0, 800, 100, 0), (0.0, 1200, 5, 0)], LOOSE)
    sim = sim_cls(cfg)
    knobs = Knobs(batch_cap=8, kv_budget_fraction=0.1)
    sim.reset(w, seed=0, knobs=knobs)
    first = sim.advance(1e-6, knobs)  # one iteration
    assert first.iterations == 1 and first.kv_blocks_used == 32 and first.running == 1
    assert first.kv_capacity_blocks == 101
    m = sim.advance(30.0, knobs)
    assert m.finished == 2
    if prefix_caching:
        assert m.preemptions == 1 and first.prefill_tps * 1e-6 + m.prefill_tps * 30.0 == pytest.approx(2031)
    else:
        assert m.preemptions == 49 and first.prefill_tps * 1e-6 + m.prefill_tps * 30.0 == pytest.approx(27263)


def test_victim_is_the_latest_arrival_of_the_lowest_priority():
    """vLLM V1 preempts max(running, key=(priority, arrival)): the lowest-priority request, the
    latest arrival among them, not the last admitted; FCFS preempts the last in the list."""
    from igym_marl.sim.engine import _victim
    from igym_marl.sim.layout import ARR, N_RF, N_RI, N_SI, N_TF, S_NRUN, TEN, TF_PRIO
    ri = np.zeros((4, N_RI), dtype=np.int64)
    rf = np.zeros((4, N_RF))
    ri[:, TEN] = [0, 0, 1, 0]  # tenant 1 has the higher priority
    rf[:, ARR] = [5.0, 9.0, 10.0, 1.0]
    tf = np.zeros((N_TF, 2))
    tf[TF_PRIO] = [0, 1]
    si = np.zeros(N_SI, dtype=np.int64)
    si[S_NRUN] = 4
    run = np.array([0, 1, 2, 3, 0], dtype=np.int64)
    assert _victim(ri, rf, si, run, tf, True) == 1
    assert _victim(ri, rf, si, run, tf, False) == 3


def test_reject_prompt_larger_than_pool(sim_cls):
    cfg = Cfg()
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
    sim = sim_cls(Cfg())
    sim.reset(w, seed=0)
    m = sim.advance(1.0, Knobs(batch_cap=1))
    assert m.slo_missed == 1 and m.finished == 0 and m.queue_depth == 1
    assert m.tenants[0].oldest_wait_ms == pytest.approx(1e3 * m.clock_s)
    m2 = sim.advance(10.0, Knobs(batch_cap=1))
    assert m2.finished == 2 and m2.slo_missed == 0  # already counted; request 0 met (TTFT ~14 ms)
    assert m2.slo_met == 1
    assert sim.episode_metrics().slo_met == 1


def test_impatient_client_abandons_a_request_still_waiting(sim_cls):
    """batch_cap 1 and a long first request: the second waits; its client gives up after 0.5 s.
    The withdrawal happens at the first iteration boundary past 0.5 s (the engine checks its
    queue heads before every iteration): an SLO miss, never admitted, never reaching the KV pool."""
    ten = (Tenant("i", ttft_slo_ms=1e6, tpot_slo_ms=1e6, timeout_s=0.5),)
    w = Workload.from_requests([(0.0, 100, 400, 0), (0.0, 100, 2, 0)], ten)
    sim = sim_cls(Cfg())
    sim.reset(w, seed=0)
    m = sim.advance(1.0, Knobs(batch_cap=1))
    c = sim._consts["FP16"]
    t, gen = it(c, prefills=[(100, 0)]), 1
    while t <= 0.5:  # request 0 decodes alone; each iteration boundary is a check
        t += it(c, decode_ctx=[100 + gen])
        gen += 1
    assert m.abandoned == 1 and m.tenants[0].abandoned == 1 and m.slo_missed == 1
    assert sim.ri[1, 3] == 5  # status ABANDONED
    assert sim.rf[1, 2] == pytest.approx(t, rel=1e-12)  # withdrawn at that boundary
    assert np.isnan(sim.rf[1, 1]) and sim.ri[1, 9] == 0  # no first token, never preempted
    e = sim.episode_metrics()
    assert e.offered == e.finished + e.rejected + e.abandoned + e.unfinished == 2


def test_speculation_tokens_and_cost(sim_cls):
    """With acceptance 0.99 at zero context (almost all drafts accepted), depth 4 delivers up to
    5 tokens per pass; each pass costs the verification of 5 tokens plus 4 draft steps (the
    draft's GPU work at draft_cost_ratio of a decode step, plus a full step's CPU overhead)."""
    ten = (Tenant("code", ttft_slo_ms=1e6, tpot_slo_ms=1e6, spec_acceptance=0.99),)
    w = Workload.from_requests([(0.0, 16, 50, 0)], ten)
    cfg = Cfg(acceptance_half_context=1e9)
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


def test_prefix_cache_hits_partial_hits_lru_eviction_and_shared_blocks(sim_cls):
    """vLLM V1's automatic prefix caching on a 12-block pool (16-token blocks, no watermark), keys
    as the workload gives them (a system prompt S = keys 1-4):

    * A (t 0, 72 tokens, keys 1-4, 2 outputs) computes its prompt and registers its 4 full blocks;
      done, its blocks go back tail first: its partial block joins the 7 empty ones, then k4..k1.
      Queue: [8 empty][k4][k3][k2][k1].
    * B (t 0.5, 104 tokens, keys 1-6, 3 outputs) finds k1-k4: a **hit** of 64 tokens, computes 40;
      C (t 0.5, 72 tokens, keys 1, 2, 7, 8, 2 outputs) finds k1, k2 only: a **partial hit** of 32,
      computes 40. One iteration prices both chunks after their cached prefixes. B registers k5,
      k6; C registers k7, k8.
    * C finishes first: k8, k7 go back, but **k1 and k2 stay in use**: B still holds them. Queue:
      [3 empty][k8][k7]; 7 blocks used. B finishes: [3 empty][k8][k7][1 empty][k6]..[k1].
    * D (t 1, 144 tokens, no keys) takes 9 blocks from the head: **LRU order** evicts C's k8, k7,
      then B's k6, k5, k4; k3, k2, k1 survive (a prompt's head outlives its tail).
    * E (t 2, 72 tokens, keys 1-4) finds k1-k3: 48 tokens cached, computes 24."""
    cfg = Cfg(kv_pool_blocks=12, watermark_fraction=0.0)
    w = Workload.from_requests([(0.0, 72, 2, 0), (0.5, 104, 3, 0), (0.5, 72, 2, 0), (1.0, 144, 1, 0), (2.0, 72, 1, 0)],
                               LOOSE, keys=[[1, 2, 3, 4], [1, 2, 3, 4, 5, 6], [1, 2, 7, 8], [], [1, 2, 3, 4]])
    sim = sim_cls(cfg)
    knobs = Knobs(batch_cap=8, kv_budget_fraction=1.0)
    sim.reset(w, seed=0, knobs=knobs)
    c = sim._consts["FP16"]
    t1 = it(c, prefills=[(72, 0)])
    t2 = t1 + it(c, decode_ctx=[73])
    m = sim.advance(0.5, knobs)
    assert sim.rf[0, 1] == pytest.approx(t1, rel=1e-12) and sim.rf[0, 2] == pytest.approx(t2, rel=1e-12)
    assert m.kv_blocks_used == 0 and sim.snapshot().kv_cached_blocks == 4
    t3 = 0.5 + it(c, prefills=[(40, 64), (40, 32)])  # B and C after their cached prefixes
    t4 = t3 + it(c, decode_ctx=[105, 73])
    t5 = t4 + it(c, decode_ctx=[106])
    sim.advance(t3 + 1e-9 - 0.5, knobs)  # up to the iteration that ends at t4: C done, B running
    assert sim.rf[1, 1] == pytest.approx(t3, rel=1e-12) and sim.rf[2, 1] == pytest.approx(t3, rel=1e-12)
    assert sim.rf[2, 2] == pytest.approx(t4, rel=1e-12) and np.isnan(sim.rf[1, 2])
    snap = sim.snapshot()
    assert snap.kv_blocks_used == 7 and snap.kv_cached_blocks == 2  # k1, k2 stay with B; k7, k8 wait
    sim.advance(1.0 - (t3 + 1e-9), knobs)
    assert sim.rf[1, 2] == pytest.approx(t5, rel=1e-12)
    assert sim.snapshot().kv_cached_blocks == 8 and sim.snapshot().kv_blocks_used == 0
    t6 = 1.0 + it(c, prefills=[(144, 0)])
    t7 = 2.0 + it(c, prefills=[(24, 48)])
    m = sim.advance(2.0, knobs)
    assert sim.rf[3, 2] == pytest.approx(t6, rel=1e-12) and sim.rf[4, 2] == pytest.approx(t7, rel=1e-12)
    table = sim.requests()
    assert list(table.cached_prompt_tokens) == [0, 64, 32, 0, 48]
    assert m.finished == 2 and m.preemptions == 0
    e = sim.episode_metrics()
    assert e.prefix_hit_rate == pytest.approx((64 + 32 + 48) / (72 + 104 + 72 + 144 + 72))


def test_prefix_keys_must_fit_the_blocks_and_the_simulator(sim_cls):
    with pytest.raises(ValueError, match="request 0 has 5 block keys, more than the 4 full blocks"):
        Workload.from_requests([(0.0, 60, 10, 0)], LOOSE, keys=[[1, 2, 3, 4, 5]])
    with pytest.raises(ValueError, match=r"block_keys\[0\]=-3 must be >= 0"):
        Workload.from_requests([(0.0, 60, 10, 0)], LOOSE, keys=[[-3]])
    w = Workload.from_requests([(0.0, 64, 10, 0)], LOOSE, keys=[[1, 2]], key_block_tokens=32)
    with pytest.raises(ValueError, match="cut at 32-token blocks; this simulator's blocks hold 16 tokens"):
        sim_cls(Cfg()).reset(w, seed=0)


def test_clients_see_every_first_token_and_finish_later_by_the_engines_client_latency(sim_cls):
    """The same two requests as test_two_requests_chunked on the default engine: the engine's
    iterations are the same, and what clients see is later by api_overhead_s (a constant: gaps
    between tokens, and so TPOT, are unchanged)."""
    w = Workload.from_requests([(0.0, 100, 3, 0), (0.0, 200, 2, 0)], LOOSE)
    sims = {}
    for engine in (ENGINE, ENGINES[DEFAULT_ENGINE]):
        sim = sim_cls(SimConfig(engine=engine))
        sim.reset(w, seed=0)
        sims[engine.name] = (sim, sim.advance(1.0, Knobs(batch_cap=8)))
    (a, ma), (b, mb) = sims["engine-side"], sims[DEFAULT_ENGINE]
    api = ENGINES[DEFAULT_ENGINE].api_overhead_s
    assert api > 0
    np.testing.assert_allclose(b.rf[:, 1:4], a.rf[:, 1:4] + api, rtol=0, atol=1e-12)
    assert mb.tenants[0].latency.tpot_p50_ms == pytest.approx(ma.tenants[0].latency.tpot_p50_ms, rel=1e-9)
    assert mb.iterations == ma.iterations
