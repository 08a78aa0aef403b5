"""Generators against the traffic they imitate; the task catalog; the control problem's trade-offs."""

import numpy as np
import pytest

from igym_marl.sim import Simulator
from igym_marl.workloads import TraceFormatError
from igym_marl.workloads import (ALIASES, TASKS, BurstGPTLengths, azure_conv_workload, burstgpt_workload,
                                 gamma_workload, get_task, load_azure, poisson_workload, traffic_stats)
from igym_marl.workloads.probes import EVAL_SEEDS, TRAIN_SEEDS, measure_tradeoffs
from igym_marl.workloads.tasks import adversarial_rates, day_phase


def test_seeded_and_distinct():
    a, b, c = (poisson_workload(5.0, 100.0, s) for s in (1, 1, 2))
    assert np.array_equal(a.arrival_s, b.arrival_s) and np.array_equal(a.prompt_tokens, b.prompt_tokens)
    assert not np.array_equal(a.arrival_s[:10], c.arrival_s[:10])


@pytest.mark.parametrize("shape", [0.25, 0.5, 1.0, 2.0])
def test_gamma_process_rate_and_cv(shape):
    w = gamma_workload(20.0, 2000.0, seed=0, shape=shape)
    ia = np.diff(w.arrival_s)
    assert len(w) / 2000.0 == pytest.approx(20.0, rel=0.05)
    assert ia.std() / ia.mean() == pytest.approx(1 / np.sqrt(shape), rel=0.08)


def test_bad_generator_arguments():
    with pytest.raises(ValueError, match="rate_rps"):
        poisson_workload(0.0, 10.0, 0)
    with pytest.raises(ValueError, match="shape"):
        gamma_workload(1.0, 10.0, 0, shape=-1.0)
    with pytest.raises(ValueError, match="duration_s"):
        burstgpt_workload(-1.0, 0)


def test_burstgpt_generator_against_published_figures():
    """A week at native time scale vs BurstGPT_1's published statistics (Wang et al., BurstGPT, KDD 2025)."""
    s = traffic_stats(burstgpt_workload(7 * 86400.0, seed=0))
    assert s["mean_rps"] == pytest.approx(0.271, rel=0.05)
    assert s["interarrival_mean_s"] == pytest.approx(3.69, rel=0.1)
    assert s["prompt_mean"] == pytest.approx(622, rel=0.1)
    assert s["output_mean"] == pytest.approx(126, rel=0.15)
    assert 1.9 < s["rate_60s_cv"] < 3.9  # published 2.91
    assert 30 < s["rate_60s_peak_over_mean"] < 120  # published 77 over 61 days
    assert s["prompt_p50"] < 0.2 * s["prompt_mean"]  # Zipf-like: most requests short, a heavy tail


def test_burstgpt_response_grows_with_request():
    rng = np.random.default_rng(0)
    req, resp = BurstGPTLengths(chat=False).sample(rng, 200_000)
    m300 = resp[(req > 250) & (req < 350)].mean()
    m2000 = resp[(req > 1800) & (req < 2200)].mean()
    assert 100 < m300 < 160 and 380 < m2000 < 520  # published ~100-150 at 300, ~450 at 2,000
    creq, chat = BurstGPTLengths(chat=True).sample(rng, 200_000)
    long_api, long_chat = resp[(req > 1000) & (req < 3000)], chat[(creq > 1000) & (creq < 3000)]
    # conversation responses are bimodal: a short-answer mode even after long requests
    assert np.mean(long_chat < 40) > 0.15 and np.mean(long_api < 40) < 0.02


def test_azure_generator_against_the_real_hour(data_dir):
    real, _ = load_azure(data_dir / "traces" / "azure_conv_2023_1h.csv")
    r = traffic_stats(real)
    for seed in (0, 1, 2):
        g = traffic_stats(azure_conv_workload(3500.0, seed))
        assert g["mean_rps"] == pytest.approx(r["mean_rps"], rel=0.05)
        assert g["interarrival_cv"] == pytest.approx(r["interarrival_cv"], rel=0.1)
        assert 0.4 * r["rate_60s_cv"] < g["rate_60s_cv"] < 2.0 * r["rate_60s_cv"]
        for q in ("p10", "p50", "p90"):
            assert g[f"prompt_{q}"] == pytest.approx(r[f"prompt_{q}"], rel=0.1)
            assert g[f"output_{q}"] == pytest.approx(r[f"output_{q}"], rel=0.1)
        assert g["prompt_mean"] == pytest.approx(r["prompt_mean"], rel=0.08)


def test_catalog_ids_aliases_and_errors():
    assert set(TASKS) == {"static_workload", "bursty_workload", "adversarial_multitenant", "mooncake_conversation"}
    for alias, target in ALIASES.items():
        assert get_task(alias) is TASKS[target]
    with pytest.raises(ValueError, match="task='nope' is unknown; allowed: static_workload"):
        get_task("nope")
    t = get_task("static_workload", episode_windows=10)
    assert t.episode_windows == 10 and TASKS["static_workload"].episode_windows == 200


@pytest.mark.parametrize("tid,window,windows", [("static_workload", 5.0, 200), ("bursty_workload", 5.0, 120),
                                                ("adversarial_multitenant", 6.0, 200)])
def test_task_shape_and_seeds(tid, window, windows):
    t = TASKS[tid]
    assert (t.window_s, t.episode_windows) == (window, windows)
    a, b, c = t.workload(3), t.workload(3), t.workload(4)
    assert np.array_equal(a.arrival_s, b.arrival_s) and len(a) != len(c) or not np.array_equal(a.arrival_s[:50],
                                                                                                c.arrival_s[:50])
    assert a.arrival_s.max() < t.horizon_s + 1
    assert set(TRAIN_SEEDS).isdisjoint(range(EVAL_SEEDS.start, EVAL_SEEDS.start + 10))


def test_static_load_is_60_percent_of_capacity():
    t = TASKS["static_workload"]
    rates = [len(t.workload(s)) / t.horizon_s / t.capacity_rps for s in range(5)]
    assert np.mean(rates) == pytest.approx(0.6, abs=0.03)


def test_bursty_has_quiet_phases_and_storms():
    t = TASKS["bursty_workload"]
    for s in range(5):
        w = t.workload(s)
        r = np.histogram(w.arrival_s, bins=np.arange(0, t.horizon_s + 1, 10.0))[0] / 10.0 / t.capacity_rps
        assert r.max() > 1.6  # storms at 2-3x capacity (10-s windows, Gamma noise)
        assert np.median(r) < 0.6  # mostly quiet
        assert {w.tenants[i].name for i in np.unique(w.tenant)} == {"conversation", "api"}
        api, conv = w.prompt_tokens[w.tenant == 1], w.prompt_tokens[w.tenant == 0]
        assert np.percentile(api, 99) > 10 * np.median(api)  # BurstGPT's long tail
        assert conv.min() > 200  # every conversation turn carries its system prompt (200-1,000 tokens)


def test_adversarial_is_a_compressed_day_with_storms_documents_and_mega_prompts():
    """Interactive and standard traffic by day with storms above capacity, batch summaries and long
    documents at night, 4-8 unannounced 16k-32k-token prompts; the phase labels match the hours."""
    t = TASKS["adversarial_multitenant"]
    for s in range(5):
        inter, std, summaries, docs, hour = adversarial_rates(t, np.random.default_rng(s))
        cap = t.capacity_rps
        phase = day_phase(hour)
        assert hour.shape == (int(t.horizon_s),) and 5.5 <= hour[0] <= 8.5  # starts about 07:00
        assert np.allclose(np.diff(hour) % 24, 24 / t.horizon_s)  # 24 h over the episode
        assert ((inter + std) / cap).max() > 1.45  # storms above capacity
        assert (inter[phase == 0].mean() > 10 * inter[phase == 2].mean())  # people chat by day
        assert summaries[phase == 2].mean() > 10 * summaries[phase == 0].mean()  # batch runs at night
        assert docs[phase == 2].mean() == pytest.approx(summaries[phase == 2].mean() * 0.3 / 0.7 / 4, rel=0.05)
        names, labels = t.phase_labels(s)
        assert names == ("day", "evening", "night") and np.array_equal(labels, phase)
        w = t.workload(s)
        night = labels[w.arrival_s.astype(int)] == 2
        batch = w.tenant == 2
        assert np.mean(w.prompt_tokens[batch & night] >= 8000) > 0.05  # long documents at night
        mega = (w.prompt_tokens >= 16384) & ~(batch & night)
        assert 4 <= mega.sum() <= 12 and w.prompt_tokens.max() <= 32768
        assert len(w.tenants) == 3 and w.tenants[0].priority > w.tenants[1].priority > w.tenants[2].priority
        assert [x.timeout_s for x in w.tenants] == [10.0, 60.0, 600.0]


def test_bursty_phase_labels_mark_the_storms():
    t = TASKS["bursty_workload"]
    names, labels = t.phase_labels(3)
    w = t.workload(3)
    rate = np.bincount(w.arrival_s.astype(int), minlength=labels.size)[: labels.size]
    assert names == ("quiet", "storm") and 0 < labels.mean() < 0.3
    assert rate[labels == 1].mean() > 3 * rate[labels == 0].mean()


def test_an_episode_draws_its_traffic_and_phases_in_one_pass():
    """The env asks its task for one Episode per reset: the traffic function runs once, and the
    phases it returns are those of the very traffic the env serves (the rates drawn first)."""
    import dataclasses
    from igym_marl import serving_v0
    from igym_marl.workloads.tasks import bursty_rate
    calls = []
    base = TASKS["bursty_workload"]

    def counted(task, rng):
        calls.append(1)
        return base.traffic(task, rng)

    task = dataclasses.replace(base, traffic=counted, episode_windows=4)
    env = serving_v0.parallel_env(task=task)
    env.reset(seed=7)
    assert len(calls) == 1 and env.episode.workload is env.workload
    names, labels = env.episode.phase_names, env.episode.phase_of_second
    assert names == ("quiet", "storm")
    assert np.array_equal(labels, (bursty_rate(task, np.random.default_rng(7)) > task.capacity_rps).astype(np.int64))


def test_a_traffic_function_without_phases_has_one():
    t = TASKS["static_workload"]
    names, labels = t.phase_labels(0)
    assert names == ("all",) and labels.shape == (int(np.ceil(t.horizon_s)),) and not labels.any()


@pytest.mark.parametrize("tid", list(TASKS))
def test_recorded_capacity_matches_a_fresh_measurement(tid):
    """The recorded capacity is the mean of the probe over seeds 0-9 (an episode's mix varies by seed)."""
    t = TASKS[tid]
    fresh = np.mean([t.measure_capacity(seed) for seed in range(10)])
    assert t.capacity_rps == pytest.approx(fresh, rel=0.05)


def test_trace_task_replays_a_file(tmp_path):
    lines = ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"]
    lines += [f"{i // 3},ChatGPT,{100 + i},{20},{120 + i},{'API log' if i % 2 else 'Conversation log'}" for i in range(600)]
    p = tmp_path / "t.csv"
    p.write_text("\n".join(lines) + "\n")
    t = get_task("trace", path=p, window_s=5.0, episode_windows=20, random_start=True)
    assert t.horizon_s == 100.0
    w1, w2 = t.workload(0), t.workload(1)
    # 3 requests a second; the two boundary seconds are cut at a uniform point inside them
    assert 294 <= len(w1) <= 306 and w1.arrival_s.max() < 100.0
    assert not np.array_equal(w1.prompt_tokens[:20], w2.prompt_tokens[:20])  # different starting points
    sim = Simulator(t.config)
    sim.reset(w1, seed=0)
    assert sim.advance(100.0, __import__("igym_marl.sim", fromlist=["Knobs"]).Knobs()).arrived == len(w1)
    with pytest.raises(ValueError, match="format='parquet'"):
        get_task("trace", path=p, format="parquet")


def test_every_knob_has_a_phase_where_raising_helps_and_one_where_it_hurts():
    rows = measure_tradeoffs(seeds=(0, 1))
    assert {r["knob"] for r in rows} == {"batch_cap", "kv_budget_fraction", "speculation_depth", "quantization_tier",
                                         "prefill_decode_split", "priority_routing"}
    for r in rows:
        assert r["raising"] == r["expected"], r


def test_a_small_kv_budget_costs_conversations_their_cache_hits():
    """Conversations behind 64 system prompts at 0.2x: a 20 % pool evicts the cached prefixes a 90 %
    pool keeps; TTFT attainment falls with the hit rate. Without block keys (the control) the same
    requests gain a fraction of that from the bigger pool: the cache is what the budget buys here."""
    rows = [r for r in measure_tradeoffs(seeds=(0, 1)) if r["knob"] == "kv_budget_fraction"]
    cache, control = (next(r for r in rows if r["phase"].startswith(p)) for p in ("conversations", "control"))
    assert cache["metric"] == "tenant0_ttft_attainment" and (cache["low_setting"], cache["high_setting"]) == (0.2, 0.9)
    assert cache["high"] - cache["low"] > 0.2
    assert control["high"] - control["low"] < 0.5 * (cache["high"] - cache["low"])
    from igym_marl.workloads.probes import TRADEOFFS, run_phase
    phase = next(p for t in TRADEOFFS for p in t.phases if p.name.startswith("conversations"))
    hits = [run_phase(phase, k, 0)["prefix_hit_rate"] for k in (phase.low, phase.high)]
    assert hits[1] > hits[0] + 0.2


# --------------------------------------------------------------- trace task (regression cases)
def _burst_file(tmp_path, n=600, per_second=3, name="t.csv", tenants=("Conversation log", "API log")):
    lines = ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"]
    lines += [f"{i // per_second},ChatGPT,{100 + i % 50},20,{120 + i % 50},{tenants[i % len(tenants)]}"
              for i in range(n)]
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


def test_trace_format_is_read_from_the_header(data_dir):
    t = get_task("trace", path=data_dir / "traces" / "azure_conv_2023_1h.csv", episode_windows=2)
    assert "azure" in t.description and t.workload(0).tenants[0].name == "trace"
    assert t.capacity_rps > 0  # measured with the trace's own lengths


def test_trace_short_random_episodes_never_crash(tmp_path):
    # a sparse trace: one request every 20 s, alternating tenants; 1-window episodes are often empty
    lines = ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"]
    lines += [f"{20 * i},ChatGPT,50,10,60,{'API log' if i % 2 else 'Conversation log'}" for i in range(40)]
    p = tmp_path / "sparse.csv"
    p.write_text("\n".join(lines) + "\n")
    from igym_marl.serving_v0 import parallel_env
    env = parallel_env(task="trace", path=p, random_start=True, episode_windows=1, window_s=5.0)
    sizes = set()
    for seed in range(60):
        obs, _ = env.reset(seed=seed)
        sizes.add(len(env.workload))
        assert [t.name for t in env.workload.tenants] == ["conversation", "api"]
        obs, r, term, trunc, info = env.step({a: env.action_space(a).sample() for a in env.agents})
        assert all(np.isfinite(o).all() for o in obs.values())
    assert 0 in sizes and 1 in sizes  # empty and one-tenant slices both happened


def test_trace_random_start_survives_env_episode_windows(tmp_path):
    from igym_marl.serving_v0 import parallel_env
    env = parallel_env(task="trace", path=_burst_file(tmp_path), random_start=True, episode_windows=4)
    assert env.task.episode_windows == 4
    firsts = set()
    for seed in range(5):
        env.reset(seed=seed)
        firsts.add(int(env.workload.prompt_tokens[0]))
    assert len(firsts) > 1  # the start moves; it did not when the env shortened a whole-file task


def test_trace_huge_timestamp_and_span(tmp_path):
    lines = ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type",
             "0,ChatGPT,50,10,60,API log", "1000000000000000,ChatGPT,50,10,60,API log"]
    p = tmp_path / "huge.csv"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(TraceFormatError, match="line 3.*time stamp"):
        get_task("trace", path=p)
    lines[2] = "900000000,ChatGPT,50,10,60,API log"  # 28 years: plausible stamp, absurd episode
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="episode_windows= or duration_s="):
        get_task("trace", path=p)
    assert get_task("trace", path=p, episode_windows=3).horizon_s == 15.0


def test_trace_load_is_relative_to_measured_capacity(data_dir):
    p = data_dir / "traces" / "azure_conv_2023_1h.csv"
    for load in (0.5, 1.5):
        t = get_task("trace", path=p, load=load)
        w = t.workload(0)
        assert len(w) / t.horizon_s == pytest.approx(load * t.capacity_rps, rel=0.05)
    with pytest.raises(ValueError, match="not both"):
        get_task("trace", path=p, load=0.8, rate_scale=2.0)
    with pytest.raises(ValueError, match="load=0"):
        get_task("trace", path=p, load=0)


def test_trace_is_parsed_once(tmp_path, monkeypatch):
    import pandas as pd
    t = get_task("trace", path=_burst_file(tmp_path), episode_windows=4, random_start=True)

    def no_read(*a, **k):
        raise AssertionError("the file was read again")
    monkeypatch.setattr(pd, "read_csv", no_read)
    for seed in range(3):
        assert len(t.workload(seed)) > 0


@pytest.mark.parametrize("kw, fragment", [({"window_s": 0}, "window_s=0"), ({"window_s": float("nan")}, "window_s=nan"),
                                          ({"episode_windows": 0}, "episode_windows=0"),
                                          ({"widnow_s": 5}, "unknown option.*widnow_s.*allowed")])
def test_task_options_are_checked(tmp_path, kw, fragment):
    with pytest.raises(ValueError, match=fragment):
        get_task("trace", path=_burst_file(tmp_path), **kw)
    with pytest.raises(ValueError, match=fragment):
        get_task("static_workload", **kw)
    with pytest.raises(ValueError, match="needs path="):
        get_task("trace")


def test_load_is_the_load_of_what_is_played_even_with_an_outlier_row(tmp_path):
    """21 rows at t = 0..19 and one far away: `load` once scaled by the whole span, so a 20-window
    episode got about 1,500x the asked load (or a 69 GiB allocation). Now every episode plays it."""
    for far in (9e8, 2e5):
        lines = ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"]
        lines += [f"{i},ChatGPT,200,50,250,Conversation log" for i in range(20)] + [f"{far:.0f},ChatGPT,200,50,250,API log"]
        p = tmp_path / f"outlier{far:.0f}.csv"
        p.write_text("\n".join(lines) + "\n")
        for random_start in (False, True):
            t = get_task("trace", path=p, load=0.8, episode_windows=20, random_start=random_start)
            asked = 0.8 * t.capacity_rps * t.horizon_s
            for seed in range(8):
                n = len(t.workload(seed))
                assert n <= 1.5 * asked, (far, random_start, seed, n, asked)
                if not random_start:
                    assert n == pytest.approx(asked, rel=0.1)


def test_load_on_a_file_without_a_rate_or_a_capacity_says_why(tmp_path):
    one = tmp_path / "one.csv"
    one.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n3.0,100,10\n")
    with pytest.raises(ValueError, match=r"load=0.8 needs a trace whose segment spans at least one window \(5 s\)"):
        get_task("trace", path=one, load=0.8)
    huge = tmp_path / "huge_prompt.csv"
    huge.write_text("arrived_at,num_prefill_tokens,num_decode_tokens\n0.0,1000000,10\n30.0,1000000,10\n")
    with pytest.raises(ValueError, match="serves none of its requests.*prompts of up to 1,000,000 tokens.*rate_scale="):
        get_task("trace", path=huge, load=0.8)
    with pytest.raises(ValueError, match="requests per episode"):
        get_task("trace", path=_burst_file(tmp_path), load=1e6, episode_windows=20)
    with pytest.raises(ValueError, match="more than 2,000,000 in one workload"):
        get_task("trace", path=_burst_file(tmp_path), rate_scale=1e7).workload(0)


def test_a_trace_task_is_built_once_per_file_content_and_settings(tmp_path, monkeypatch):
    """Asking for the same trace task again parses nothing and probes no capacity; another load or
    an edited file builds a new one."""
    from igym_marl.workloads import tasks
    lines = ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"]
    lines += [f"{i * 0.5},ChatGPT,{100 + i},{50 + i},{150 + 2 * i},Conversation log" for i in range(40)]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    built = []
    real = tasks._trace_task
    monkeypatch.setattr(tasks, "_trace_task", lambda *a, **k: built.append(a) or real(*a, **k))
    a = get_task("trace", path=str(path), load=0.5)
    assert get_task("trace", path=str(path), load=0.5) is a and len(built) == 1
    assert get_task("trace", path=str(path), load=0.6) is not a and len(built) == 2
    path.write_text("\n".join(lines[:30]) + "\n")
    assert get_task("trace", path=str(path), load=0.5) is not a and len(built) == 3
