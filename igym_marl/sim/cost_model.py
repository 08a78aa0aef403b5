"""The iteration cost model: how long one forward pass of a vLLM-class engine takes.

An iteration's time is the sum of

* **linear layers**: a smooth roofline of FLOPs (2 x linear params x tokens / tp at
  ``linear_mfu`` of peak) against weight streaming (weight bytes / tp at ``hbm_efficiency`` of
  peak bandwidth), ``(t_compute^p + t_memory^p)^(1/p)``, plus a fixed time per layer;
* **LM head** for the sampled positions, with the same roofline (kept in FP16);
* **attention**: prefill as causal FlashAttention FLOPs (4 x layers x heads x head_dim per
  query/key pair), decode as the larger of its FLOPs and the KV bytes it reads;
* **tensor-parallel all-reduces**: two per layer of the tokens' activations, each a latency
  plus bytes over bandwidth fitted on measured NCCL curves per GPU family and worker count (or,
  for messages up to 8 MiB, the engine's custom all-reduce latency if its profile has one);
* **engine overhead**: the engine profile's CPU time per iteration, per doubling of the
  tensor-parallel workers, and per sequence.

Everything is derived from ``profiles.py`` (datasheets, model shapes, per-GPU efficiencies,
all-reduce fits, engine profiles);
docs/fidelity.md reports predicted against measured times.

The function :func:`iteration_s` takes the constants as a flat float array and is compiled with
numba, so the simulator's fast kernel, its reference implementation and the calibration all call
the very same code.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .profiles import (ALL_REDUCE, CUSTOM_ALL_REDUCE_MAX_BYTES, DEFAULT_ENGINE, GPU_EFFICIENCY, AllReduceFit,
                       EngineProfile, GpuEfficiency, Replica, get_engine, get_tier, make_replica)

# Layout of the constants vector (float64[N_CONST]) consumed by iteration_s.
C_LIN_FLOP_S_PER_TOKEN = 0
C_LIN_MEM_S = 1
C_LAYER_OVERHEAD_S = 2
C_HEAD_FLOP_S_PER_TOKEN = 3
C_HEAD_MEM_S = 4
C_ATTN_S_PER_PAIR = 5
C_KV_READ_S_PER_TOKEN = 6
C_COMM_FIXED_S = 7
C_COMM_S_PER_TOKEN = 8
C_ITER_OVERHEAD_S = 9
C_SEQ_OVERHEAD_S = 10
C_KNEE_POWER = 11
C_CAR_FIXED_S = 12  # the engine's custom all-reduce: fixed time per iteration, all layers
C_CAR_MAX_TOKENS = 13  # ... for iterations of at most this many tokens (0: never)
N_CONST = 14


def cost_constants(replica: Replica, tier: str = "FP16", engine: "str | EngineProfile" = DEFAULT_ENGINE,
                   efficiency: GpuEfficiency | None = None,
                   all_reduce: AllReduceFit | None = None) -> np.ndarray:
    """Flatten a replica, quantization tier and engine profile into the constants vector of iteration_s.

    `efficiency` and `all_reduce` default to the GPU's fitted values (profiles.GPU_EFFICIENCY,
    profiles.ALL_REDUCE); the calibration passes its own to fit them.
    """
    m, g, tp = replica.model, replica.gpu, replica.tp
    q = get_tier(tier)
    e = get_engine(engine)
    eff = efficiency if efficiency is not None else GPU_EFFICIENCY[g.name]
    flops = g.peak_flops * eff.linear_mfu
    bw = g.hbm_bytes_per_s * eff.hbm_efficiency
    c = np.zeros(N_CONST, dtype=np.float64)
    c[C_LIN_FLOP_S_PER_TOKEN] = 2.0 * m.linear_params / tp / flops * q.compute_slowdown
    c[C_LIN_MEM_S] = m.linear_params * q.bytes_per_param / tp / bw
    c[C_LAYER_OVERHEAD_S] = m.layers * eff.layer_overhead_s * e.layer_overhead_scale
    c[C_HEAD_FLOP_S_PER_TOKEN] = 2.0 * m.lm_head_params / tp / flops
    c[C_HEAD_MEM_S] = m.lm_head_params * 2.0 / tp / bw
    c[C_ATTN_S_PER_PAIR] = 4.0 * m.layers * m.n_heads * m.head_dim / tp / (g.peak_flops * eff.attn_mfu)
    c[C_KV_READ_S_PER_TOKEN] = m.kv_bytes_per_token / tp / bw
    if tp > 1:
        ar = all_reduce if all_reduce is not None else ALL_REDUCE[g.name][tp]
        # Two all-reduces per layer (after attention and after the MLP), each of the tokens'
        # activations: d_model FP16 values per token.
        c[C_COMM_FIXED_S] = 2.0 * m.layers * ar.latency_s
        c[C_COMM_S_PER_TOKEN] = 2.0 * m.layers * (m.d_model * 2.0) / ar.bytes_per_s
        if e.custom_all_reduce_s is not None:  # small messages: the engine's own kernel's latency
            c[C_CAR_FIXED_S] = 2.0 * m.layers * e.custom_all_reduce_s
            c[C_CAR_MAX_TOKENS] = float(CUSTOM_ALL_REDUCE_MAX_BYTES // int(m.d_model * 2))
    c[C_ITER_OVERHEAD_S] = e.iteration_overhead_s(tp)
    c[C_SEQ_OVERHEAD_S] = e.seq_overhead_s
    c[C_KNEE_POWER] = float(eff.knee_power)
    return c


@njit(cache=True)
def smooth_max(a: float, b: float, p: float) -> float:
    """(a^p + b^p)^(1/p) for p in {2, 4, 8}, computed with sqrt only (bit-identical everywhere)."""
    a2 = a * a
    b2 = b * b
    if p == 2.0:
        return math.sqrt(a2 + b2)
    a4 = a2 * a2
    b4 = b2 * b2
    if p == 4.0:
        return math.sqrt(math.sqrt(a4 + b4))
    return math.sqrt(math.sqrt(math.sqrt(a4 * a4 + b4 * b4)))


@njit(cache=True)
def linear_layers_s(c: np.ndarray, tokens: float) -> float:
    """Time of the transformer layers' matmuls for `tokens` tokens (no attention, LM head, comm)."""
    return smooth_max(c[C_LIN_FLOP_S_PER_TOKEN] * tokens, c[C_LIN_MEM_S], c[C_KNEE_POWER]) + c[C_LAYER_OVERHEAD_S]


@njit(cache=True)
def iteration_s(c: np.ndarray, lin_tokens: float, sampled_tokens: float, prefill_pairs: float,
                decode_kv_tokens: float, decode_q_pairs: float, n_seqs: float) -> float:
    """Seconds of one forward iteration.

    lin_tokens: tokens through the linear layers (prefill chunk tokens + decode query tokens).
    sampled_tokens: positions whose logits are computed (one per sequence, k+1 when verifying).
    prefill_pairs: causal query/key pairs of the prefill chunks, sum of c * (p + (c + 1) / 2)
      for a chunk of c tokens after p already-computed tokens.
    decode_kv_tokens: KV tokens read by decode attention (sum of context lengths).
    decode_q_pairs: decode query/key pairs (sum of context x query tokens per sequence).
    n_seqs: sequences in the batch (engine per-sequence overhead).
    """
    if lin_tokens <= 0.0:
        return 0.0
    p = c[C_KNEE_POWER]
    t = smooth_max(c[C_LIN_FLOP_S_PER_TOKEN] * lin_tokens, c[C_LIN_MEM_S], p) + c[C_LAYER_OVERHEAD_S]
    t += smooth_max(c[C_HEAD_FLOP_S_PER_TOKEN] * sampled_tokens, c[C_HEAD_MEM_S], p)
    t += c[C_ATTN_S_PER_PAIR] * prefill_pairs
    if decode_kv_tokens > 0.0:
        t += smooth_max(c[C_ATTN_S_PER_PAIR] * decode_q_pairs, c[C_KV_READ_S_PER_TOKEN] * decode_kv_tokens, p)
    if lin_tokens <= c[C_CAR_MAX_TOKENS]:
        t += c[C_CAR_FIXED_S] + c[C_COMM_S_PER_TOKEN] * lin_tokens
    else:
        t += c[C_COMM_FIXED_S] + c[C_COMM_S_PER_TOKEN] * lin_tokens
    t += c[C_ITER_OVERHEAD_S] + c[C_SEQ_OVERHEAD_S] * n_seqs
    return t


@njit(cache=True)
def draft_step_s(c: np.ndarray, n_seqs: float, kv_tokens: float, draft_cost_ratio: float) -> float:
    """One step of the draft model for `n_seqs` decoding sequences holding `kv_tokens` context.

    The draft's GPU work is `draft_cost_ratio` of the target's decode step; its engine CPU work
    (per-iteration and per-sequence overhead) is not smaller for a smaller model: in vLLM's
    draft-model speculation each draft step is a full engine step. That overhead is what makes
    speculation a slow-down at high batch while it speeds up small batches.
    """
    cpu = c[C_ITER_OVERHEAD_S] + c[C_SEQ_OVERHEAD_S] * n_seqs
    target = iteration_s(c, n_seqs, n_seqs, 0.0, kv_tokens, kv_tokens, n_seqs)
    return draft_cost_ratio * (target - cpu) + cpu


@njit(cache=True)
def prefill_pairs(chunk_tokens: float, prefix_tokens: float) -> float:
    """Causal query/key pairs of a chunk of `chunk_tokens` after `prefix_tokens` cached tokens."""
    return chunk_tokens * (prefix_tokens + (chunk_tokens + 1.0) / 2.0)


def _check_count(name: str, value, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def predict_ms(model: str, gpu: str, tp: int, prefill_tokens: int, decode_batch: int,
               decode_context: int, engine: "str | EngineProfile" = DEFAULT_ENGINE) -> float:
    """Predicted ms of one FP16 iteration without speculation.

    The batch holds `prefill_tokens` prompt tokens of one request (a whole prompt, nothing cached)
    plus `decode_batch` decoding sequences of `decode_context` context tokens each.

    >>> round(predict_ms("llama-3-8b", "a100-80gb", 1, 0, 1, 512), 1) > 10.0
    True
    """
    prefill_tokens = _check_count("prefill_tokens", prefill_tokens)
    decode_batch = _check_count("decode_batch", decode_batch)
    decode_context = _check_count("decode_context", decode_context)
    if prefill_tokens == 0 and decode_batch == 0:
        raise ValueError("prefill_tokens and decode_batch are both 0: an iteration needs at least one token")
    c = cost_constants(make_replica(model, gpu, tp), "FP16", engine)
    has_prefill = 1 if prefill_tokens > 0 else 0
    return 1e3 * iteration_s(
        c,
        lin_tokens=float(prefill_tokens + decode_batch),
        sampled_tokens=float(decode_batch + has_prefill),
        prefill_pairs=prefill_pairs(float(prefill_tokens), 0.0),
        decode_kv_tokens=float(decode_batch * decode_context),
        decode_q_pairs=float(decode_batch * decode_context),
        n_seqs=float(decode_batch + has_prefill),
    )
