"""Measured profiles to calibrate and validate the cost model against.

The measurements ship with the repository in ``data/calibration/`` (sources, licences and
checksums in data/README.md). Nothing here falls back to made-up data: a missing file raises
FileNotFoundError naming it.

Two kinds of measurement:

* per-layer linear-operator times of Llama-2-7B and Llama-3-8B on A100 at tp 1/2/4/8
  (Vidur profiles): compared with the cost model's linear-layer term;
* end-to-end vLLM iteration times of Llama-2-70B on A100 at tp 2/4/8 (SplitwiseSim): prefill
  of ``batch_size`` prompts of ``prompt_size`` tokens, and one decode step at ``batch_size``
  sequences, compared with the whole iteration model.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import cost_model as cm
from ..paths import DATA_DIR
from .profiles import ENGINE, EngineConstants, make_replica

LINEAR_OPS = ("input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj",
              "post_attention_layernorm", "mlp_up_proj", "mlp_act", "mlp_down_proj", "add")
LINEAR_FILES = {"llama-2-7b": "a100_llama-2-7b_linear_ops.csv", "llama-3-8b": "a100_llama-3-8b_linear_ops.csv"}
E2E_FILE = "a100_llama-2-70b_vllm_end_to_end.csv"


@dataclass(frozen=True)
class Point:
    """One measured point and what the model must reproduce."""

    source: str  # "linear" or "e2e-prefill" / "e2e-decode"
    model: str
    tp: int
    tokens: int  # linear: tokens; e2e: prompt_size
    batch: int  # e2e batch size (1 for linear)
    context: int  # decode context (e2e-decode), else 0
    measured_ms: float


def load_linear_points(data_dir: Path = DATA_DIR) -> list[Point]:
    pts = []
    for model, fname in LINEAR_FILES.items():
        path = data_dir / "calibration" / fname
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            layers = 32
            for r in reader:
                per_layer = sum(float(r[f"time_stats.{op}.median"]) for op in LINEAR_OPS)
                pts.append(Point("linear", model, int(r["num_tensor_parallel_workers"]), int(r["num_tokens"]), 1, 0,
                                 per_layer * layers))
    return pts


def load_e2e_points(data_dir: Path = DATA_DIR) -> list[Point]:
    """Median over the repeated runs of each (tp, prompt, batch, output) point."""
    path = data_dir / "calibration" / E2E_FILE
    groups: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            key = (int(r["tensor_parallel"]), int(r["prompt_size"]), int(r["batch_size"]), int(r["token_size"]))
            groups[key].append((float(r["prompt_time"]), float(r["token_time"])))
    pts = []
    for (tp, prompt, batch, out), runs in sorted(groups.items()):
        arr = np.array(runs)
        pts.append(Point("e2e-prefill", "llama-2-70b", tp, prompt, batch, 0, float(np.median(arr[:, 0]))))
        # token_time averages the decode steps of `out` tokens: mean context = prompt + out / 2.
        pts.append(Point("e2e-decode", "llama-2-70b", tp, prompt, batch, prompt + out // 2,
                         float(np.median(arr[:, 1]))))
    return pts


def predicted_ms(p: Point, engine: EngineConstants = ENGINE) -> float:
    c = cm.cost_constants(make_replica(p.model, "a100-80gb", p.tp), "FP16", engine)
    if p.source == "linear":
        return 1e3 * cm.linear_layers_s(c, float(p.tokens))
    if p.source == "e2e-prefill":
        n, s = float(p.batch), float(p.tokens)
        return 1e3 * cm.iteration_s(c, n * s, n, n * cm.prefill_pairs(s, 0.0), 0.0, 0.0, n)
    n, ctx = float(p.batch), float(p.context)
    return 1e3 * cm.iteration_s(c, n, n, 0.0, n * ctx, n * ctx, n)


def errors(points: list[Point], engine: EngineConstants = ENGINE) -> np.ndarray:
    """Relative errors (predicted - measured) / measured."""
    return np.array([(predicted_ms(p, engine) - p.measured_ms) / p.measured_ms for p in points])


def is_outlier(p: Point) -> bool:
    """The tp=2, batch-64 prefill point: 794 ms for 32,768 tokens, 8x below its neighbours' trend
    (batch 32 took 6,633 ms); it cannot be a completed prefill and is excluded from fit and score."""
    return p.source == "e2e-prefill" and p.tp == 2 and p.batch == 64
