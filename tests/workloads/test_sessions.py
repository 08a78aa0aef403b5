"""Prefix-sharing traffic: the Mooncake trace as read, and the multi-turn generator calibrated to it."""

import gzip
import json

import numpy as np
import pytest

from igym_marl.sim import Knobs, SimConfig, Simulator
from igym_marl.workloads import TraceFormatError, get_task, load_mooncake, parse_mooncake
from igym_marl.workloads.sessions import MOONCAKE_SESSIONS, SessionModel, prefix_repeat_share, session_workload

MOONCAKE = "traces/mooncake_conversation_trace.jsonl.gz"


def test_mooncake_is_read_with_its_prefixes_mapped_onto_16_token_blocks(data_dir):
    t = parse_mooncake(data_dir / MOONCAKE)
    assert t.rows == 12031 and t.format == "mooncake" and t.stamps[-1] == pytest.approx(3536.999)
    assert t.prompt.mean() == pytest.approx(12035.06, abs=0.01) and t.output.mean() == pytest.approx(342.62, abs=0.01)
    # the first request: 6,758 tokens, 14 hashes; its 422 full 16-token blocks are keyed hash x 32 + place
    keys = t.block_keys[t.key_ptr[0]:t.key_ptr[1]]
    assert keys.shape == (6758 // 16,) and list(keys[:3]) == [0, 1, 2] and keys[32] == 32 * 1 + 0
    # every request shares the first 512-token block (hash 0): keys 0..31
    assert all(list(t.block_keys[t.key_ptr[i]:t.key_ptr[i] + 32]) == list(range(32)) for i in range(0, 12031, 997))


def test_the_traces_repeat_share_and_the_cache_that_holds_everything(data_dir):
    """With a pool that holds everything, the share of prompt blocks served from the cache is the
    trace's own repeat share (36.6 % of its 512-token blocks; at 16-token blocks, below)."""
    w, _ = load_mooncake(data_dir / MOONCAKE)
    share = prefix_repeat_share(w)
    assert share == pytest.approx(0.374, abs=0.002)
    # first hour, time stretched 40x so one replica keeps up and nothing runs concurrently for long
    slow = w.take(np.arange(len(w)), arrival_s=w.arrival_s * 40.0)
    sim = Simulator(SimConfig(model="llama-3.1-8b", gpu="h100-80gb", kv_pool_blocks=1 << 22))
    sim.reset(slow, seed=0)
    knobs = Knobs(kv_budget_fraction=1.0)
    while sim.clock_s < slow.arrival_s[-1] + 600:
        sim.advance(600.0, knobs)
    hit = sim.episode_metrics().prefix_hit_rate
    assert hit == pytest.approx(0.366, abs=0.01), hit


def test_bad_mooncake_lines_name_the_file_and_line(tmp_path):
    good = {"timestamp": 0, "input_length": 1000, "output_length": 5, "hash_ids": [0, 1]}
    cases = [
        ("{not json", "line 2: is not JSON"),
        (json.dumps(dict(good, hash_ids=[0, 1, 2])), "hash_ids has 3 hashes, more than the 2 blocks"),
        (json.dumps(dict(good, input_length=-5)), "input_length '-5' must be an integer"),
        (json.dumps(dict(good, hash_ids="abc")), "hash_ids must be a list of integers"),
        (json.dumps(dict(good, hash_ids=[0, -1])), "hash_ids must be a list of integers"),
        (json.dumps({"timestamp": 0, "input_length": 5}), "missing field(s) ['output_length', 'hash_ids']"),
        (json.dumps(dict(good, timestamp=-1)), "timestamp '-1' must be milliseconds"),
        ("[1, 2]", "is not a JSON object"),
    ]
    for i, (line, fragment) in enumerate(cases):
        p = tmp_path / f"m{i}.jsonl"
        p.write_text(json.dumps(good) + "\n" + line + "\n")
        with pytest.raises(TraceFormatError) as e:
            parse_mooncake(p)
        assert str(p) in str(e.value) and "line 2" in str(e.value) and fragment in str(e.value), str(e.value)
    p = tmp_path / "back.jsonl"
    p.write_text(json.dumps(dict(good, timestamp=50)) + "\n" + json.dumps(dict(good, timestamp=10)) + "\n")
    with pytest.raises(TraceFormatError, match="line 2: timestamp '10' goes back in time"):
        parse_mooncake(p)


def test_the_trace_task_reads_mooncake_from_its_content_and_keeps_conversations_whole(data_dir, tmp_path):
    rows = [json.loads(ln) for ln in gzip.open(data_dir / MOONCAKE)][:400]
    p = tmp_path / "short.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match="thinning or copying them \\(rate_scale\\) would break"):
        get_task("trace", path=p, rate_scale=0.5)
    t = get_task("trace", path=p, episode_windows=6, window_s=10.0, load=0.5, random_start=True)
    assert "block keys" in t.description and t.capacity_rps > 0
    n = 0.5 * t.capacity_rps * 60
    sizes = []
    for seed in range(6):
        w = t.workload(seed)
        sizes.append(len(w))
        assert w.has_keys and 0 <= w.arrival_s[0] and w.arrival_s[-1] < 60.0
        # trace requests in order, with their keys: the first block is the shared one
        assert all(list(w.keys_of(i)[:32]) == list(range(32)) for i in range(len(w)))
    assert max(sizes) <= round(n) and min(sizes) > 0.8 * n  # load x capacity x horizon, never more


def test_the_session_generator_matches_the_trace_it_was_calibrated_to():
    shares, inputs, outputs = [], [], []
    for seed in range(3):
        w = session_workload(MOONCAKE_SESSIONS, 3.4, 3537, seed=seed)
        shares.append(prefix_repeat_share(w))
        inputs.append(w.prompt_tokens.mean())
        outputs.append(w.output_tokens.mean())
        assert len(w) == pytest.approx(12031, rel=0.1)
    assert np.mean(shares) == pytest.approx(0.366, abs=0.02)
    assert np.mean(inputs) == pytest.approx(12035, rel=0.1) and np.mean(outputs) == pytest.approx(343, rel=0.05)


def test_a_conversation_resends_its_context_and_shares_its_system_prompt():
    """Hand-checkable: one application, 32-token system prompt, messages of 20 tokens and answers of
    10, 5 s between turns: a session's prompts are 52, 82, 112, ... tokens, and turn k's keys extend
    turn k - 1's, answer included."""
    from igym_marl.workloads.generators import QuantileLengths
    fixed = QuantileLengths((0.0, 1.0), (20.0, 20.0), (10.0, 10.0))
    model = SessionModel(system_prompts=1, system_prompt_tokens=(32, 32), mean_turns=3.0, think_s=(5.0, 0.0),
                         first=fixed, followup=fixed)
    w = session_workload(model, 0.6, 60.0, seed=3)
    assert len(w) >= 10
    by_start = {}
    for i in range(len(w)):
        k = w.keys_of(i)
        assert list(k[:2]) == list(w.keys_of(0)[:2])  # the application's 2 system blocks, shared
        by_start.setdefault(int(k[2]), []).append(i)
    assert max(len(t) for t in by_start.values()) >= 3
    for turns in by_start.values():
        prompts = [int(w.prompt_tokens[i]) for i in turns]
        assert prompts == [52 + 30 * j for j in range(len(prompts))]
        for a, b in zip(turns, turns[1:]):
            ka, kb = w.keys_of(a), w.keys_of(b)
            assert list(kb[: len(ka)]) == list(ka)  # the next turn finds the whole earlier turn, answer included
            assert w.arrival_s[b] - w.arrival_s[a] == pytest.approx(5.0)


def test_conversations_are_told_by_their_second_block_and_episodes_keep_them_whole(data_dir):
    """A conversation's requests share the trace's second 512-token block (the first is the system
    prompt all share); a one-block prompt is a conversation of its own. An episode of the
    mooncake_conversation task keeps or drops a conversation whole, keeps the trace's own time
    where the trace is fast enough, and holds about the requests it asked for."""
    from igym_marl.workloads.tasks import conversation_episode, conversation_rows
    t = parse_mooncake(data_dir / MOONCAKE)
    conv = t.conversations()
    second = {}
    for i in range(t.rows):
        k = t.block_keys[t.key_ptr[i]:t.key_ptr[i + 1]]
        h = int(k[32]) // 32 if k.shape[0] > 32 else None
        if h is None:
            assert np.sum(conv == conv[i]) == 1
        else:
            assert second.setdefault(int(conv[i]), h) == h
    assert len(second) + sum(1 for i in range(t.rows) if t.key_ptr[i + 1] - t.key_ptr[i] <= 32) == conv.max() + 1
    assert 7000 < conv.max() + 1 < 7800  # 12,031 requests, about 1.6 per conversation
    rows, start, speed = conversation_rows(t, 300, 900.0, np.random.default_rng(3))
    assert speed == 1.0  # 300 requests in 900 s: the trace (3.4 req/s) is fast enough at its own pace
    stretch = np.flatnonzero((t.stamps >= start) & (t.stamps < start + 900.0))
    kept = set(conv[rows].tolist())
    assert set(rows.tolist()) == {int(r) for r in stretch if int(conv[r]) in kept}  # whole conversations
    assert 280 <= rows.size <= 300  # never more than asked; conversations are small, so hardly fewer
    w = conversation_episode(t, 300, 900.0, np.random.default_rng(3), "x")
    np.testing.assert_allclose(w.arrival_s, t.stamps[rows] - start)
    assert w.prompt_tokens.tolist() == t.prompt[rows].tolist() and w.has_keys
    fast, _, speed = conversation_rows(t, 9000, 900.0, np.random.default_rng(3))
    assert speed > 2.5 and 8500 < fast.size <= 9000  # more than the trace holds in 900 s: time is squeezed
    with pytest.raises(ValueError, match="conversations are known for Mooncake traces only"):
        from igym_marl.workloads.traces import parse_azure
        parse_azure(data_dir / "traces" / "azure_conv_2023_1h.csv").conversations()
