"""Replaying measured serving runs, and fitting an engine profile to them."""

import dataclasses

import numpy as np
import pytest

from igym_marl.sim.profiles import ENGINES, EngineProfile
from igym_marl.workloads.replay import (MEASURES, fit_engine_to_runs, load_runs, replay, run_workload, runs_of,
                                        synthetic_runs)

COLUMNS = ("run,model,gpu,tp,max_num_seqs,max_num_batched_tokens,chunked_prefill,prefix_caching,block_size,"
           "kv_blocks_gpu,stage,arrivals,rate_rps,duration_s,prompt_mean,prompt_p10,prompt_p50,prompt_p90,"
           "prompt_min,prompt_max,output_tokens,system_prompts,system_prompt_tokens,ttft_mean_ms,e2e_mean_ms")


def small_runs(tmp_path, arrivals="constant"):
    """Two short runs on H100: Llama-2-7B at tp 1 and tp 2, two stages each."""
    lines = [COLUMNS]
    for tp in (1, 2):
        for stage, rate in enumerate((3.0, 8.0)):
            lines.append(f"r-tp{tp},llama-2-7b,h100-80gb-sxm,{tp},64,2048,True,True,16,{7000 * tp},{stage},"
                         f"{arrivals},{rate},40,300,280,300,320,260,340,40,3,96,50.0,1000.0")
    p = tmp_path / "runs.csv"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_runs_are_read_and_their_traffic_rebuilt(tmp_path):
    stages = load_runs(small_runs(tmp_path))
    runs = runs_of(stages)
    assert list(runs) == ["r-tp1", "r-tp2"] and [s.stage for s in runs["r-tp1"]] == [0, 1]
    s = runs["r-tp1"][0]
    assert s.gpu == "h100-80gb" and s.kv_blocks == 7000 and s.system_prompt_tokens == (96, 96)
    w, stage_of = run_workload(runs["r-tp1"], seed=0)
    # constant rate: 3 req/s for 40 s then 8 req/s for 40 s
    assert np.sum(stage_of == 0) == 120 and np.sum(stage_of == 1) == 320
    assert np.allclose(np.diff(w.arrival_s[stage_of == 0]), 1 / 3)
    assert w.prompt_tokens.min() >= 260 and w.prompt_tokens.max() <= 340
    # every prompt begins with one of 3 system prompts of 96 tokens: 6 keyed blocks, shared
    assert all(len(w.keys_of(i)) == 6 for i in range(len(w)))
    assert len({tuple(w.keys_of(i)) for i in range(len(w))}) == 3


def test_a_fit_recovers_the_profile_that_made_the_runs(tmp_path):
    """Runs made by the simulator itself with a known profile: fitting from another start finds it."""
    stages = load_runs(small_runs(tmp_path))
    known = EngineProfile("known", iter_overhead_s=0.0015, tp_overhead_s=0.0, seq_overhead_s=0.0,
                          description="known", api_overhead_s=0.006, custom_all_reduce_s=12e-6)
    path = tmp_path / "synthetic.csv"
    synthetic_runs(stages, known, seed=0).to_csv(path, index=False)
    made = load_runs(path)
    start = dataclasses.replace(known, iter_overhead_s=0.0005, api_overhead_s=0.002, custom_all_reduce_s=30e-6)
    fitted, loss = fit_engine_to_runs(made, start, fields=("iter_overhead_s", "api_overhead_s", "custom_all_reduce_s"),
                                      max_evals=200, measures=MEASURES)
    assert loss < 1e-4
    assert fitted.iter_overhead_s == pytest.approx(known.iter_overhead_s, rel=0.05)
    assert fitted.api_overhead_s == pytest.approx(known.api_overhead_s, rel=0.05)
    assert fitted.custom_all_reduce_s == pytest.approx(known.custom_all_reduce_s, rel=0.1)


def test_bad_runs_files_name_the_line_and_field(tmp_path):
    good = small_runs(tmp_path).read_text().splitlines()
    cases = [
        (good[0].replace("kv_blocks_gpu,", ""), "missing column(s) ['kv_blocks_gpu']"),
        (good[1].replace(",constant,", ",bursty,"), "line 2: arrivals='bursty' is not supported"),
        (good[1].replace("r-tp1,llama-2-7b", "r-tp1,gpt-9"), "line 2: model='gpt-9' is unknown"),
        (good[1].replace(",True,True,", ",True,maybe,"), "line 2: prefix_caching='maybe' is not a boolean"),
        (good[1].replace(",3.0,", ",-3,"), "line 2: rate_rps=-3.0 must be a number >= 1e-06"),
    ]
    for i, (line, fragment) in enumerate(cases):
        p = tmp_path / f"bad{i}.csv"
        lines = [line, *good[2:]] if "missing" in fragment else [good[0], line, *good[2:]]
        p.write_text("\n".join(lines) + "\n")
        with pytest.raises(ValueError) as e:
            load_runs(p)
        assert fragment in str(e.value) and str(p) in str(e.value), str(e.value)
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("\n".join([good[0], good[1], good[2].replace(",64,2048,", ",32,2048,")]) + "\n")
    with pytest.raises(ValueError, match="run 'r-tp1': its stages disagree on max_num_seqs"):
        runs_of(load_runs(mixed))


def test_the_replay_reports_every_stage_with_the_measured_figures(tmp_path):
    stages = load_runs(small_runs(tmp_path))
    rows = replay(stages, ENGINES["ideal"])
    assert [(r["run"], r["stage"]) for r in rows] == [("r-tp1", 0), ("r-tp1", 1), ("r-tp2", 0), ("r-tp2", 1)]
    for r in rows:
        assert r["finished"] == r["requests"] and not r["overloaded"]
        assert r["real_ttft_mean_ms"] == 50.0 and np.isnan(r["real_ttft_p99_ms"])
        assert 0 < r["sim_ttft_p50_ms"] <= r["sim_ttft_p90_ms"] <= r["sim_ttft_p99_ms"]
        assert r["sim_ttft_mean_ms"] < r["sim_e2e_mean_ms"]
        assert 0.1 < r["prefix_hit_rate"] < 0.4  # 96 of ~300 prompt tokens are a shared system prompt
