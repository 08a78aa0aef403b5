"""Trace replay: BurstGPT's CSV release format and the Azure LLM inference trace (2023).

Loaders read the files exactly as published and return a :class:`~igym_marl.sim.Workload` plus a
:class:`LoadReport` saying what was kept, dropped and why. A malformed file raises
:class:`TraceFormatError` naming the file, the line and the problem; nothing falls back to
synthetic data.

BurstGPT (HPMLL, KDD 2025)::

    Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type[,Session ID,Elapsed time]
    5,ChatGPT,472,18,490,Conversation log

``Timestamp`` is integer seconds with many ties. **Tie rule**: the requests of one second keep
their file order and are spread over that second at ``t + sorted(U(0, 1))`` drawn from the
loader's seeded generator, so replay is deterministic for a seed and never stacks arrivals on one
instant. Rows with 0 response tokens are failed requests: dropped by default (their count is in
the report), kept with ``keep_failed=True`` (then served with 1 output token, the engine's
minimum, and flagged in ``LoadReport.failed_kept``).

Azure LLM inference trace 2023, processed (``arrived_at,num_prefill_tokens,num_decode_tokens``,
seconds from the start) or raw (``TIMESTAMP,ContextTokens,GeneratedTokens`` with datetime
stamps; arrivals become seconds after the first one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..sim.types import Tenant, Workload
from .generators import API, API_TIMEOUT_S, CONVERSATION

BURSTGPT_COLUMNS = ("Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type")
BURSTGPT_OPTIONAL = ("Session ID", "Elapsed time")
AZURE_PROCESSED = ("arrived_at", "num_prefill_tokens", "num_decode_tokens")
AZURE_RAW = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")

DEFAULT_TRACE_TENANT = Tenant("trace", ttft_slo_ms=500.0, tpot_slo_ms=100.0, spec_acceptance=0.6, timeout_s=API_TIMEOUT_S)
# BurstGPT's "Log Type" values mapped to tenants by default.
DEFAULT_BURSTGPT_TENANTS = {"Conversation log": CONVERSATION, "API log": API}


class TraceFormatError(ValueError):
    """A trace file that does not have the published format."""

    def __init__(self, path, line: int | None, problem: str):
        where = f"{path}" + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = str(path), line, problem


@dataclass(frozen=True)
class LoadReport:
    path: str
    rows: int  # data rows in the file
    kept: int  # requests in the workload
    failed_dropped: int = 0  # 0-response-token rows dropped
    failed_kept: int = 0
    filtered_out: int = 0  # by model / log type / time window
    thinned_or_copied: int = 0  # requests removed (negative) or added by rate_scale
    tenants: dict = field(default_factory=dict)  # tenant name -> requests


def _read(path: Path, required: tuple[str, ...], optional: tuple[str, ...] = (), numeric: tuple[str, ...] = (),
          categorical: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a CSV; numeric columns come back as float64, the rest as given. Fast path: pandas'
    C parser with numeric dtypes; any bad value sends us to a string read that finds its line."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such trace file")
    if path.stat().st_size == 0:
        raise TraceFormatError(path, None, "the file is empty")
    try:
        head = pd.read_csv(path, nrows=0, engine="c")
    except pd.errors.EmptyDataError:
        raise TraceFormatError(path, None, "the file is empty") from None
    cols = [c.strip() for c in head.columns]
    missing = [c for c in required if c not in cols]
    if missing:
        raise TraceFormatError(path, 1, f"missing column(s) {missing}; the header has {cols}, "
                                        f"expected {list(required)}" + (f" (optional: {list(optional)})" if optional else ""))
    raw = dict(zip(cols, head.columns))
    dtypes = {raw[c]: np.float64 for c in numeric}
    dtypes.update({raw[c]: "category" for c in categorical})
    try:
        df = pd.read_csv(path, dtype=dtypes, engine="c", skipinitialspace=True)
        df.columns = cols
        ok = True
    except (ValueError, pd.errors.ParserError):
        ok = False
    if not ok:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, engine="c")
        df.columns = cols
        for c in numeric:
            _numeric(path, df, c, integer=False)  # raises with the line of the bad value
        raise TraceFormatError(path, None, "could not parse the file")  # pragma: no cover
    if len(df) == 0:
        raise TraceFormatError(path, None, "the file has a header but no data rows")
    return df


def _numeric(path: Path, df: pd.DataFrame, col: str, integer: bool) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(df[col]):
        v = df[col].to_numpy(dtype=np.float64)
    else:
        v = pd.to_numeric(df[col].astype(str).str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(v)
    if bad.any():
        i = int(np.argmax(bad))
        raise TraceFormatError(path, i + 2, f"column {col!r} has non-numeric value {df[col].iloc[i]!r}")
    if (v < 0).any():
        i = int(np.argmax(v < 0))
        raise TraceFormatError(path, i + 2, f"column {col!r} has negative value {_show(df[col].iloc[i])}")
    if integer and (v != np.floor(v)).any():
        i = int(np.argmax(v != np.floor(v)))
        raise TraceFormatError(path, i + 2, f"column {col!r} has non-integer value {_show(df[col].iloc[i])}")
    return v


def _show(x) -> str:
    """A value as the file spells it (floats that are integers without '.0')."""
    if isinstance(x, str):
        return repr(x)
    return repr(str(int(x))) if float(x) == int(x) else repr(str(x))


def _spread_ties(ts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Integer-second stamps -> t + sorted uniforms within each second, file order kept."""
    n = ts.shape[0]
    u = rng.random(n)
    order = np.lexsort((u, ts))  # by second, then by the uniform
    out = np.empty(n)
    # assign the k-th smallest uniform of each second to the k-th row of that second (file order)
    sorted_u = u[order]
    rows_by_second = np.argsort(ts, kind="stable")
    out[rows_by_second] = ts[rows_by_second] + sorted_u
    return out


def _rescale(arrival, cols, rate_scale, rng):
    """Bernoulli thinning (rate_scale < 1) or copies jittered within +-0.5 s (rate_scale > 1)."""
    n = arrival.shape[0]
    if rate_scale == 1.0:
        return arrival, cols, 0
    whole = int(math.floor(rate_scale))
    frac = rate_scale - whole
    reps = np.full(n, whole, dtype=np.int64) + (rng.random(n) < frac)
    idx = np.repeat(np.arange(n), reps)
    first_copy = np.concatenate([[True], idx[1:] != idx[:-1]]) if idx.size else np.zeros(0, bool)
    jitter = np.where(first_copy, 0.0, rng.uniform(-0.5, 0.5, idx.size))
    new_arr = np.maximum(arrival[idx] + jitter, 0.0)
    order = np.argsort(new_arr, kind="stable")
    return new_arr[order], [c[idx][order] for c in cols], int(idx.size - n)


def _check_positive(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a positive number")
    return float(value)


TRACE_FORMATS = ("burstgpt", "azure")


def detect_format(path) -> str:
    """"burstgpt" or "azure" from a trace file's header (TraceFormatError naming both otherwise)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such trace file")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = f.readline()
    except UnicodeDecodeError:
        raise TraceFormatError(path, 1, "the header is not UTF-8 text: a trace is a UTF-8 CSV file") from None
    cols = [c.strip() for c in header.strip().lstrip("\ufeff").split(",")]
    if all(c in cols for c in BURSTGPT_COLUMNS):
        return "burstgpt"
    if all(c in cols for c in AZURE_PROCESSED) or all(c in cols for c in AZURE_RAW):
        return "azure"
    raise TraceFormatError(path, 1, f"the header {cols} is neither BurstGPT's {list(BURSTGPT_COLUMNS)} nor the Azure "
                                    f"trace's {list(AZURE_PROCESSED)} or {list(AZURE_RAW)}")


def load_burstgpt(path, *, models=None, log_types=None, start_s: float = 0.0, duration_s: float | None = None,
                  speedup: float = 1.0, rate_scale: float = 1.0, keep_failed: bool = False,
                  tenant_map: dict | None = None, seed=0) -> tuple[Workload, LoadReport]:
    """Load a BurstGPT CSV as released.

    models / log_types: keep only these values of ``Model`` / ``Log Type`` (None = all).
    start_s, duration_s: the time window of the trace to replay (trace seconds); arrivals are
      shifted so the window starts at 0.
    speedup: divide times by this factor (replay faster, burst structure compressed).
    rate_scale: change the request rate without touching the time axis (thinning or jittered
      copies, seeded).
    tenant_map: ``{log_type: Tenant}`` or ``{(log_type, model): Tenant}``; default maps
      Conversation log -> "conversation", API log -> "api". A row whose key is not mapped raises.
    """
    path = Path(path)
    start_s = float(start_s)
    if not math.isfinite(start_s) or start_s < 0:
        raise ValueError(f"start_s={start_s!r} must be >= 0")
    duration_s = _check_positive("duration_s", duration_s, allow_none=True)
    speedup = _check_positive("speedup", speedup)
    rate_scale = _check_positive("rate_scale", rate_scale)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    df = _read(path, BURSTGPT_COLUMNS, BURSTGPT_OPTIONAL, numeric=("Timestamp", "Request tokens", "Response tokens"),
               categorical=("Model", "Log Type"))
    rows = len(df)
    ts = _numeric(path, df, "Timestamp", integer=False)
    req = _numeric(path, df, "Request tokens", integer=True)
    resp = _numeric(path, df, "Response tokens", integer=True)
    model_cat = df["Model"].astype("category")
    log_cat = df["Log Type"].astype("category")
    if np.any(np.diff(ts) < 0):
        i = int(np.argmax(np.diff(ts) < 0)) + 1
        raise TraceFormatError(path, i + 2, f"Timestamp {df['Timestamp'].iloc[i]!r} goes back in time "
                                            f"(previous row: {df['Timestamp'].iloc[i - 1]!r}); the release is sorted")
    keep = np.ones(rows, dtype=bool)
    if models is not None:
        keep &= model_cat.isin(list(models)).to_numpy()
    if log_types is not None:
        keep &= log_cat.isin(list(log_types)).to_numpy()
    t_arr = _spread_ties(ts, rng) if np.all(ts == np.floor(ts)) else ts.copy()
    keep &= t_arr >= start_s
    if duration_s is not None:
        keep &= t_arr < start_s + duration_s
    filtered_out = int(rows - keep.sum())
    failed = keep & (resp == 0)
    n_failed = int(failed.sum())
    if not keep_failed:
        keep &= resp > 0
    req = np.maximum(req[keep], 1).astype(np.int64)  # a 0-token prompt still costs one position
    out = np.maximum(resp[keep], 1).astype(np.int64)
    t_arr = (t_arr[keep] - start_s) / speedup
    tmap = DEFAULT_BURSTGPT_TENANTS if tenant_map is None else tenant_map
    tenants: list[Tenant] = []
    # one code per (log type, model) pair present, then a lookup table code -> tenant index
    log_codes = log_cat.cat.codes.to_numpy()[keep].astype(np.int64)
    model_codes = model_cat.cat.codes.to_numpy()[keep].astype(np.int64)
    n_models = len(model_cat.cat.categories)
    pair = log_codes * n_models + model_codes
    table = np.full(len(log_cat.cat.categories) * n_models, -1, dtype=np.int64)
    for code in np.unique(pair):
        key = (str(log_cat.cat.categories[code // n_models]).strip(), str(model_cat.cat.categories[code % n_models]).strip())
        ten = tmap.get(key, tmap.get(key[0]))
        if ten is None:
            raise ValueError(f"tenant_map has no tenant for Log Type {key[0]!r} / Model {key[1]!r}; "
                             f"keys are {list(tmap)}")
        if ten not in tenants:
            tenants.append(ten)
        table[code] = tenants.index(ten)
    tid = table[pair]
    if not tenants:
        raise ValueError(f"{path}: no request left after filtering (models={models}, log_types={log_types}, "
                         f"start_s={start_s}, duration_s={duration_s})")
    t_arr, (req, out, tid), changed = _rescale(t_arr, [req, out, tid], rate_scale, rng)
    wl = Workload(t_arr, req, out, tid, tuple(tenants), name=f"burstgpt:{path.name}")
    counts = np.bincount(tid, minlength=len(tenants))
    report = LoadReport(str(path), rows, len(wl), 0 if keep_failed else n_failed, n_failed if keep_failed else 0,
                        filtered_out, changed, {t.name: int(c) for t, c in zip(tenants, counts)})
    return wl, report


def load_azure(path, *, tenant: Tenant = DEFAULT_TRACE_TENANT, start_s: float = 0.0, duration_s: float | None = None,
               speedup: float = 1.0, rate_scale: float = 1.0, seed=0) -> tuple[Workload, LoadReport]:
    """Load the Azure LLM inference trace, processed or raw form (detected from the header)."""
    path = Path(path)
    duration_s = _check_positive("duration_s", duration_s, allow_none=True)
    speedup = _check_positive("speedup", speedup)
    rate_scale = _check_positive("rate_scale", rate_scale)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    with open(path, newline="") as f:
        header = f.readline().strip().lstrip("\ufeff")
    cols = [c.strip() for c in header.split(",")]
    if all(c in cols for c in AZURE_RAW):
        df = _read(path, AZURE_RAW, numeric=("ContextTokens", "GeneratedTokens"))
        stamps = pd.to_datetime(df["TIMESTAMP"].astype(str).str.strip(), errors="coerce", format="mixed")
        if stamps.isna().any():
            i = int(np.argmax(stamps.isna().to_numpy()))
            raise TraceFormatError(path, i + 2, f"TIMESTAMP {df['TIMESTAMP'].iloc[i]!r} is not a date-time")
        t = (stamps - stamps.iloc[0]).dt.total_seconds().to_numpy()
        prompt = _numeric(path, df, "ContextTokens", integer=True)
        output = _numeric(path, df, "GeneratedTokens", integer=True)
    else:
        df = _read(path, AZURE_PROCESSED, numeric=AZURE_PROCESSED)
        t = _numeric(path, df, "arrived_at", integer=False)
        prompt = _numeric(path, df, "num_prefill_tokens", integer=True)
        output = _numeric(path, df, "num_decode_tokens", integer=True)
    rows = len(df)
    if np.any(np.diff(t) < 0):
        i = int(np.argmax(np.diff(t) < 0)) + 1
        raise TraceFormatError(path, i + 2, "arrival times go back in time; the trace is sorted")
    keep = t >= start_s
    if duration_s is not None:
        keep &= t < start_s + duration_s
    if not keep.any():
        raise ValueError(f"{path}: no request in the window start_s={start_s}, duration_s={duration_s}")
    zero = keep & ((prompt == 0) | (output == 0))
    if zero.any():
        i = int(np.argmax(zero))
        raise TraceFormatError(path, i + 2, "a request with 0 prompt or 0 output tokens")
    arr = (t[keep] - start_s) / speedup
    p, o = prompt[keep].astype(np.int64), output[keep].astype(np.int64)
    arr, (p, o), changed = _rescale(arr, [p, o], rate_scale, rng)
    wl = Workload(arr, p, o, np.zeros(arr.shape[0], dtype=np.int64), (tenant,), name=f"azure:{path.name}")
    return wl, LoadReport(str(path), rows, len(wl), filtered_out=int(rows - keep.sum()), thinned_or_copied=changed,
                          tenants={tenant.name: len(wl)})
