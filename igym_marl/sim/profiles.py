"""Hardware, model and quantization profiles, and the fitted engine constants.

Every figure here is either a datasheet number (GPU peak FLOP/s, HBM bandwidth, memory),
a published model shape (layers, heads, vocabulary), or a constant fitted to measurements by
``scripts/calibrate_cost_model.py`` (see docs/fidelity.md for the fit and its error).

Nothing in this module is a lookup table of measured times: the cost model derives iteration
times from these physical quantities, so it carries over to GPUs and models it was not fitted on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GB = 1e9  # decimal gigabyte, as GPU datasheets use
KV_BYTES_PER_ELEMENT = 2  # the KV cache stays FP16/BF16 whatever the weight tier (vLLM default)


@dataclass(frozen=True)
class GpuSpec:
    name: str
    peak_flops: float  # dense BF16 FLOP/s (datasheet)
    hbm_bytes_per_s: float  # HBM bandwidth, bytes/s (datasheet)
    memory_gb: float  # HBM capacity, GB
    link_bytes_per_s: float  # NVLink bandwidth per GPU per direction, bytes/s (datasheet)
    usd_per_gpu_hour: float  # illustrative on-demand price, configurable per simulation


@dataclass(frozen=True)
class ModelSpec:
    name: str
    params: float  # total parameters
    layers: int
    d_model: int
    n_heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @property
    def embedding_params(self) -> float:
        """Input embedding plus (untied) LM head."""
        return 2.0 * self.vocab * self.d_model

    @property
    def linear_params(self) -> float:
        """Parameters of the transformer layers' matmuls (what every token multiplies through)."""
        return self.params - self.embedding_params

    @property
    def lm_head_params(self) -> float:
        return float(self.vocab * self.d_model)

    @property
    def kv_bytes_per_token(self) -> int:
        """2 (K and V) x layers x kv_heads x head_dim x 2 bytes."""
        return 2 * self.layers * self.kv_heads * self.head_dim * KV_BYTES_PER_ELEMENT

    @property
    def weights_gb_fp16(self) -> float:
        return self.params * 2 / GB


@dataclass(frozen=True)
class QuantTier:
    """A weight quantization tier.

    bytes_per_param: weight storage, including group scales (g128 -> +0.25 bit for 4-bit).
    compute_slowdown: multiplier on the compute-bound part of linear layers (dequantization
      work in weight-only kernels; W4A16 Marlin/AWQ kernels lose ground at large batch).
    quality: per-token answer-quality factor relative to FP16 (see docs/simulator.md).
    """

    name: str
    bytes_per_param: float
    compute_slowdown: float
    quality: float


GPUS: dict[str, GpuSpec] = {
    # NVIDIA A100 datasheet (SXM 80GB): 312 TFLOP/s BF16 dense, 2,039 GB/s, NVLink 600 GB/s bidir.
    "a100-80gb": GpuSpec("a100-80gb", 312e12, 2.039e12, 80.0, 300e9, 1.80),
    # NVIDIA H100 SXM datasheet: 989 TFLOP/s BF16 dense, 3.35 TB/s, NVLink 900 GB/s bidir.
    "h100-80gb": GpuSpec("h100-80gb", 989e12, 3.35e12, 80.0, 450e9, 3.00),
    # NVIDIA H200 SXM datasheet: same compute as H100, 4.8 TB/s, 141 GB.
    "h200": GpuSpec("h200", 989e12, 4.8e12, 141.0, 450e9, 3.80),
}

MODELS: dict[str, ModelSpec] = {
    # Llama 2 paper / HF config: 32 layers, 32 heads (MHA), d 4096, vocab 32,000.
    "llama-2-7b": ModelSpec("llama-2-7b", 6.74e9, 32, 4096, 32, 32, 128, 32000),
    # Llama 3 HF config: 32 layers, 32 query heads, 8 KV heads (GQA), vocab 128,256.
    "llama-3-8b": ModelSpec("llama-3-8b", 8.03e9, 32, 4096, 32, 8, 128, 128256),
    # Llama 2 70B HF config: 80 layers, 64 query heads, 8 KV heads, d 8192.
    "llama-2-70b": ModelSpec("llama-2-70b", 68.98e9, 80, 8192, 64, 8, 128, 32000),
}

QUANT_TIERS: dict[str, QuantTier] = {
    "FP16": QuantTier("FP16", 2.0, 1.00, 1.000),
    # W8A16 weight-only (8 bits + per-channel scales): near-lossless (LLM.int8(), SmoothQuant).
    "INT8": QuantTier("INT8", 1.0, 1.10, 0.995),
    # W4A16 g128 (AWQ/GPTQ + Marlin): 4.25 bits/param; a few percent lost on benchmarks.
    "INT4": QuantTier("INT4", 4.25 / 8, 1.30, 0.970),
}

TENSOR_PARALLEL = (1, 2, 4, 8)


@dataclass(frozen=True)
class EngineConstants:
    """Efficiencies and overheads fitted on A100 measurements (scripts/calibrate_cost_model.py).

    linear_mfu: fraction of peak FLOP/s reached by large matmuls.
    hbm_efficiency: fraction of peak HBM bandwidth reached when streaming weights / KV.
    knee_power: p of the smooth roofline max (t_c^p + t_m^p)^(1/p); 2 or 4 (computed by sqrt only).
    layer_overhead_s: fixed time per transformer layer (kernel launches of ~9 small ops).
    attn_mfu: fraction of peak reached by FlashAttention prefill (FA2 paper: 50-73 % forward).
    allreduce_step_s: latency of one ring step of a tensor-parallel all-reduce.
    iter_overhead_s: engine CPU time per iteration (scheduling, sampling launch); not fitted:
      the measurements only cover tp >= 2, so this is an assumption: a few ms per iteration
      on a small model (vLLM's Python-side scheduling and sampling).
    tp_worker_overhead_s: extra time per iteration when tp > 1 (driving one worker process per
      GPU; the measured engine used Ray workers).
    seq_overhead_s: engine CPU time per sequence in the batch (sampling, detokenization).
    """

    linear_mfu: float
    hbm_efficiency: float
    knee_power: int
    layer_overhead_s: float
    attn_mfu: float
    allreduce_step_s: float
    iter_overhead_s: float
    tp_worker_overhead_s: float
    seq_overhead_s: float


# Fitted by scripts/calibrate_cost_model.py on data/calibration (see docs/fidelity.md).
ENGINE = EngineConstants(
    linear_mfu=0.624,
    hbm_efficiency=0.889,
    knee_power=2,
    layer_overhead_s=55.1e-6,
    attn_mfu=0.3,
    allreduce_step_s=9.21e-6,
    iter_overhead_s=3e-3,
    tp_worker_overhead_s=8.87e-3,
    seq_overhead_s=0.269e-3,
)


def _choices(mapping) -> str:
    return ", ".join(repr(k) for k in mapping)


def get_gpu(name: str) -> GpuSpec:
    if name not in GPUS:
        raise ValueError(f"gpu={name!r} is unknown; allowed: {_choices(GPUS)}")
    return GPUS[name]


def get_model(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"model={name!r} is unknown; allowed: {_choices(MODELS)}")
    return MODELS[name]


def get_tier(name: str) -> QuantTier:
    if name not in QUANT_TIERS:
        raise ValueError(f"quantization_tier={name!r} is unknown; allowed: {_choices(QUANT_TIERS)}")
    return QUANT_TIERS[name]


def check_tp(tp) -> int:
    if isinstance(tp, bool) or not isinstance(tp, int) or tp not in TENSOR_PARALLEL:
        raise ValueError(f"tp={tp!r} is not allowed; allowed: {TENSOR_PARALLEL}")
    return tp


@dataclass(frozen=True)
class Replica:
    """One serving replica: a model on `tp` GPUs of one kind."""

    model: ModelSpec
    gpu: GpuSpec
    tp: int
    gpu_memory_utilization: float = 0.9  # vLLM default
    activation_reserve_gb: float = 2.0  # per GPU: peak activations + CUDA graphs (vLLM profiling)

    def weights_gb(self, tier: str) -> float:
        """Weight memory over all GPUs: quantized layers + FP16 embedding and LM head."""
        q = get_tier(tier)
        return (self.model.linear_params * q.bytes_per_param + self.model.embedding_params * 2) / GB

    def kv_pool_gb(self, tier: str) -> float:
        """KV memory left over all GPUs at kv_budget_fraction = 1 (vLLM's profiling rule)."""
        total = self.gpu.memory_gb * self.tp * self.gpu_memory_utilization
        return total - self.weights_gb(tier) - self.activation_reserve_gb * self.tp

    def block_bytes(self, block_tokens: int) -> int:
        return block_tokens * self.model.kv_bytes_per_token

    def kv_capacity_blocks(self, tier: str, kv_budget_fraction: float, block_tokens: int = 16) -> int:
        return int(math.floor(kv_budget_fraction * self.kv_pool_gb(tier) * GB / self.block_bytes(block_tokens)))


def make_replica(model: str, gpu: str, tp: int, gpu_memory_utilization: float = 0.9,
                 activation_reserve_gb: float = 2.0) -> Replica:
    """Build a replica, refusing combinations whose weights do not fit.

    >>> make_replica("llama-2-70b", "a100-80gb", 1)
    Traceback (most recent call last):
    ...
    ValueError: model='llama-2-70b' on 1 x gpu='a100-80gb' cannot hold its weights: ...
    """
    m, g, tp = get_model(model), get_gpu(gpu), check_tp(tp)
    if not (0.1 <= gpu_memory_utilization <= 1.0):
        raise ValueError(f"gpu_memory_utilization={gpu_memory_utilization!r} out of range; allowed: 0.1..1.0")
    if activation_reserve_gb < 0:
        raise ValueError(f"activation_reserve_gb={activation_reserve_gb!r} must be >= 0")
    r = Replica(m, g, tp, gpu_memory_utilization, activation_reserve_gb)
    # The replica must hold FP16 weights plus room for at least one 4,096-token sequence of KV.
    min_kv_gb = 4096 * m.kv_bytes_per_token / GB
    if r.kv_pool_gb("FP16") < min_kv_gb:
        usable = g.memory_gb * tp * gpu_memory_utilization - activation_reserve_gb * tp
        raise ValueError(
            f"model={model!r} on {tp} x gpu={gpu!r} cannot hold its weights: FP16 weights need "
            f"{r.weights_gb('FP16'):.1f} GB plus {min_kv_gb:.1f} GB of KV cache, but only {usable:.1f} GB "
            f"are usable ({tp} x {g.memory_gb:g} GB x utilization {gpu_memory_utilization}); use a larger tp"
        )
    return r
