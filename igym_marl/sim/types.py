"""The simulator's input types: knobs, tenants, workloads and the engine configuration.

All are frozen, validated dataclasses; building one has no side effects. A bad value raises
ValueError naming the field, the value and what is allowed. Nothing is clamped.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields

import numpy as np

from .profiles import (ACTIVATION_RESERVE_GB, DEFAULT_ENGINE, GPU_ALIASES, QUANT_TIERS, EngineProfile, Replica, get_engine,
                       make_replica)

BATCH_CAP_RANGE = (1, 512)
KV_BUDGET_RANGE = (0.1, 1.0)
SPEC_DEPTH_RANGE = (0, 8)


def _int_in(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}={value!r} has type {type(value).__name__}; allowed: an integer in {lo}..{hi}")
    if not lo <= int(value) <= hi:
        raise ValueError(f"{name}={value!r} is out of range; allowed: an integer in {lo}..{hi}")
    return int(value)


def _float_in(name: str, value, lo: float, hi: float) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}={value!r} has type {type(value).__name__}; allowed: a number in {lo}..{hi}")
    v = float(value)
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"{name}={value!r} is out of range; allowed: a number in {lo}..{hi}")
    return v


def _bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}={value!r} has type {type(value).__name__}; allowed: True or False")
    return bool(value)


@dataclass(frozen=True)
class Knobs:
    """The six InferenceGym control fields, with their original names and ranges.

    batch_cap: max running sequences (vLLM max_num_seqs), integer 1..512.
    kv_budget_fraction: share of the KV pool requests may use, 0.1..1.0.
    speculation_depth: draft tokens per verification pass, integer 0..8 (0 = off).
    quantization_tier: weight tier, "FP16", "INT8" or "INT4".
    prefill_decode_split: True = chunked prefill (decodes first, prompt chunks fill the token
      budget); False = prefill-first (new prompts run in their own iterations).
    priority_routing: True = tenant priority orders admission and preemption; False = FCFS.
    """

    batch_cap: int = 256
    kv_budget_fraction: float = 0.9
    speculation_depth: int = 0
    quantization_tier: str = "FP16"
    prefill_decode_split: bool = True
    priority_routing: bool = False

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "batch_cap", _int_in("batch_cap", self.batch_cap, *BATCH_CAP_RANGE))
        set_(self, "kv_budget_fraction", _float_in("kv_budget_fraction", self.kv_budget_fraction, *KV_BUDGET_RANGE))
        set_(self, "speculation_depth", _int_in("speculation_depth", self.speculation_depth, *SPEC_DEPTH_RANGE))
        if not isinstance(self.quantization_tier, str) or self.quantization_tier not in QUANT_TIERS:
            raise ValueError(f"quantization_tier={self.quantization_tier!r} is not allowed; "
                             f"allowed: {', '.join(QUANT_TIERS)}")
        set_(self, "prefill_decode_split", _bool("prefill_decode_split", self.prefill_decode_split))
        set_(self, "priority_routing", _bool("priority_routing", self.priority_routing))

    @classmethod
    def from_dict(cls, d: dict) -> "Knobs":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown knob field(s) {sorted(unknown)}; allowed: {sorted(names)}")
        missing = names - set(d)
        if missing:
            raise ValueError(f"missing knob field(s) {sorted(missing)}")
        return cls(**d)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# vLLM's default configuration (max_num_seqs 256, gpu_memory_utilization 0.9, no speculation, FP16
# weights, chunked prefill on as in vLLM V1, FCFS): the Knobs defaults, named once here.
VLLM_DEFAULT = Knobs()

# The levels the agents choose each knob from: the InferenceGym ranges, discretized. The env's
# action spaces, the heuristic's grids, the probes and the LLM controller all read them here.
KNOB_LEVELS: dict[str, tuple] = {
    "batch_cap": tuple(2 ** i for i in range(BATCH_CAP_RANGE[0].bit_length() - 1,
                                             BATCH_CAP_RANGE[1].bit_length())),  # 1, 2, 4, ..., 512
    "prefill_decode_split": (False, True),
    "kv_budget_fraction": tuple(round(0.1 * i, 1) for i in range(round(10 * KV_BUDGET_RANGE[0]),
                                                                 round(10 * KV_BUDGET_RANGE[1]) + 1)),  # 0.1 .. 1.0
    "quantization_tier": tuple(QUANT_TIERS),  # FP16, INT8, INT4
    "speculation_depth": tuple(range(SPEC_DEPTH_RANGE[0], SPEC_DEPTH_RANGE[1] + 1)),  # 0 .. 8
    "priority_routing": (False, True),
}


def level_index(knob: str, value) -> int | None:
    """The index of `value` among `knob`'s levels, or None: the one matching rule. Values match
    by type and equality (True is not 1, "fp16" is not "FP16"); numbers on a float knob also match
    within 1e-9 (an integer too large for a float matches nothing)."""
    if knob not in KNOB_LEVELS:
        raise ValueError(f"knob={knob!r} is unknown; knobs are {', '.join(KNOB_LEVELS)}")
    levels = KNOB_LEVELS[knob]
    for i, x in enumerate(levels):
        if type(x) is type(value) and x == value:
            return i
    if isinstance(levels[0], float) and isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        try:
            v = float(value)
        except OverflowError:
            return None
        for i, x in enumerate(levels):
            if abs(x - v) < 1e-9:
                return i
    return None


def nearest_level(knob: str, value) -> int:
    """The index of the level of `knob` nearest to `value`: the one rule that turns a value into a
    level. A value on a level is that level (:func:`level_index`); a number between levels goes
    to the nearest, measured in log2 for ``batch_cap`` (its levels double) and linearly otherwise,
    the lower level on a tie. A toggle or tier must be one of its levels (ValueError otherwise)."""
    exact = level_index(knob, value)
    if exact is not None:
        return exact
    levels = KNOB_LEVELS[knob]
    if not isinstance(levels[0], (int, float)) or isinstance(levels[0], bool) or isinstance(value, (bool, str)) \
            or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{knob}={value!r} is not one of its levels; allowed: {', '.join(map(repr, levels))}")
    if knob == "batch_cap":
        if value <= 0:
            raise ValueError(f"batch_cap={value!r} must be > 0 to have a nearest level")
        dist = [abs(math.log2(x) - math.log2(float(value))) for x in levels]
    else:
        dist = [abs(x - float(value)) for x in levels]
    return min(range(len(levels)), key=lambda i: (dist[i], i))


# JSON-schema fragments and one-line descriptions of the six knobs, for wire formats (the HTTP
# server's action schema): derived from the ranges and levels above, never typed again.
KNOB_SCHEMA: dict[str, tuple[dict, str]] = {
    "batch_cap": ({"type": "integer", "minimum": BATCH_CAP_RANGE[0], "maximum": BATCH_CAP_RANGE[1]},
                  "max running sequences (vLLM max_num_seqs)"),
    "kv_budget_fraction": ({"type": "number", "minimum": KV_BUDGET_RANGE[0], "maximum": KV_BUDGET_RANGE[1]},
                           "share of the KV pool requests may use"),
    "speculation_depth": ({"type": "integer", "minimum": SPEC_DEPTH_RANGE[0], "maximum": SPEC_DEPTH_RANGE[1]},
                          "draft tokens per verification (0 = off)"),
    "quantization_tier": ({"enum": [*KNOB_LEVELS["quantization_tier"], *range(len(KNOB_LEVELS["quantization_tier"]))]},
                          "weight tier (or its index)"),
    "prefill_decode_split": ({"type": "boolean"}, "chunked prefill on (or 0/1)"),
    "priority_routing": ({"type": "boolean"}, "tenant priority orders admission and preemption (or 0/1)"),
}


@dataclass(frozen=True)
class Tenant:
    """A traffic class with its SLOs.

    priority: larger is more important (used when priority_routing is on).
    ttft_slo_ms / tpot_slo_ms: p99 targets; each request is judged against them.
    spec_acceptance: draft-token acceptance rate at zero context (falls with context length).
    weight: the tenant's price tier, multiplying the value of its requests in the env's score.
    timeout_s: patience of its clients: a request still without a first token after waiting this
      long is withdrawn (abandoned; an SLO miss). inf (the default): clients never give up.
    """

    name: str
    ttft_slo_ms: float
    tpot_slo_ms: float
    priority: int = 0
    spec_acceptance: float = 0.7
    weight: float = 1.0
    timeout_s: float = math.inf

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Tenant.name={self.name!r} must be a non-empty string")
        _float_in("Tenant.ttft_slo_ms", self.ttft_slo_ms, 1e-3, 1e9)
        _float_in("Tenant.tpot_slo_ms", self.tpot_slo_ms, 1e-3, 1e9)
        _int_in("Tenant.priority", self.priority, -1000, 1000)
        _float_in("Tenant.spec_acceptance", self.spec_acceptance, 0.0, 0.99)
        _float_in("Tenant.weight", self.weight, 0.0, 1e6)
        if isinstance(self.timeout_s, bool) or not isinstance(self.timeout_s, numbers.Real) or \
                not (self.timeout_s == math.inf or 0.0 < float(self.timeout_s) <= 1e9):
            raise ValueError(f"Tenant.timeout_s={self.timeout_s!r} is not allowed; allowed: seconds in (0, 1e9] or inf")


def take_keys(ptr: np.ndarray, keys: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The block keys (CSR) of requests `idx`, in that order (repeats allowed)."""
    idx = np.asarray(idx, dtype=np.int64)
    counts = np.diff(ptr)[idx]
    new_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    pos = np.repeat(ptr[idx] - new_ptr[:-1], counts) + np.arange(int(new_ptr[-1]), dtype=np.int64)
    return new_ptr, keys[pos]


def check_block_keys(key_ptr, block_keys, prompt_tokens, output_tokens, key_block_tokens: int,
                     where: str = "Workload") -> tuple[np.ndarray, np.ndarray]:
    """Validate per-request block keys in CSR form; returns them as read-only int64 arrays.

    key_ptr: int64[n + 1], 0 first, non-decreasing; request i's keys are
      block_keys[key_ptr[i]:key_ptr[i + 1]], one per full block of `key_block_tokens` tokens of its
      sequence (prompt, then output), in order, and no more blocks than it has. A key names the whole
      prefix up to and including its block: two requests with equal keys at block j share their
      first j + 1 blocks of tokens (vLLM hashes each block with the hash of the one before).
    block_keys: int64[key_ptr[-1]], each >= 0.
    """
    n = prompt_tokens.shape[0]
    ptr = np.asarray(key_ptr)
    keys = np.asarray(block_keys)
    if ptr.shape != (n + 1,):
        raise ValueError(f"{where}.key_ptr has shape {ptr.shape}; expected ({n + 1},): one offset per request, plus one")
    if (ptr.size and not np.issubdtype(ptr.dtype, np.integer)) or (keys.size and not np.issubdtype(keys.dtype, np.integer)):
        raise ValueError(f"{where}.key_ptr and block_keys must hold integers; got {ptr.dtype} and {keys.dtype}")
    ptr = ptr.astype(np.int64)
    keys = keys.astype(np.int64).reshape(-1)
    if ptr[0] != 0 or (n and np.any(np.diff(ptr) < 0)) or ptr[-1] != keys.shape[0]:
        raise ValueError(f"{where}.key_ptr must start at 0, never decrease and end at len(block_keys)="
                         f"{keys.shape[0]}; got {int(ptr[0])} .. {int(ptr[-1])}")
    if keys.size and keys.min() < 0:
        i = int(np.argmin(keys))
        raise ValueError(f"{where}.block_keys[{i}]={int(keys[i])} must be >= 0")
    counts = np.diff(ptr)
    room = (prompt_tokens + output_tokens) // key_block_tokens
    if n and np.any(counts > room):
        i = int(np.argmax(counts > room))
        raise ValueError(f"{where}: request {i} has {int(counts[i])} block keys, more than the "
                         f"{int(room[i])} full blocks of {key_block_tokens} tokens in its {int(prompt_tokens[i])} + "
                         f"{int(output_tokens[i])} tokens")
    for a in (ptr, keys):
        a.setflags(write=False)
    return ptr, keys


@dataclass(frozen=True, eq=False)
class Workload:
    """Requests as a structure of arrays, sorted by arrival time.

    arrival_s: float64[n], seconds from the episode start, non-decreasing.
    prompt_tokens: int64[n] >= 1; output_tokens: int64[n] >= 1.
    tenant: int64[n], index into `tenants`.
    key_ptr, block_keys (optional, together): the requests' block keys in CSR form, for prefix
      caching across requests (see :func:`check_block_keys`); None: no request shares a prefix.
    key_block_tokens: the block size the keys were cut at; it must be the simulator's.
    """

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    tenant: np.ndarray
    tenants: tuple[Tenant, ...]
    name: str = "workload"
    key_ptr: np.ndarray | None = None
    block_keys: np.ndarray | None = None
    key_block_tokens: int = 16

    def __post_init__(self):
        set_ = object.__setattr__
        if not self.tenants or not all(isinstance(t, Tenant) for t in self.tenants):
            raise ValueError("Workload.tenants must be a non-empty tuple of Tenant")
        set_(self, "tenants", tuple(self.tenants))
        arr = np.asarray(self.arrival_s, dtype=np.float64)
        n = arr.shape[0]
        cols = {}
        for name in ("prompt_tokens", "output_tokens", "tenant"):
            a = np.asarray(getattr(self, name))
            if a.shape != (n,):
                raise ValueError(f"Workload.{name} has shape {a.shape}; expected ({n},) like arrival_s")
            if a.size and not np.issubdtype(a.dtype, np.integer):
                if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
                    raise ValueError(f"Workload.{name} must hold integers")
            cols[name] = a.astype(np.int64)
        if arr.ndim != 1:
            raise ValueError(f"Workload.arrival_s must be 1-D; got shape {arr.shape}")
        if n and (not np.all(np.isfinite(arr)) or arr.min() < 0):
            raise ValueError("Workload.arrival_s must be finite and >= 0")
        if n > 1 and np.any(np.diff(arr) < 0):
            i = int(np.argmax(np.diff(arr) < 0))
            raise ValueError(f"Workload.arrival_s must be sorted; request {i + 1} arrives before request {i}")
        for name in ("prompt_tokens", "output_tokens"):
            if n and cols[name].min() < 1:
                i = int(np.argmin(cols[name]))
                raise ValueError(f"Workload.{name}[{i}]={cols[name][i]} must be >= 1")
        if n and (cols["tenant"].min() < 0 or cols["tenant"].max() >= len(self.tenants)):
            raise ValueError(f"Workload.tenant must index tenants 0..{len(self.tenants) - 1}")
        for a in (arr, *cols.values()):
            a.setflags(write=False)
        set_(self, "arrival_s", arr)
        for k, v in cols.items():
            set_(self, k, v)
        _int_in("Workload.key_block_tokens", self.key_block_tokens, 1, 1024)
        if (self.key_ptr is None) != (self.block_keys is None):
            raise ValueError("Workload.key_ptr and block_keys go together: give both or neither")
        if self.key_ptr is not None:
            ptr, keys = check_block_keys(self.key_ptr, self.block_keys, cols["prompt_tokens"], cols["output_tokens"],
                                         self.key_block_tokens)
            set_(self, "key_ptr", ptr)
            set_(self, "block_keys", keys)

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])

    @property
    def has_keys(self) -> bool:
        return self.key_ptr is not None

    def take(self, idx, arrival_s=None, name: str | None = None) -> "Workload":
        """The requests `idx` (in that order, which must keep arrivals sorted), their keys with them;
        `arrival_s` replaces their arrival times."""
        idx = np.asarray(idx, dtype=np.int64)
        ptr = keys = None
        if self.has_keys:
            ptr, keys = take_keys(self.key_ptr, self.block_keys, idx)
        return Workload(self.arrival_s[idx] if arrival_s is None else arrival_s, self.prompt_tokens[idx],
                        self.output_tokens[idx], self.tenant[idx], self.tenants, name or self.name, ptr, keys,
                        self.key_block_tokens)

    def keys_of(self, i: int) -> np.ndarray:
        """Request i's block keys (empty without keys)."""
        if self.key_ptr is None:
            return np.zeros(0, dtype=np.int64)
        return self.block_keys[self.key_ptr[i]:self.key_ptr[i + 1]]

    @classmethod
    def from_requests(cls, requests, tenants, name: str = "workload", keys=None,
                      key_block_tokens: int = 16) -> "Workload":
        """From (arrival_s, prompt_tokens, output_tokens, tenant_index) tuples (sorted here, stably);
        `keys`, if given, holds each request's list of block keys, in the same order."""
        order = sorted(range(len(requests)), key=lambda i: requests[i][0])
        rows = [requests[i] for i in order]
        a = np.array([r[0] for r in rows], dtype=np.float64)
        cols = [np.array([r[i] for r in rows], dtype=np.int64) for i in (1, 2, 3)]
        ptr = blocks = None
        if keys is not None:
            if len(keys) != len(requests):
                raise ValueError(f"keys has {len(keys)} lists for {len(requests)} requests")
            lists = [list(keys[i]) for i in order]
            ptr = np.concatenate([[0], np.cumsum([len(k) for k in lists])]).astype(np.int64)
            blocks = np.array([x for k in lists for x in k], dtype=np.int64)
        return cls(a, *cols, tenants=tuple(tenants), name=name, key_ptr=ptr, block_keys=blocks,
                   key_block_tokens=key_block_tokens)


@dataclass(frozen=True)
class SimConfig:
    """The replica and the engine settings that agents do not control.

    chunk_token_budget: prefill+decode tokens per iteration with chunked prefill (Sarathi chunk).
    prefill_token_budget: prompt tokens per prefill iteration without chunking (vLLM
      max_num_batched_tokens); a single longer prompt still runs, alone.
    watermark_fraction: share of KV blocks kept free at admission (vLLM: 1 %).
    draft_cost_ratio: one draft step's cost as a fraction of a target decode step (c).
    acceptance_half_context: context length (tokens) at which acceptance halves.
    reload_fixed_s / host_to_device_gb_per_s: cost of switching quantization tier (new weights
      copied from host memory, then graph re-capture).
    engine: the engine's CPU-side costs, a name in profiles.ENGINES ("vllm-0.15", the default: vLLM's
      V1 engine; "vllm-0.2", the 2023 engine; "ideal": none) or an EngineProfile of your own; GPU
      physics is unaffected.
    prefix_caching: vLLM V1's automatic prefix caching (on by default there): computed full KV
      blocks are named by their keys (the workload's block keys; a request's own blocks for its own
      recompute) and stay reusable in the free queue until it hands them out (engine.py).
    kv_pool_blocks: the pool's blocks at kv_budget_fraction 1.0 whatever the tier, as vLLM's
      num_gpu_blocks_override (a replay of a run that logged its pool); None: from GPU memory.
    """

    model: str = "llama-3.1-8b"
    gpu: str = "a100-80gb"
    tp: int = 1
    gpu_memory_utilization: float = 0.9
    activation_reserve_gb: float = ACTIVATION_RESERVE_GB
    block_tokens: int = 16
    watermark_fraction: float = 0.01
    chunk_token_budget: int = 2048
    prefill_token_budget: int = 8192
    draft_cost_ratio: float = 0.08
    acceptance_half_context: float = 8192.0
    reload_fixed_s: float = 2.0
    host_to_device_gb_per_s: float = 20.0
    prefix_caching: bool = True
    kv_pool_blocks: int | None = None
    usd_per_gpu_hour: float | None = None  # None = the GPU profile's figure
    engine: str | EngineProfile = DEFAULT_ENGINE
    itl_hist_bins: int = field(default=160, repr=False)

    def __post_init__(self):
        _int_in("block_tokens", self.block_tokens, 1, 1024)
        _float_in("watermark_fraction", self.watermark_fraction, 0.0, 0.5)
        _int_in("chunk_token_budget", self.chunk_token_budget, 16, 1 << 20)
        _int_in("prefill_token_budget", self.prefill_token_budget, 16, 1 << 20)
        _float_in("draft_cost_ratio", self.draft_cost_ratio, 0.0, 1.0)
        _float_in("acceptance_half_context", self.acceptance_half_context, 1.0, 1e9)
        _float_in("reload_fixed_s", self.reload_fixed_s, 0.0, 3600.0)
        _float_in("host_to_device_gb_per_s", self.host_to_device_gb_per_s, 0.1, 1e4)
        _bool("prefix_caching", self.prefix_caching)
        if self.kv_pool_blocks is not None:
            _int_in("kv_pool_blocks", self.kv_pool_blocks, 1, 1 << 26)
        if self.usd_per_gpu_hour is not None:
            _float_in("usd_per_gpu_hour", self.usd_per_gpu_hour, 0.0, 1e4)
        get_engine(self.engine)
        if isinstance(self.gpu, str):
            object.__setattr__(self, "gpu", GPU_ALIASES.get(self.gpu, self.gpu))
        self.replica()  # validates model, gpu, tp and that the weights fit

    def replica(self) -> Replica:
        return make_replica(self.model, self.gpu, self.tp, self.gpu_memory_utilization, self.activation_reserve_gb)

    @property
    def gpu_hour_usd(self) -> float:
        return self.usd_per_gpu_hour if self.usd_per_gpu_hour is not None else self.replica().gpu.usd_per_gpu_hour
