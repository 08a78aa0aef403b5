"""Hardware, model and quantization profiles, per-GPU efficiencies, all-reduce fits and engine profiles.

Every figure here is either a datasheet number (GPU peak FLOP/s, HBM bandwidth, memory),
a published model shape (layers, heads, vocabulary), or a constant fitted to measurements by
``scripts/calibrate_cost_model.py`` (see docs/fidelity.md for the fit and its error).

Nothing in this module is a lookup table of measured times: the cost model derives iteration
times from these physical quantities, so it carries over to GPUs and models it was not fitted on.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

GB = 1e9  # decimal gigabyte, as GPU datasheets use
KV_BYTES_PER_ELEMENT = 2  # the KV cache stays FP16/BF16 whatever the weight tier (vLLM default)


@dataclass(frozen=True)
class GpuSpec:
    name: str
    peak_flops: float  # dense BF16 FLOP/s (datasheet)
    hbm_bytes_per_s: float  # HBM bandwidth, bytes/s (datasheet)
    memory_gb: float  # device memory as the driver reports it (nvidia-smi's total), GB (1e9 bytes)
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
    max_model_len: int  # the context it was trained for (vLLM's default max_model_len): prompt + output

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


MIB = 1 << 20
GPUS: dict[str, GpuSpec] = {
    # NVIDIA A100 datasheet (SXM 80GB): 312 TFLOP/s BF16 dense, 2,039 GB/s. (Tensor-parallel
    # communication comes from measured all-reduce curves, ALL_REDUCE below, not link datasheets.)
    # Memory: the "80 GB" are 81,920 MiB as nvidia-smi reports them, 85.9 GB: what vLLM's
    # gpu_memory_utilization is a share of.
    "a100-80gb": GpuSpec("a100-80gb", 312e12, 2.039e12, 81_920 * MIB / GB, 1.80),
    # NVIDIA H100 SXM datasheet: 989 TFLOP/s BF16 dense, 3.35 TB/s; 81,559 MiB reported (85.5 GB).
    "h100-80gb": GpuSpec("h100-80gb", 989e12, 3.35e12, 81_559 * MIB / GB, 3.00),
    # NVIDIA H200 SXM datasheet: same compute as H100, 4.8 TB/s, "141 GB": 143,771 MiB reported (150.8 GB).
    "h200": GpuSpec("h200", 989e12, 4.8e12, 143_771 * MIB / GB, 3.80),
}
GPU_ALIASES = {"a100-80gb-sxm": "a100-80gb", "h100-80gb-sxm": "h100-80gb", "h200-sxm": "h200"}

MODELS: dict[str, ModelSpec] = {
    # Llama 2 paper / HF config: 32 layers, 32 heads (MHA), d 4096, vocab 32,000, 4k context.
    "llama-2-7b": ModelSpec("llama-2-7b", 6.74e9, 32, 4096, 32, 32, 128, 32000, 4096),
    # Llama 2 13B HF config: 40 layers, 40 heads (MHA), d 5120.
    "llama-2-13b": ModelSpec("llama-2-13b", 13.02e9, 40, 5120, 40, 40, 128, 32000, 4096),
    # Llama 3 HF config: 32 layers, 32 query heads, 8 KV heads (GQA), vocab 128,256, 8k context.
    "llama-3-8b": ModelSpec("llama-3-8b", 8.03e9, 32, 4096, 32, 8, 128, 128256, 8192),
    # Llama 3.1 8B: Llama 3's shapes with a 128k context (RoPE scaling).
    "llama-3.1-8b": ModelSpec("llama-3.1-8b", 8.03e9, 32, 4096, 32, 8, 128, 128256, 131072),
    # Llama 2 70B HF config: 80 layers, 64 query heads, 8 KV heads, d 8192.
    "llama-2-70b": ModelSpec("llama-2-70b", 68.98e9, 80, 8192, 64, 8, 128, 32000, 4096),
    # Llama 3.1 70B: 80 layers, 64 query heads, 8 KV heads, d 8192, vocab 128,256, 128k context.
    "llama-3.1-70b": ModelSpec("llama-3.1-70b", 70.55e9, 80, 8192, 64, 8, 128, 128256, 131072),
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
class GpuEfficiency:
    """How close one GPU family's kernels come to its datasheet, fitted per GPU.

    linear_mfu: fraction of peak FLOP/s reached by large matmuls.
    hbm_efficiency: fraction of peak HBM bandwidth reached when streaming weights / KV.
    knee_power: p of the smooth roofline max (t_c^p + t_m^p)^(1/p); 2 or 4 (computed by sqrt only).
    layer_overhead_s: fixed time per transformer layer (kernel launches of ~9 small ops).
    attn_mfu: fraction of peak reached by prefill attention (the engine's attention kernel).
    basis: what the values were fitted on, or where they were carried over from.
    """

    linear_mfu: float
    hbm_efficiency: float
    knee_power: int
    layer_overhead_s: float
    attn_mfu: float
    basis: str

    def __post_init__(self):
        if self.knee_power not in (2, 4, 8):
            raise ValueError(f"GpuEfficiency knee_power={self.knee_power!r} is not allowed; allowed: 2, 4, 8")
        for f in ("linear_mfu", "hbm_efficiency", "attn_mfu"):
            v = getattr(self, f)
            if not (0.0 < v <= 1.0):
                raise ValueError(f"GpuEfficiency {f}={v!r} must be a fraction of peak in (0, 1]")
        if not (0.0 <= self.layer_overhead_s < 1e-2):
            raise ValueError(f"GpuEfficiency layer_overhead_s={self.layer_overhead_s!r} must be in [0, 0.01) s")


@dataclass(frozen=True)
class AllReduceFit:
    """Time of one all-reduce of a message inside one node: latency + bytes / bandwidth.

    Fitted per GPU family and worker count on measured NCCL all-reduce curves (Vidur's DGX
    profiles, data/calibration/*_dgx_all_reduce.csv) by scripts/calibrate_cost_model.py.
    bytes_per_s is the message bytes moved per second beyond the latency (the "algorithm
    bandwidth"), not a link figure.
    """

    latency_s: float
    bytes_per_s: float

    def seconds(self, message_bytes: float) -> float:
        return self.latency_s + message_bytes / self.bytes_per_s


@dataclass(frozen=True)
class EngineProfile:
    """The serving engine's CPU-side costs, kept apart from GPU work.

    iter_overhead_s: per iteration (scheduling, sampling launch, Python bookkeeping).
    tp_overhead_s: per iteration, per doubling of the tensor-parallel workers: driving tp
      worker processes costs log2(tp) times this (nothing at tp = 1). On the measured engine a
      log2 law fits better than one cost per extra worker (docs/fidelity.md).
    seq_overhead_s: per sequence in the batch (sampling, detokenization, block tables).
    description: which engine, on which host, and how the figures were obtained.
    api_overhead_s: client-visible latency outside the engine loop (HTTP, tokenization, handing
      the request to the engine and each result back): added to every request's first token and
      completion as its client sees them; it takes no engine time.
    custom_all_reduce_s: the engine's own all-reduce for small messages (vLLM's custom all-reduce,
      one kernel over NVLink peer memory, for messages up to CUSTOM_ALL_REDUCE_MAX_BYTES): the
      latency of one, replacing NCCL's measured latency; bytes still move at NCCL's fitted
      bandwidth. None: every all-reduce is NCCL's.
    layer_overhead_scale: the share of the GPU's fixed time per layer (GpuEfficiency.layer_overhead_s,
      measured on operators run one by one) that remains when the engine fuses a layer's small
      operators and replays the iteration as CUDA graphs (vLLM V1: torch.compile and piecewise CUDA
      graphs). 1.0: operators run as profiled.
    """

    name: str
    iter_overhead_s: float
    tp_overhead_s: float
    seq_overhead_s: float
    description: str
    api_overhead_s: float = 0.0
    custom_all_reduce_s: float | None = None
    layer_overhead_scale: float = 1.0

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"EngineProfile name={self.name!r} must be a non-empty string")
        for f in ("iter_overhead_s", "tp_overhead_s", "seq_overhead_s", "api_overhead_s"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 <= v <= 1.0):
                raise ValueError(f"EngineProfile {f}={v!r} must be a number of seconds in [0, 1]")
        v = self.layer_overhead_scale
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 <= v <= 1.0):
            raise ValueError(f"EngineProfile layer_overhead_scale={v!r} must be a share in [0, 1]")
        v = self.custom_all_reduce_s
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 <= v <= 1e-3)):
            raise ValueError(f"EngineProfile custom_all_reduce_s={v!r} must be None or seconds in [0, 0.001]")

    def iteration_overhead_s(self, tp: int) -> float:
        """CPU time of one iteration on `tp` GPUs, before the per-sequence part."""
        return self.iter_overhead_s + math.log2(tp) * self.tp_overhead_s


# Fitted by scripts/calibrate_cost_model.py on data/calibration (see docs/fidelity.md).
# FlashAttention-2's forward pass reaches up to 73 % of peak on A100 (Dao 2023) but only 35 % on
# H100 (Shah et al. 2024, FlashAttention-3): H100's attn_mfu is A100's scaled by 35 / 73.
_H100_EFFICIENCY = GpuEfficiency(
    linear_mfu=0.609, hbm_efficiency=0.909, knee_power=2, layer_overhead_s=41.8e-6, attn_mfu=0.3 * 35 / 73,
    basis="fitted on Vidur's Llama-2-70B linear-operator profile on H100 (tp 1/2/4/8, octaves weighted "
          "equally); attn_mfu not measured: A100's scaled by FlashAttention-2's H100/A100 utilisation")
GPU_EFFICIENCY: dict[str, GpuEfficiency] = {
    "a100-80gb": GpuEfficiency(
        linear_mfu=0.624, hbm_efficiency=0.889, knee_power=2, layer_overhead_s=55.1e-6, attn_mfu=0.3,
        basis="fitted on Vidur's Llama-2-7B and Llama-3-8B linear-operator profiles on A100 (tp 1/2/4/8); "
              "attn_mfu held (docs/fidelity.md)"),
    "h100-80gb": _H100_EFFICIENCY,
    "h200": dataclasses.replace(
        _H100_EFFICIENCY, basis="H100's efficiencies: nothing measured on H200; only its datasheet differs"),
}

# Fitted by scripts/calibrate_cost_model.py on Vidur's DGX NCCL all-reduce profiles.
ALL_REDUCE: dict[str, dict[int, AllReduceFit]] = {
    "a100-80gb": {2: AllReduceFit(44.2e-6, 341e9), 4: AllReduceFit(37.9e-6, 213e9), 8: AllReduceFit(43.3e-6, 173e9)},
    "h100-80gb": {2: AllReduceFit(26.4e-6, 655e9), 4: AllReduceFit(33.0e-6, 518e9), 8: AllReduceFit(29.7e-6, 390e9)},
}
# H200 has H100's NVLink 4 and NVSwitch: H100's curves, not measured on H200.
ALL_REDUCE["h200"] = ALL_REDUCE["h100-80gb"]

# vLLM's custom all-reduce handles messages up to 8 MiB (CustomAllreduce max_size); larger go to NCCL.
CUSTOM_ALL_REDUCE_MAX_BYTES = 8 * 1024 * 1024

ENGINES: dict[str, EngineProfile] = {
    "vllm-0.2": EngineProfile(
        "vllm-0.2", iter_overhead_s=3e-3, tp_overhead_s=6.82e-3, seq_overhead_s=0.269e-3,
        description="the 2023 engine: a vLLM of the v0.1/0.2 era driving one Ray worker process per GPU, on the "
                    "DGX-A100 hosts of SplitwiseSim's measurements; tp_overhead_s and seq_overhead_s fitted on "
                    "them, iter_overhead_s assumed (docs/fidelity.md)"),
    "vllm-0.15": EngineProfile(
        "vllm-0.15", iter_overhead_s=1.367e-3, tp_overhead_s=0.0, seq_overhead_s=0.0, api_overhead_s=5.92e-3,
        custom_all_reduce_s=5e-6, layer_overhead_scale=0.0,
        description="vLLM 0.15.1's V1 engine (asynchronous scheduling, CUDA graphs, fused operators, custom "
                    "all-reduce) on H100 hosts: iter_overhead_s, api_overhead_s and layer_overhead_scale fitted to "
                    "the measured serving runs in data/calibration/h100_vllm_v1_serving_runs.csv by "
                    "scripts/replay_serving_runs.py --fit (seq_overhead_s fitted to 0; tp_overhead_s held at 0: "
                    "one tp degree cannot tell it from the all-reduce); custom_all_reduce_s held at 5 us, the "
                    "latency of vLLM's kernel for small messages on H100 (docs/fidelity.md)"),
    "ideal": EngineProfile(
        "ideal", iter_overhead_s=0.0, tp_overhead_s=0.0, seq_overhead_s=0.0,
        description="no CPU-side cost at all: GPU work only, a lower bound on iteration time"),
}
DEFAULT_ENGINE = "vllm-0.15"


def _choices(mapping) -> str:
    return ", ".join(repr(k) for k in mapping)


def get_gpu(name: str) -> GpuSpec:
    name = GPU_ALIASES.get(name, name)
    if name not in GPUS:
        raise ValueError(f"gpu={name!r} is unknown; allowed: {_choices(GPUS)} (or {_choices(GPU_ALIASES)})")
    return GPUS[name]


def get_model(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"model={name!r} is unknown; allowed: {_choices(MODELS)}")
    return MODELS[name]


def get_engine(engine: "str | EngineProfile") -> EngineProfile:
    """An engine profile by name, or a user's own EngineProfile as is."""
    if isinstance(engine, EngineProfile):
        return engine
    if not isinstance(engine, str) or engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is unknown; allowed: {_choices(ENGINES)} or an EngineProfile")
    return ENGINES[engine]


def get_tier(name: str) -> QuantTier:
    if name not in QUANT_TIERS:
        raise ValueError(f"quantization_tier={name!r} is unknown; allowed: {_choices(QUANT_TIERS)}")
    return QUANT_TIERS[name]


def check_tp(tp) -> int:
    if isinstance(tp, bool) or not isinstance(tp, int) or tp not in TENSOR_PARALLEL:
        raise ValueError(f"tp={tp!r} is not allowed; allowed: {TENSOR_PARALLEL}")
    return tp


# Per GPU, what vLLM's start-up profiling keeps outside the weights and the KV pool (peak activations,
# CUDA graphs, the CUDA context, communication buffers): fitted so that the pools vLLM 0.15.1 logged
# on H100 come out right (data/calibration/h100_vllm_v1_serving_runs.csv: 7,462 blocks for
# Llama-2-7B at tp 1, 31,356 for Llama-2-70B at tp 4; 0.91 and 1.38 GB per GPU; their mean puts both
# pools within 1 %).
ACTIVATION_RESERVE_GB = 1.14


@dataclass(frozen=True)
class Replica:
    """One serving replica: a model on `tp` GPUs of one kind."""

    model: ModelSpec
    gpu: GpuSpec
    tp: int
    gpu_memory_utilization: float = 0.9  # vLLM default
    activation_reserve_gb: float = ACTIVATION_RESERVE_GB  # per GPU: what vLLM's profiling keeps back

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
                 activation_reserve_gb: float = ACTIVATION_RESERVE_GB) -> Replica:
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
