"""Fidelity across GPUs: per-GPU efficiencies, all-reduce from measurement, engine profiles."""

import dataclasses
import math

import numpy as np
import pytest

from igym_marl.sim import calibration as cal
from igym_marl.sim import cost_model as cm
from igym_marl.sim.profiles import (ALL_REDUCE, ENGINES, GPU_EFFICIENCY, EngineProfile, get_engine, make_replica)
from igym_marl.sim.simulator import Simulator
from igym_marl.sim.types import Knobs, SimConfig, Tenant, Workload

CPU = (cm.C_ITER_OVERHEAD_S, cm.C_SEQ_OVERHEAD_S)


def _median_abs(err):
    return float(np.median(np.abs(err)))


def test_h100_linear_layers_within_10_percent_at_every_tp(data_dir):
    pts = cal.load_linear_points(data_dir, gpu="h100-80gb")
    assert {p.tp for p in pts} == {1, 2, 4, 8} and len(pts) > 1000
    assert _median_abs(cal.errors(pts)) <= 0.10
    for tp in (1, 2, 4, 8):
        assert _median_abs(cal.errors([p for p in pts if p.tp == tp])) <= 0.10, tp


def test_a100_efficiencies_carry_to_the_held_out_70b_profile(data_dir):
    pts = [p for p in cal.load_linear_points(data_dir, gpu="a100-80gb") if p.model == "llama-2-70b"]
    assert len(pts) > 1000
    assert _median_abs(cal.errors(pts)) <= 0.10


def test_all_reduce_fits_follow_the_measured_curves(data_dir):
    pts = cal.load_all_reduce_points(data_dir)
    err = cal.all_reduce_errors(pts)
    for gpu in ("a100-80gb", "h100-80gb"):
        for w in (2, 4, 8):
            sel = np.array([p.gpu == gpu and p.workers == w for p in pts])
            assert sel.sum() > 500
            assert _median_abs(err[sel]) <= 0.12, (gpu, w)
    # only intra-node rows are used: the A100 file's 16-worker and cross-node rows are left out
    assert {p.workers for p in pts} == {2, 4, 8}
    # H100's NVLink 4 moves large messages faster than A100's NVLink 3 at every worker count
    for w in (2, 4, 8):
        assert ALL_REDUCE["h100-80gb"][w].bytes_per_s > ALL_REDUCE["a100-80gb"][w].bytes_per_s


def test_the_fits_reproduce_the_shipped_constants(data_dir):
    """One source for every constant: refitting gives what profiles.py holds (to its rounding)."""
    ar = cal.fit_all_reduce(cal.load_all_reduce_points(data_dir))
    for gpu in ("a100-80gb", "h100-80gb"):
        for w, f in ar[gpu].items():
            assert f.latency_s == pytest.approx(ALL_REDUCE[gpu][w].latency_s, rel=0.01)
            assert f.bytes_per_s == pytest.approx(ALL_REDUCE[gpu][w].bytes_per_s, rel=0.01)
    h = GPU_EFFICIENCY["h100-80gb"]
    fit = cal.fit_gpu_efficiency(cal.load_linear_points(data_dir, gpu="h100-80gb"), h, h.basis, weighted=True)
    assert fit.knee_power == h.knee_power
    for f in ("linear_mfu", "hbm_efficiency", "layer_overhead_s"):
        assert getattr(fit, f) == pytest.approx(getattr(h, f), rel=0.01), f
    single = [p for p in cal.load_e2e_points(data_dir) if not cal.is_outlier(p) and not cal.is_batched_prefill(p)]
    eng = cal.fit_engine(single, ENGINES["vllm-0.2"], ("tp_overhead_s",), ar)
    assert eng.tp_overhead_s == pytest.approx(ENGINES["vllm-0.2"].tp_overhead_s, rel=0.01)


def test_comm_term_is_two_measured_all_reduces_per_layer():
    r = make_replica("llama-2-70b", "h100-80gb", 4)
    c = cm.cost_constants(r)
    ar = ALL_REDUCE["h100-80gb"][4]
    assert c[cm.C_COMM_FIXED_S] == pytest.approx(2 * 80 * ar.latency_s)
    assert c[cm.C_COMM_S_PER_TOKEN] == pytest.approx(2 * 80 * 8192 * 2 / ar.bytes_per_s)
    # 1,000 tokens: 160 all-reduces of 1,000 x 8,192 FP16 values, each latency + bytes / bandwidth
    comm = c[cm.C_COMM_FIXED_S] + 1000 * c[cm.C_COMM_S_PER_TOKEN]
    assert comm == pytest.approx(160 * ar.seconds(1000 * 8192 * 2))
    one = cm.cost_constants(make_replica("llama-3-8b", "h100-80gb", 1))
    assert one[cm.C_COMM_FIXED_S] == 0 and one[cm.C_COMM_S_PER_TOKEN] == 0


def test_engine_profile_changes_cpu_costs_only():
    for gpu, tp in (("a100-80gb", 1), ("h100-80gb", 4), ("h200", 8)):
        r = make_replica("llama-2-70b" if tp > 1 else "llama-3-8b", gpu, tp)
        real, ideal = cm.cost_constants(r, "FP16", "vllm-0.2"), cm.cost_constants(r, "FP16", "ideal")
        gpu_idx = [i for i in range(cm.N_CONST) if i not in CPU]
        assert np.array_equal(real[gpu_idx], ideal[gpu_idx])
        e = ENGINES["vllm-0.2"]
        assert real[cm.C_ITER_OVERHEAD_S] == pytest.approx(e.iter_overhead_s + math.log2(tp) * e.tp_overhead_s)
        assert real[cm.C_SEQ_OVERHEAD_S] == e.seq_overhead_s and ideal[cm.C_ITER_OVERHEAD_S] == 0
        # the difference in a whole iteration is exactly the CPU time: per iteration plus per sequence
        args = (300.0, 40.0, 0.0, 40 * 900.0, 40 * 900.0, 40.0)
        diff = cm.iteration_s(real, *args) - cm.iteration_s(ideal, *args)
        assert diff == pytest.approx(real[cm.C_ITER_OVERHEAD_S] + 40 * e.seq_overhead_s)
    # doubling the workers adds tp_overhead_s per iteration
    c2, c4 = (cm.cost_constants(make_replica("llama-2-70b", "a100-80gb", tp), "FP16", "vllm-0.2") for tp in (2, 4))
    assert c4[cm.C_ITER_OVERHEAD_S] - c2[cm.C_ITER_OVERHEAD_S] == pytest.approx(ENGINES["vllm-0.2"].tp_overhead_s)


def test_h200_is_h100_efficiencies_on_its_own_datasheet():
    h100, h200 = GPU_EFFICIENCY["h100-80gb"], GPU_EFFICIENCY["h200"]
    assert dataclasses.replace(h200, basis="") == dataclasses.replace(h100, basis="")
    assert "H100" in h200.basis and ALL_REDUCE["h200"] is ALL_REDUCE["h100-80gb"]
    # memory-bound decode: H200's 4.8 TB/s beats H100's 3.35 TB/s by about the bandwidth ratio on GPU work
    g100 = cm.predict_ms("llama-2-70b", "h100-80gb", 4, 0, 8, 1000, engine="ideal")
    g200 = cm.predict_ms("llama-2-70b", "h200", 4, 0, 8, 1000, engine="ideal")
    assert 1.2 < g100 / g200 < 4.8 / 3.35


def _toy():
    t = (Tenant("t", ttft_slo_ms=5000.0, tpot_slo_ms=1000.0),)
    return Workload.from_requests([(0.01 * i, 200, 50, 0) for i in range(40)], t, name="toy")


def test_simconfig_engine_profile_in_the_simulator():
    finish = {}
    for eng in ("vllm-0.2", "ideal", EngineProfile("slow", 20e-3, 0.0, 1e-3, "a heavy engine")):
        sim = Simulator(SimConfig(engine=eng))
        sim.reset(_toy(), seed=0, knobs=Knobs())
        sim.advance(60.0, Knobs())
        done = sim.requests().finish_s
        assert np.isfinite(done).all()
        finish[getattr(eng, "name", eng)] = float(done.max())
    assert finish["ideal"] < finish["vllm-0.2"] < finish["slow"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(engine="vllm-9"), r"engine='vllm-9' is unknown; allowed: 'vllm-0.2', 'vllm-0.15', 'ideal'"),
    (dict(engine=3), r"engine=3 is unknown"),
])
def test_bad_engine_names_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimConfig(**kwargs)


@pytest.mark.parametrize("field, value", [("iter_overhead_s", -1e-3), ("seq_overhead_s", float("nan")),
                                          ("tp_overhead_s", 2.0), ("tp_overhead_s", True)])
def test_bad_engine_profiles_are_refused(field, value):
    kw = dict(name="x", iter_overhead_s=0.0, tp_overhead_s=0.0, seq_overhead_s=0.0, description="")
    kw[field] = value
    with pytest.raises(ValueError, match=f"EngineProfile {field}="):
        EngineProfile(**kw)
    assert get_engine(EngineProfile("ok", 0.0, 0.0, 0.0, "")).name == "ok"


def test_end_to_end_csv_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        cal.load_e2e_csv(tmp_path / "none.csv")
    bad = tmp_path / "cols.csv"
    bad.write_text("model,hardware\nllama2-70b,a100-80gb\n")
    with pytest.raises(ValueError, match=r"columns \['prompt_size'"):
        cal.load_e2e_csv(bad)
    gpu = tmp_path / "gpu.csv"
    gpu.write_text(",".join(cal.E2E_COLUMNS) + "\nllama2-70b,b200,512,1,128,100,40,4\n")
    with pytest.raises(ValueError, match=r"line 2: gpu='b200' is unknown"):
        cal.load_e2e_csv(gpu)


def test_fit_engine_recovers_a_known_profile_and_refuses_what_it_cannot_fit(tmp_path):
    """Synthetic measurements made by the model with a known engine: the fit finds it again."""
    truth = EngineProfile("truth", 2e-3, 4e-3, 0.1e-3, "")
    rows = []
    for tp in (2, 4, 8):
        for batch in (1, 8, 32):
            p = cal.Point("e2e-decode", "h100-80gb", "llama-2-70b", tp, 512, batch, 576, 1.0)
            q = cal.Point("e2e-prefill", "h100-80gb", "llama-2-70b", tp, 512, batch, 0, 1.0)
            rows.append(f"llama2-70b,h100-80gb,512,{batch},128,{cal.predicted_ms(q, truth)},"
                        f"{cal.predicted_ms(p, truth)},{tp}")
    path = tmp_path / "h100.csv"
    path.write_text(",".join(cal.E2E_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    pts = cal.load_e2e_csv(path)
    assert {p.context for p in pts if p.phase == "decode"} == {576}
    fit = cal.fit_engine(pts, ENGINES["vllm-0.2"], cal.ENGINE_FIELDS, name="mine")
    assert fit.name == "mine"
    for f in cal.ENGINE_FIELDS:
        assert getattr(fit, f) == pytest.approx(getattr(truth, f), rel=1e-3, abs=1e-7), f
    tp2 = [p for p in pts if p.tp == 2]
    with pytest.raises(ValueError, match="two or more tp degrees"):
        cal.fit_engine(tp2, truth, ("iter_overhead_s", "tp_overhead_s"))
    with pytest.raises(ValueError, match="fields="):
        cal.fit_engine(pts, truth, ("gpu_speed",))
