"""Replay measured serving runs through the simulator, and fit an engine profile to them.

A *runs file* (CSV, one row per stage of a serving benchmark; ``data/calibration/
h100_vllm_v1_serving_runs.csv`` is one) describes what a real engine was given and what its clients
measured: the server's settings (model, GPU, tensor parallelism, ``max_num_seqs``,
``max_num_batched_tokens``, chunked prefill, prefix caching, block size and the KV pool it
allocated), each stage's arrival process, rate and duration, the prompt-length distribution (mean,
std, p10, p50, p90, min, max), the output length (generation ran to it), and the measured TTFT and
end-to-end latency (mean, p50, p90, p99, ms). Stages of one run follow each other on one server.

:func:`replay_run` rebuilds a run's traffic and serves it with the run's own settings:

* arrivals: Poisson at the stage's rate for its duration (``gamma`` with a ``cv`` column, or
  ``constant``, also read), seeded;
* prompt lengths: drawn from the piecewise-linear quantile function through (min, p10, p50, p90,
  max), which keeps the quantiles the file gives;
* shared system prompts: the optional columns ``system_prompts`` (how many; default 4) and
  ``system_prompt_tokens`` (their length; default: drawn in [100, 150]) describe them; each request
  begins with one at random, and their full blocks carry shared keys, so with prefix caching on
  they are computed once and then found cached, as the real server did; with ``distinct_prompts``
  the benchmark cycled through that many fixed prompts instead, whose every full block recurs;
* the server: ``SimConfig(model, gpu, tp, chunk_token_budget = prefill_token_budget =
  max_num_batched_tokens, prefix_caching, block_tokens, kv_pool_blocks = kv_blocks_gpu,
  engine)`` and ``Knobs(batch_cap = max_num_seqs, kv_budget_fraction = 1, FP16, no speculation,
  FCFS)``.

It returns per stage the simulated TTFT and E2E statistics beside the measured ones.
:func:`fit_engine_to_runs` fits an engine profile's CPU-side constants to the measured means with
the GPU physics held (``python scripts/replay_serving_runs.py --fit``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..sim.profiles import EngineProfile, get_engine, get_gpu, get_model
from ..sim.simulator import MAX_RUNNING, Simulator
from ..sim.types import Knobs, SimConfig, Tenant, Workload

RUN_COLUMNS = ("run", "model", "gpu", "tp", "max_num_seqs", "max_num_batched_tokens", "chunked_prefill",
               "prefix_caching", "block_size", "kv_blocks_gpu", "stage", "arrivals", "rate_rps", "duration_s",
               "prompt_mean", "prompt_p10", "prompt_p50", "prompt_p90", "prompt_min", "prompt_max",
               "output_tokens")
STATS = ("mean", "p50", "p90", "p99")
MEASURES = tuple(f"{m}_{s}_ms" for m in ("ttft", "e2e") for s in STATS)
ARRIVALS = ("poisson", "gamma", "constant")
SYSTEM_PROMPT_TOKENS = (100, 150)
KEY_SPAN = 1 << 20  # block keys of one prompt: its index x KEY_SPAN + its block
DRAIN_S = 600.0  # after a run's last arrival, how long the replay waits for the requests still in the engine
LOOSE = Tenant("replay", ttft_slo_ms=1e9, tpot_slo_ms=1e9)


@dataclass(frozen=True)
class Stage:
    """One stage of a measured run: its settings, traffic and measurements (NaN: not measured)."""

    run: str
    model: str
    gpu: str
    tp: int
    max_num_seqs: int
    max_num_batched_tokens: int
    chunked_prefill: bool
    prefix_caching: bool
    block_size: int
    kv_blocks: int
    stage: int
    arrivals: str
    rate_rps: float
    duration_s: float
    cv: float
    prompt_quantiles: tuple  # (min, p10, p50, p90, max)
    output_tokens: int
    measured: dict  # MEASURES -> ms
    system_prompts: int = 4  # shared system prompts the prompts begin with
    system_prompt_tokens: tuple = (100, 150)  # their lengths: drawn uniformly in this range
    distinct_prompts: int = 0  # > 0: the benchmark cycles through this many fixed prompts; 0: every prompt new


def _bool(path, line, col, v) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    text = str(v).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"{path}, line {line}: {col}={v!r} is not a boolean (True/False)")


def load_runs(path) -> list[Stage]:
    """Read a runs file; a missing column or a bad value raises ValueError naming the file, the
    line and the field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such runs file")
    df = pd.read_csv(path)
    missing = [c for c in RUN_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; a runs file has {list(RUN_COLUMNS)} and the measured "
                         f"{list(MEASURES)} (any of them)")
    stages = []
    for i, row in df.iterrows():
        line = int(i) + 2

        def num(col, lo=0.0, integer=False):
            v = row[col]
            try:
                x = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"{path}, line {line}: {col}={v!r} is not a number") from None
            if not math.isfinite(x) or x < lo or (integer and x != int(x)):
                what = "an integer" if integer else "a number"
                raise ValueError(f"{path}, line {line}: {col}={v!r} must be {what} >= {lo:g}")
            return int(x) if integer else x
        arrivals = str(row["arrivals"]).strip().lower()
        if arrivals not in ARRIVALS:
            raise ValueError(f"{path}, line {line}: arrivals={row['arrivals']!r} is not supported; allowed: "
                             f"{', '.join(ARRIVALS)}")
        try:
            get_model(str(row["model"]))
            get_gpu(str(row["gpu"]))
        except ValueError as e:
            raise ValueError(f"{path}, line {line}: {e}") from None
        q = tuple(num(f"prompt_{k}", 1.0) for k in ("min", "p10", "p50", "p90", "max"))
        if any(b < a for a, b in zip(q, q[1:])):
            raise ValueError(f"{path}, line {line}: the prompt quantiles min, p10, p50, p90, max = {q} must not decrease")
        cv = num("cv", 1e-3) if arrivals == "gamma" else 1.0
        measured = {m: (float(row[m]) if m in df.columns and pd.notna(row[m]) else float("nan")) for m in MEASURES}
        prefix = {}
        if "system_prompts" in df.columns and pd.notna(row["system_prompts"]):
            prefix["system_prompts"] = num("system_prompts", 1, True)
        if "system_prompt_tokens" in df.columns and pd.notna(row["system_prompt_tokens"]):
            n_sys = num("system_prompt_tokens", 0, True)
            prefix["system_prompt_tokens"] = (n_sys, n_sys)
        if "distinct_prompts" in df.columns and pd.notna(row["distinct_prompts"]):
            prefix["distinct_prompts"] = num("distinct_prompts", 0, True)
        stages.append(Stage(
            run=str(row["run"]), model=str(row["model"]), gpu=get_gpu(str(row["gpu"])).name, tp=num("tp", 1, True),
            max_num_seqs=num("max_num_seqs", 1, True), max_num_batched_tokens=num("max_num_batched_tokens", 16, True),
            chunked_prefill=_bool(path, line, "chunked_prefill", row["chunked_prefill"]),
            prefix_caching=_bool(path, line, "prefix_caching", row["prefix_caching"]),
            block_size=num("block_size", 1, True), kv_blocks=num("kv_blocks_gpu", 1, True), stage=num("stage", 0, True),
            arrivals=arrivals, rate_rps=num("rate_rps", 1e-6), duration_s=num("duration_s", 1e-3), cv=cv,
            prompt_quantiles=q, output_tokens=num("output_tokens", 1, True), measured=measured, **prefix))
    if not stages:
        raise ValueError(f"{path}: no stage in the file")
    return stages


def runs_of(stages: list[Stage]) -> dict[str, list[Stage]]:
    """Stages grouped by run, in stage order; a run's settings must agree across its stages."""
    out: dict[str, list[Stage]] = {}
    for s in stages:
        out.setdefault(s.run, []).append(s)
    keys = ("model", "gpu", "tp", "max_num_seqs", "max_num_batched_tokens", "chunked_prefill", "prefix_caching",
            "block_size", "kv_blocks", "system_prompts", "system_prompt_tokens", "distinct_prompts")
    for run, ss in out.items():
        ss.sort(key=lambda s: s.stage)
        for k in keys:
            if len({getattr(s, k) for s in ss}) > 1:
                raise ValueError(f"run {run!r}: its stages disagree on {k}; a run is one server")
    return out


def _arrivals(rng, s: Stage, start: float) -> np.ndarray:
    n_max = int(s.rate_rps * s.duration_s * 1.5 + 50)
    if s.arrivals == "constant":
        t = np.arange(0.0, s.duration_s, 1.0 / s.rate_rps)
    else:
        shape = 1.0 if s.arrivals == "poisson" else 1.0 / s.cv ** 2
        gaps = rng.gamma(shape, 1.0 / (s.rate_rps * shape), n_max)
        t = np.cumsum(gaps)
        while t[-1] < s.duration_s:
            t = np.concatenate([t, t[-1] + np.cumsum(rng.gamma(shape, 1.0 / (s.rate_rps * shape), n_max))])
        t = t[t < s.duration_s]
    return start + t


def run_workload(stages: list[Stage], seed: int = 0) -> tuple[Workload, np.ndarray]:
    """The traffic of one run (its stages in order): the workload and each request's stage index.

    Prompts begin with one of the run's shared system prompts (its full blocks keyed, so that prefix
    caching can reuse them); with ``distinct_prompts`` > 0 the benchmark sent that many fixed prompts
    (system prompt + question) in turn, so a whole prompt recurs and all its full blocks are keyed."""
    rng = np.random.default_rng(seed)
    s0 = stages[0]
    bt = s0.block_size
    lo, hi = s0.system_prompt_tokens
    sys_len = rng.integers(lo, hi + 1, s0.system_prompts)
    arr, prompt, stage_of = [], [], []
    start = 0.0
    for i, s in enumerate(stages):
        a = _arrivals(rng, s, start)
        u = rng.random(a.shape[0])
        p = np.round(np.interp(u, (0.0, 0.1, 0.5, 0.9, 1.0), s.prompt_quantiles)).astype(np.int64)
        arr.append(a)
        prompt.append(np.maximum(p, 1))
        stage_of.append(np.full(a.shape[0], i))
        start += s.duration_s
    arr, prompt, stage_of = np.concatenate(arr), np.concatenate(prompt), np.concatenate(stage_of)
    n = arr.shape[0]
    out = np.array([stages[k].output_tokens for k in stage_of], dtype=np.int64)
    if s0.distinct_prompts > 0:
        # a pool of fixed prompts sent in turn: prompt k has its own length and system prompt k % S;
        # its first blocks are its system prompt's, the rest its own (key space above the system ones)
        pool = s0.distinct_prompts
        pool_len = prompt[rng.permutation(n)[:pool]] if n >= pool else np.resize(prompt, pool)
        k = np.arange(n) % pool
        prompt = pool_len[k]
        which = k % s0.system_prompts
        shared = np.minimum(sys_len[which], prompt) // bt
        n_keys = prompt // bt
        parts = [np.concatenate([which[i] * KEY_SPAN + np.arange(shared[i]),
                                 (1 + s0.system_prompts + k[i]) * KEY_SPAN + np.arange(shared[i], n_keys[i])])
                 for i in range(n)]
    else:
        which = rng.integers(0, s0.system_prompts, n)
        n_keys = np.minimum(sys_len[which], prompt) // bt
        parts = [which[i] * KEY_SPAN + np.arange(n_keys[i]) for i in range(n)]
    ptr = np.concatenate([[0], np.cumsum(n_keys)]).astype(np.int64)
    keys = np.concatenate(parts).astype(np.int64) if n else np.zeros(0, dtype=np.int64)
    w = Workload(arr, prompt, out, np.zeros(n, dtype=np.int64), (LOOSE,), name=f"replay:{s0.run}",
                 key_ptr=ptr, block_keys=keys, key_block_tokens=bt)
    return w, stage_of


def run_config(s: Stage, engine: "str | EngineProfile") -> tuple[SimConfig, Knobs]:
    """The simulator and knobs that reproduce a run's server settings."""
    cfg = SimConfig(model=s.model, gpu=s.gpu, tp=s.tp, chunk_token_budget=s.max_num_batched_tokens,
                    prefill_token_budget=s.max_num_batched_tokens, prefix_caching=s.prefix_caching,
                    block_tokens=s.block_size, kv_pool_blocks=s.kv_blocks, engine=engine)
    if s.max_num_seqs > MAX_RUNNING:
        raise ValueError(f"run {s.run!r}: max_num_seqs={s.max_num_seqs} is more than the simulator's {MAX_RUNNING} "
                         f"running sequences")
    return cfg, Knobs(batch_cap=s.max_num_seqs, kv_budget_fraction=1.0, prefill_decode_split=s.chunked_prefill)


def _stats(x_ms: np.ndarray) -> dict:
    if not x_ms.size:
        return {s: float("nan") for s in STATS}
    return {"mean": float(x_ms.mean()), "p50": float(np.percentile(x_ms, 50)), "p90": float(np.percentile(x_ms, 90)),
            "p99": float(np.percentile(x_ms, 99))}


def replay_run(stages: list[Stage], engine: "str | EngineProfile", seed: int = 0) -> list[dict]:
    """Serve one run's traffic with its settings; per stage, the simulated and measured statistics.

    Each row: run, stage, rate_rps, requests, finished (within DRAIN_S of the run's end),
    overloaded (some request unfinished, or the simulated mean TTFT above 1 s), prefix_hit_rate,
    peak_running, sim_<measure> and real_<measure> for every measure in MEASURES."""
    cfg, knobs = run_config(stages[0], engine)
    w, stage_of = run_workload(stages, seed)
    sim = Simulator(cfg)
    sim.reset(w, seed=seed)
    end = sum(s.duration_s for s in stages) + DRAIN_S
    window, peak = 10.0, 0
    t = 0.0
    while t < end:
        m = sim.advance(window, knobs)
        peak = max(peak, m.running)
        t += window
    rq = sim.requests()
    ttft = 1e3 * (rq.first_token_s - rq.arrival_s)
    e2e = 1e3 * (rq.finish_s - rq.arrival_s)
    rows = []
    for i, s in enumerate(stages):
        sel = stage_of == i
        done = sel & np.isfinite(e2e)
        row = {"run": s.run, "stage": s.stage, "rate_rps": s.rate_rps, "requests": int(sel.sum()),
               "finished": int(done.sum()), "peak_running": peak,
               "prefix_hit_rate": float(rq.cached_prompt_tokens[sel].sum() / max(1, rq.prompt_tokens[sel].sum()))}
        sim_stats = {"ttft": _stats(ttft[done]), "e2e": _stats(e2e[done])}
        for m in MEASURES:
            kind, stat = m.split("_")[0], m.split("_")[1]
            row[f"sim_{m}"] = sim_stats[kind][stat]
            row[f"real_{m}"] = s.measured[m]
        row["overloaded"] = bool(row["finished"] < row["requests"] or row["sim_ttft_mean_ms"] > 1000.0)
        rows.append(row)
    return rows


def replay(stages: list[Stage], engine: "str | EngineProfile", seed: int = 0) -> list[dict]:
    """Every run of a runs file, stage by stage (see replay_run)."""
    out = []
    for run_stages in runs_of(stages).values():
        out += replay_run(run_stages, engine, seed)
    return out


def synthetic_runs(stages: list[Stage], engine: "str | EngineProfile", seed: int = 0) -> pd.DataFrame:
    """A runs file whose measurements are the simulator's own with `engine`: the stages as given,
    their measured columns replaced by the replay's figures (to check that a fit recovers a known
    profile)."""
    rows = {(r["run"], r["stage"]): r for r in replay(stages, engine, seed)}
    out = []
    for s in stages:
        r = rows[(s.run, s.stage)]
        lo, hi = s.system_prompt_tokens
        out.append({"run": s.run, "model": s.model, "gpu": s.gpu, "tp": s.tp, "max_num_seqs": s.max_num_seqs,
                    "max_num_batched_tokens": s.max_num_batched_tokens, "chunked_prefill": s.chunked_prefill,
                    "prefix_caching": s.prefix_caching, "block_size": s.block_size, "kv_blocks_gpu": s.kv_blocks,
                    "stage": s.stage, "arrivals": s.arrivals, "rate_rps": s.rate_rps, "duration_s": s.duration_s,
                    "prompt_mean": float(np.mean(s.prompt_quantiles)), "prompt_min": s.prompt_quantiles[0],
                    "prompt_p10": s.prompt_quantiles[1], "prompt_p50": s.prompt_quantiles[2],
                    "prompt_p90": s.prompt_quantiles[3], "prompt_max": s.prompt_quantiles[4],
                    "output_tokens": s.output_tokens, "system_prompts": s.system_prompts,
                    "system_prompt_tokens": lo, "distinct_prompts": s.distinct_prompts,
                    **{m: r[f"sim_{m}"] for m in MEASURES}})
    return pd.DataFrame(out)


def errors(rows: list[dict], measure: str) -> np.ndarray:
    """sim / real - 1 of `measure` per stage (NaN where not measured)."""
    return np.array([r[f"sim_{measure}"] / r[f"real_{measure}"] - 1.0 for r in rows])


FIT_FIELDS = ("iter_overhead_s", "seq_overhead_s", "api_overhead_s", "tp_overhead_s", "custom_all_reduce_s",
              "layer_overhead_scale")
UNITLESS = ("layer_overhead_scale",)  # fitted as is; the others in ms
FIT_MEASURES = ("ttft_mean_ms", "e2e_mean_ms")


def fit_engine_to_runs(stages: list[Stage], start: "str | EngineProfile", fields=("iter_overhead_s", "seq_overhead_s",
                       "api_overhead_s", "layer_overhead_scale"), seed: int = 0, name: str | None = None, description: str | None = None, max_evals: int = 400,
                       measures: tuple[str, ...] = FIT_MEASURES) -> tuple[EngineProfile, float]:
    """An engine profile whose `fields` minimise the squared log errors of `measures` (the
    stages' mean TTFT and E2E by default) over the runs, the GPU physics and the other fields held
    at `start`'s. Nelder-Mead on the fields in ms (the replay is piecewise constant in them at a
    fine scale, so gradient steps would see steps, not slopes). Returns the profile and its loss."""
    from scipy.optimize import minimize
    start = get_engine(start)
    fields = tuple(fields)
    bad = [f for f in fields if f not in FIT_FIELDS]
    if bad or not fields:
        raise ValueError(f"fields={fields!r}: each must be one of {FIT_FIELDS}, at least one")
    runs = runs_of(stages)
    if "tp_overhead_s" in fields and {s.tp for s in stages} == {1}:
        raise ValueError("tp_overhead_s cannot be fitted on tp = 1 runs only")
    if "custom_all_reduce_s" in fields and {s.tp for s in stages} == {1}:
        raise ValueError("custom_all_reduce_s cannot be fitted on tp = 1 runs only")
    if "tp_overhead_s" in fields and "custom_all_reduce_s" in fields and len({s.tp for s in stages} - {1}) < 2:
        raise ValueError("tp_overhead_s and custom_all_reduce_s both cost a constant per iteration at one tp: they "
                         "need runs at two or more tp > 1 to be told apart; fit one of them")

    def profile(x):
        vals = {f: (min(1.0, max(0.0, float(v))) if f in UNITLESS else max(0.0, float(v)) * 1e-3)
                for f, v in zip(fields, x)}
        return dataclasses.replace(start, **vals)

    def loss(x):
        eng = profile(x)
        total = 0.0
        for run_stages in runs.values():
            for r in replay_run(run_stages, eng, seed):
                for m in measures:
                    if math.isfinite(r[f"real_{m}"]):
                        total += math.log(max(r[f"sim_{m}"], 1e-9) / r[f"real_{m}"]) ** 2 if math.isfinite(
                            r[f"sim_{m}"]) else 100.0
        return total
    x0 = np.array([getattr(start, f) if f in UNITLESS else max((getattr(start, f) or 0.0) * 1e3, 0.05)
                   for f in fields])
    simplex = np.vstack([x0] + [x0 + np.eye(len(fields))[i] * max(0.5 * x0[i], 0.05) for i in range(len(fields))])
    sol = minimize(loss, x0, method="Nelder-Mead", options={"initial_simplex": simplex, "maxfev": max_evals,
                                                            "xatol": 1e-3, "fatol": 1e-6})
    out = profile(sol.x)
    return dataclasses.replace(out, name=name or out.name, description=description or out.description), float(sol.fun)


__all__ = ["Stage", "load_runs", "runs_of", "run_workload", "run_config", "replay_run", "replay", "errors", "synthetic_runs",
           "fit_engine_to_runs", "MEASURES", "FIT_FIELDS"]
