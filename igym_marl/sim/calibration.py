"""Measured profiles to calibrate and validate the cost model against.

The measurements ship with the repository in ``data/calibration/`` (sources, licences and
checksums in data/README.md). Nothing here falls back to made-up data: a missing file raises
FileNotFoundError naming it.

Three kinds of measurement:

* per-layer linear-operator times (Vidur profiles) of Llama-2-7B and Llama-3-8B on A100, and of
  Llama-2-70B on A100 and on H100, at tp 1/2/4/8: compared with the cost model's linear-layer
  term, GPU by GPU;
* NCCL all-reduce times inside a DGX-A100 and a DGX-H100 against message size and worker count
  (Vidur profiles): what the tensor-parallel communication term is fitted on;
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
from .profiles import (AllReduceFit, EngineProfile, GpuEfficiency, Replica, get_gpu,
                       get_model)

LINEAR_OPS = ("input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj",
              "post_attention_layernorm", "mlp_up_proj", "mlp_act", "mlp_down_proj", "add")
# (gpu, model) -> Vidur per-operator profile
LINEAR_FILES = {
    ("a100-80gb", "llama-2-7b"): "a100_llama-2-7b_linear_ops.csv",
    ("a100-80gb", "llama-3-8b"): "a100_llama-3-8b_linear_ops.csv",
    ("a100-80gb", "llama-2-70b"): "a100_llama-2-70b_linear_ops.csv",
    ("h100-80gb", "llama-2-70b"): "h100_llama-2-70b_linear_ops.csv",
}
ALL_REDUCE_FILES = {"a100-80gb": "a100_dgx_all_reduce.csv", "h100-80gb": "h100_dgx_all_reduce.csv"}
E2E_FILE = "a100_llama-2-70b_vllm_end_to_end.csv"
E2E_GPU = "a100-80gb"


@dataclass(frozen=True)
class Point:
    """One measured point and what the model must reproduce."""

    source: str  # "linear", "e2e-prefill" or "e2e-decode"
    gpu: str
    model: str
    tp: int
    tokens: int  # linear: tokens; e2e: prompt_size
    batch: int  # e2e batch size (1 for linear)
    context: int  # decode context (e2e-decode), else 0
    measured_ms: float

    @property
    def phase(self) -> str:
        return self.source.removeprefix("e2e-")


@dataclass(frozen=True)
class AllReducePoint:
    """One measured intra-node all-reduce: median time of `message_bytes` over `workers` GPUs."""

    gpu: str
    workers: int
    message_bytes: float
    measured_s: float


def _open(data_dir: Path, fname: str):
    path = Path(data_dir) / "calibration" / fname
    if not path.is_file():
        raise FileNotFoundError(f"calibration file {path} is missing (see data/README.md)")
    return open(path, newline="")


def load_linear_points(data_dir: Path = DATA_DIR, gpu: str | None = None) -> list[Point]:
    """Each profile row as one iteration's linear-layer time: per-layer medians x layers."""
    pts = []
    for (g, model), fname in LINEAR_FILES.items():
        if gpu is not None and g != gpu:
            continue
        layers = get_model(model).layers
        with _open(data_dir, fname) as f:
            for r in csv.DictReader(f):
                per_layer = sum(float(r[f"time_stats.{op}.median"]) for op in LINEAR_OPS)
                pts.append(Point("linear", g, model, int(r["num_tensor_parallel_workers"]), int(r["num_tokens"]), 1,
                                 0, per_layer * layers))
    return pts


def load_all_reduce_points(data_dir: Path = DATA_DIR) -> list[AllReducePoint]:
    """Intra-node rows only (devices_per_node == num_workers, as tensor parallelism runs), the
    median over ranks of each (workers, size); sizes are FP16 elements."""
    pts = []
    for gpu, fname in ALL_REDUCE_FILES.items():
        groups: dict[tuple[int, int], list[float]] = defaultdict(list)
        with _open(data_dir, fname) as f:
            for r in csv.DictReader(f):
                w = int(r["num_workers"])
                if int(r["devices_per_node"]) != w:
                    continue
                groups[(w, int(r["size"]))].append(float(r["time_stats.all_reduce.median"]))
        for (w, size), ms in sorted(groups.items()):
            pts.append(AllReducePoint(gpu, w, 2.0 * size, 1e-3 * float(np.median(ms))))
    return pts


# Model names as SplitwiseSim's perf_model.csv spells them.
E2E_MODEL_NAMES = {"llama2-70b": "llama-2-70b", "llama2-7b": "llama-2-7b", "llama3-8b": "llama-3-8b"}
E2E_COLUMNS = ("model", "hardware", "prompt_size", "batch_size", "token_size", "prompt_time", "token_time",
               "tensor_parallel")


def load_e2e_csv(path: Path | str) -> list[Point]:
    """End-to-end iteration times in SplitwiseSim's perf_model.csv layout, from any file.

    Columns used: model, hardware (a GPU name of profiles.GPUS), tensor_parallel, prompt_size,
    batch_size, token_size, prompt_time and token_time (ms). Returns, per (hardware, model, tp,
    prompt, batch, output) point, the median over its repeated runs: one prefill of `batch_size`
    prompts and one decode step at `batch_size` sequences (mean context prompt + output / 2).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"end-to-end measurements {path} are missing")
    groups: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in E2E_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: columns {missing} are missing; needed: {list(E2E_COLUMNS)}")
        for line, r in enumerate(reader, start=2):
            model = E2E_MODEL_NAMES.get(r["model"], r["model"])
            try:
                get_model(model)
                get_gpu(r["hardware"])
            except ValueError as e:
                raise ValueError(f"{path}, line {line}: {e}") from None
            key = (r["hardware"], model, int(r["tensor_parallel"]), int(r["prompt_size"]), int(r["batch_size"]),
                   int(r["token_size"]))
            groups[key].append((float(r["prompt_time"]), float(r["token_time"])))
    pts = []
    for (gpu, model, tp, prompt, batch, out), runs in sorted(groups.items()):
        arr = np.array(runs)
        pts.append(Point("e2e-prefill", gpu, model, tp, prompt, batch, 0, float(np.median(arr[:, 0]))))
        # token_time averages the decode steps of `out` tokens: mean context = prompt + out / 2.
        pts.append(Point("e2e-decode", gpu, model, tp, prompt, batch, prompt + out // 2, float(np.median(arr[:, 1]))))
    return pts


def load_e2e_points(data_dir: Path = DATA_DIR) -> list[Point]:
    """SplitwiseSim's end-to-end vLLM times of Llama-2-70B on A100 (tp 2/4/8), shipped in data/."""
    return load_e2e_csv(Path(data_dir) / "calibration" / E2E_FILE)


# The engine that produced the end-to-end points: SplitwiseSim's 2023 vLLM.
E2E_ENGINE = "vllm-0.2"


def _constants(p: Point, engine, efficiency, all_reduce) -> np.ndarray:
    # Built without make_replica's memory check: the operator profiles run 70B layers on one GPU.
    # Operator profiles time GPU work only, operators run one by one: no engine is involved.
    replica = Replica(get_model(p.model), get_gpu(p.gpu), p.tp)
    return cm.cost_constants(replica, "FP16", "ideal" if p.source == "linear" else engine, efficiency, all_reduce)


def _predict(c: np.ndarray, p: Point) -> float:
    if p.source == "linear":
        return 1e3 * cm.linear_layers_s(c, float(p.tokens))
    if p.source == "e2e-prefill":
        n, s = float(p.batch), float(p.tokens)
        return 1e3 * cm.iteration_s(c, n * s, n, n * cm.prefill_pairs(s, 0.0), 0.0, 0.0, n)
    n, ctx = float(p.batch), float(p.context)
    return 1e3 * cm.iteration_s(c, n, n, 0.0, n * ctx, n * ctx, n)


def predicted_ms(p: Point, engine: "str | EngineProfile" = E2E_ENGINE,
                 efficiency: GpuEfficiency | None = None, all_reduce: AllReduceFit | None = None) -> float:
    """The cost model's time for what point `p` measured (the GPU's own fits unless overridden)."""
    return _predict(_constants(p, engine, efficiency, all_reduce), p)


def errors(points: list[Point], engine: "str | EngineProfile" = E2E_ENGINE,
           efficiency: GpuEfficiency | None = None, all_reduce: AllReduceFit | None = None) -> np.ndarray:
    """Relative errors (predicted - measured) / measured: operator points on the GPU physics alone,
    end-to-end points with `engine` (default: the 2023 vLLM that produced the shipped ones)."""
    cache: dict[tuple, np.ndarray] = {}
    out = np.empty(len(points))
    for i, p in enumerate(points):
        key = (p.gpu, p.model, p.tp)
        if key not in cache:
            cache[key] = _constants(p, engine, efficiency, all_reduce)
        out[i] = (_predict(cache[key], p) - p.measured_ms) / p.measured_ms
    return out


def all_reduce_errors(points: list[AllReducePoint], fits: dict[str, dict[int, AllReduceFit]] | None = None) -> np.ndarray:
    """Relative errors of the all-reduce fits (default: profiles.ALL_REDUCE) on measured points."""
    from .profiles import ALL_REDUCE
    fits = fits if fits is not None else ALL_REDUCE
    return np.array([fits[p.gpu][p.workers].seconds(p.message_bytes) / p.measured_s - 1.0 for p in points])


def is_outlier(p: Point) -> bool:
    """The tp=2, batch-64 prefill point: 794 ms for 32,768 tokens, 8x below its neighbours' trend
    (batch 32 took 6,633 ms); it cannot be a completed prefill and is excluded from fit and score."""
    return p.source == "e2e-prefill" and p.tp == 2 and p.batch == 64


def is_batched_prefill(p: Point) -> bool:
    """A prefill of several prompts at once: the measured engine's per-prompt costs there are not
    in the model (docs/fidelity.md), so these points are reported but not fitted on."""
    return p.source == "e2e-prefill" and p.batch > 1


# ---------------------------------------------------------------------------------- fitting
# The fits below produce the constants in profiles.py (scripts/calibrate_cost_model.py prints
# them). They need scipy, which the `test` extra installs.

def _least_squares():
    try:
        from scipy.optimize import least_squares
    except ImportError as e:  # pragma: no cover - scipy comes with the test extra
        raise ImportError("fitting the cost model needs scipy: pip install -e '.[test]'") from e
    return least_squares


def octave_weights(points: list[Point]) -> np.ndarray:
    """Weights that give every octave of token counts (per GPU, model and tp) the same total say.

    Vidur's profiles sample token counts on a linear grid, so three quarters of their rows lie
    between 1,024 and 4,096 tokens; serving spends most iterations far below that."""
    def key(p):
        return p.gpu, p.model, p.tp, int(np.log2(max(p.tokens, 1)))
    counts: dict[tuple, int] = defaultdict(int)
    for p in points:
        counts[key(p)] += 1
    return np.array([1.0 / np.sqrt(counts[key(p)]) for p in points])


def fit_gpu_efficiency(points: list[Point], start: GpuEfficiency, basis: str,
                       weighted: bool = False, knees: tuple[int, ...] = (2, 4, 8)) -> GpuEfficiency:
    """Fit linear_mfu, hbm_efficiency, layer_overhead_s and the knee power (among `knees`) on one
    GPU's linear-operator points, minimising squared log-ratio errors; attn_mfu is kept."""
    import dataclasses
    least_squares = _least_squares()
    if len({p.gpu for p in points}) != 1 or any(p.source != "linear" for p in points):
        raise ValueError("fit_gpu_efficiency needs linear-operator points of a single GPU")
    w = octave_weights(points) if weighted else np.ones(len(points))
    best = None
    for knee in knees:
        def resid(x, knee=knee):
            eff = dataclasses.replace(start, linear_mfu=x[0], hbm_efficiency=x[1], layer_overhead_s=x[2] * 1e-6,
                                      knee_power=knee)
            return w * np.log1p(errors(points, efficiency=eff))
        sol = least_squares(resid, x0=[0.6, 0.8, 40.0], bounds=([0.1, 0.1, 0.0], [1.0, 1.0, 300.0]))
        if best is None or sol.cost < best[0].cost:
            best = (sol, knee)
    sol, knee = best
    return GpuEfficiency(linear_mfu=float(sol.x[0]), hbm_efficiency=float(sol.x[1]), knee_power=knee,
                         layer_overhead_s=float(sol.x[2]) * 1e-6, attn_mfu=start.attn_mfu, basis=basis)


def fit_all_reduce(points: list[AllReducePoint]) -> dict[str, dict[int, AllReduceFit]]:
    """latency + bytes / bandwidth per GPU family and worker count, on squared log-ratio errors."""
    least_squares = _least_squares()
    out: dict[str, dict[int, AllReduceFit]] = defaultdict(dict)
    for gpu, w in sorted({(p.gpu, p.workers) for p in points}):
        sel = [p for p in points if p.gpu == gpu and p.workers == w]
        b = np.array([p.message_bytes for p in sel])
        t = np.array([p.measured_s for p in sel])
        # unknowns in microseconds and seconds per 100 GB, so both are of order one
        sol = least_squares(lambda x: np.log((x[0] * 1e-6 + x[1] * b * 1e-11) / t), x0=[30.0, 0.3],
                            bounds=([0.0, 1e-4], [1e4, 1e3]))
        out[gpu][w] = AllReduceFit(latency_s=float(sol.x[0]) * 1e-6, bytes_per_s=1e11 / float(sol.x[1]))
    return dict(out)


ENGINE_FIELDS = ("iter_overhead_s", "tp_overhead_s", "seq_overhead_s")


def fit_engine(points: list[Point], start: EngineProfile, fields=("tp_overhead_s",),
               all_reduce: dict[str, dict[int, AllReduceFit]] | None = None,
               efficiency: dict[str, GpuEfficiency] | None = None, name: str | None = None,
               description: str | None = None) -> EngineProfile:
    """Fit an engine profile's CPU-side overheads on end-to-end points, GPU physics held.

    `fields` names the overheads to fit (a subset of ENGINE_FIELDS); the others keep `start`'s
    values. Points at tp = 1 cannot separate tp_overhead_s, nor points at one tp separate it
    from iter_overhead_s: fitting a field the points cannot determine raises ValueError.
    """
    import dataclasses
    least_squares = _least_squares()
    fields = tuple(fields)
    bad = [f for f in fields if f not in ENGINE_FIELDS]
    if bad or not fields:
        raise ValueError(f"fields={fields!r}: each must be one of {ENGINE_FIELDS}, at least one")
    if not points or any(p.source == "linear" for p in points):
        raise ValueError("fit_engine needs end-to-end points (load_e2e_csv), not linear-operator points")
    tps = {p.tp for p in points}
    if "tp_overhead_s" in fields and tps == {1}:
        raise ValueError("tp_overhead_s cannot be fitted on tp = 1 points only")
    if {"tp_overhead_s", "iter_overhead_s"} <= set(fields) and len(tps) < 2:
        raise ValueError(f"iter_overhead_s and tp_overhead_s need points at two or more tp degrees, got tp {sorted(tps)}")
    if "seq_overhead_s" in fields and len({p.batch for p in points}) < 2:
        raise ValueError("seq_overhead_s needs points at two or more batch sizes")

    def profile(x):
        return dataclasses.replace(start, **{f: float(v) * 1e-3 for f, v in zip(fields, x)})

    def resid(x):
        eng = profile(x)
        return np.log1p(np.concatenate([
            errors([p], eng, efficiency[p.gpu] if efficiency is not None else None,
                   all_reduce[p.gpu][p.tp] if all_reduce is not None and p.tp > 1 else None)
            for p in points]))
    x0 = [max(getattr(start, f) * 1e3, 0.1) for f in fields]
    sol = least_squares(resid, x0=x0, bounds=([0.0] * len(fields), [1000.0] * len(fields)))
    out = profile(sol.x)
    return dataclasses.replace(out, name=name or out.name, description=description or out.description)
