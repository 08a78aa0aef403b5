"""The cost model: physics it must respect, and its error on the shared measurements."""

import numpy as np
import pytest

from igym_marl.sim import calibration as cal
from igym_marl.sim.cost_model import cost_constants, iteration_s, linear_layers_s, predict_ms
from igym_marl.sim.profiles import GPUS, MODELS, make_replica


def test_decode_is_flat_then_linear_in_batch():
    c = cost_constants(make_replica("llama-3-8b", "a100-80gb", 1))
    t1, t32 = linear_layers_s(c, 1.0), linear_layers_s(c, 32.0)
    t4096 = predict_ms("llama-3-8b", "a100-80gb", 1, 4096, 0, 0)
    t8192 = predict_ms("llama-3-8b", "a100-80gb", 1, 8192, 0, 0)
    assert t32 < 1.15 * t1  # memory bound at small batch: reads the weights once either way
    assert 1.8 < t8192 / t4096 < 2.4  # compute bound for long prefills (attention adds a little)


def test_faster_gpus_and_more_tp_are_faster():
    for args in [(0, 64, 1000), (2048, 0, 0), (0, 256, 2000)]:
        a100 = predict_ms("llama-3-8b", "a100-80gb", 1, *args)
        h100 = predict_ms("llama-3-8b", "h100-80gb", 1, *args)
        h200 = predict_ms("llama-3-8b", "h200", 1, *args)
        assert h200 <= h100 < a100
    assert predict_ms("llama-2-70b", "a100-80gb", 4, 4096, 0, 0) < predict_ms("llama-2-70b", "a100-80gb", 2, 4096, 0, 0)


def test_longer_context_costs_more_and_kv_heavy_model_more():
    assert predict_ms("llama-3-8b", "a100-80gb", 1, 0, 64, 8000) > predict_ms("llama-3-8b", "a100-80gb", 1, 0, 64, 100)
    # Llama-2-7B has 4x the KV bytes per token of Llama-3-8B (MHA vs GQA)
    d7 = predict_ms("llama-2-7b", "a100-80gb", 1, 0, 128, 4000) - predict_ms("llama-2-7b", "a100-80gb", 1, 0, 128, 0)
    d8 = predict_ms("llama-3-8b", "a100-80gb", 1, 0, 128, 4000) - predict_ms("llama-3-8b", "a100-80gb", 1, 0, 128, 0)
    assert 3.0 < d7 / d8 < 5.0


def test_quantization_speeds_memory_bound_and_slows_compute_bound():
    r = make_replica("llama-3-8b", "a100-80gb", 1)
    fp16, int4 = cost_constants(r, "FP16"), cost_constants(r, "INT4")
    small = (4.0, 4.0, 0.0, 4000.0, 4000.0, 4.0)
    big = (4096.0, 1.0, 4096.0 * 2048.5, 0.0, 0.0, 1.0)
    assert iteration_s(int4, *small) < 0.8 * iteration_s(fp16, *small)
    assert iteration_s(int4, *big) > iteration_s(fp16, *big)


def test_kv_capacity_from_memory():
    r = make_replica("llama-3-8b", "a100-80gb", 1)
    # 0.9 x 81,920 MiB (the A100's 80 GB as the driver reports them) - 16.06 GB weights - 1.14 GB
    # activation reserve, in 16 x 128 KiB blocks
    expect = (0.9 * 81920 * 2**20 / 1e9 - 8.03 * 2 - 1.14) * 1e9 / (16 * 131072)
    assert r.kv_capacity_blocks("FP16", 1.0) == int(expect)
    assert r.kv_capacity_blocks("INT4", 1.0) > r.kv_capacity_blocks("INT8", 1.0) > r.kv_capacity_blocks("FP16", 1.0)
    assert r.kv_capacity_blocks("FP16", 0.5) == int(0.5 * r.kv_pool_gb("FP16") * 1e9 / (16 * 131072))


def test_every_profile_combination_is_built_or_refused_clearly():
    for m in MODELS:
        for g in GPUS:
            for tp in (1, 2, 4, 8):
                try:
                    predict_ms(m, g, tp, 512, 8, 512)
                except ValueError as e:
                    assert "cannot hold its weights" in str(e) and m.endswith("70b") and tp == 1


def test_fidelity_on_shared_measurements(data_dir):
    """Median absolute error <= 5 % on the A100 profiles it was fitted on (docs/fidelity.md)."""
    lin = [p for p in cal.load_linear_points(data_dir, gpu="a100-80gb") if p.model != "llama-2-70b"]
    e2e = [p for p in cal.load_e2e_points(data_dir) if not cal.is_outlier(p)]
    assert len(lin) > 2000 and len(e2e) > 100
    assert np.median(np.abs(cal.errors(lin))) <= 0.05
    assert np.median(np.abs(cal.errors(e2e))) <= 0.10
    # decode steps, what serving spends most iterations on, are tighter still
    dec = np.abs(cal.errors([p for p in e2e if p.source == "e2e-decode"]))
    assert np.median(dec) <= 0.05


def test_missing_calibration_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        cal.load_e2e_points(tmp_path)


def test_speculation_speeds_up_small_batches_and_slows_large_ones():
    """Tokens per second with draft depth k relative to k = 0 (acceptance 0.6, 500-token context):
    speculation helps at low load and hurts at high load, as vLLM's RFC #4565 reports."""
    from igym_marl.sim.cost_model import draft_step_s
    c = cost_constants(make_replica("llama-3-8b", "a100-80gb", 1))
    a = 0.6 * 8192 / (8192 + 500)

    def gain(n, k):
        kv = 500.0 * n
        base = iteration_s(c, n, n, 0.0, kv, kv, n)
        t = iteration_s(c, n * (k + 1), n * (k + 1), 0.0, kv, kv * (k + 1), n) + k * draft_step_s(c, n, kv, 0.08)
        return (1 - a ** (k + 1)) / (1 - a) / t * base
    assert 1.1 < gain(1, 1) < 1.6
    assert 0.5 < gain(256, 2) < 0.85
    assert gain(256, 8) < gain(256, 2) < gain(16, 2) < gain(1, 2)
