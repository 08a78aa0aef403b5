"""Trace replay: BurstGPT's CSV release format and the Azure LLM inference trace (2023).

Loaders read the files exactly as published and return a :class:`~igym_marl.sim.Workload` plus a
:class:`LoadReport` saying what was kept, dropped and why. A malformed file raises
:class:`TraceFormatError` naming the file, the line and the problem; nothing falls back to
synthetic data. A file is parsed once (:func:`parse_burstgpt`, :func:`parse_azure`) and any time
window of it is then cut without reading it again (:func:`window`): the ``trace`` task resets
without re-parsing.

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

Mooncake (Kimi's production traces, FAST '25 release): JSON lines ``{"timestamp": ms,
"input_length": tokens, "output_length": tokens, "hash_ids": [...]}``, where ``hash_ids`` names each
512-token block of the prompt by its prefix (two requests sharing a hash share that block and every
one before it). The blocks map onto the simulator's blocks: simulator block j of a prompt lies in
trace block j // (512 / block_tokens) and is keyed by (its hash, its place in it); only blocks the
prompt fills are keyed, so equal keys always mean equal prefixes.

A window with no request in it is a valid, empty workload; its tenants are always those of the
whole (filtered) file, so every window of a trace has the same tenants.
"""

from __future__ import annotations

import codecs
import gzip
import json
import math
import os
import re
import stat
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..sim.types import Tenant, Workload, take_keys
from .generators import API, API_TIMEOUT_S, CONVERSATION

if TYPE_CHECKING:
    import pandas as pd

BURSTGPT_COLUMNS = ("Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type")
BURSTGPT_OPTIONAL = ("Session ID", "Elapsed time")
AZURE_PROCESSED = ("arrived_at", "num_prefill_tokens", "num_decode_tokens")
AZURE_RAW = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
TRACE_FORMATS = ("burstgpt", "azure", "mooncake")
MOONCAKE_FIELDS = ("timestamp", "input_length", "output_length", "hash_ids")
MOONCAKE_BLOCK_TOKENS = 512  # the trace's hash block
MAX_JSONL_LINE_BYTES = 1 << 20  # a JSON row lists a hash per 512 tokens: 1 MiB holds a 10M-token prompt
MAX_TOKENS = 10_000_000  # more tokens than any model's context: a corrupt value, not a request
MAX_STAMP_S = 1e9  # 31 years after the trace's origin: a corrupt time stamp

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


@dataclass(frozen=True, eq=False)
class ParsedTrace:
    """A trace file read once: every row that passed the model and log-type filters, in file
    order, with its tenant resolved. Arrays: float64 stamps (seconds; integer seconds for BurstGPT),
    int64 prompt and output tokens (output 0: a failed BurstGPT request) and tenant indices."""

    path: str
    format: str
    stamps: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    tenant: np.ndarray
    tenants: tuple[Tenant, ...]
    rows: int  # data rows in the file
    filtered_out: int  # rows the filters removed
    integer_stamps: bool  # the tie rule applies
    key_ptr: np.ndarray | None = None  # block keys (CSR, as Workload's), for traces that name prefixes
    block_keys: np.ndarray | None = None
    key_block_tokens: int = 16

    @property
    def has_keys(self) -> bool:
        return self.key_ptr is not None

    @property
    def span_s(self) -> float:
        return float(self.stamps[-1] - self.stamps[0]) if self.stamps.size else 0.0

    def conversations(self) -> np.ndarray:
        """int64 conversation id per row, for a Mooncake trace: requests whose prompts share their
        second 512-token block are one conversation's turns (every prompt of Kimi's trace starts
        with the same system-prompt block, and no two conversations share their second block); a
        prompt of one block (or none hashed) is a conversation of its own."""
        if not self.has_keys or self.format != "mooncake":
            raise ValueError(f"conversations are known for Mooncake traces only; {self.path} is {self.format}")
        per = MOONCAKE_BLOCK_TOKENS // self.key_block_tokens
        n = self.stamps.shape[0]
        counts = np.diff(self.key_ptr)
        second = np.where(counts > per, self.block_keys[np.minimum(self.key_ptr[:-1] + per,
                                                                   max(self.block_keys.shape[0] - 1, 0))] // per, -1)
        ids = np.where(second >= 0, second, -(np.arange(n, dtype=np.int64) + 1))
        return np.unique(ids, return_inverse=True)[1].astype(np.int64)


MAX_LINE_BYTES = 4096  # a trace row is a few dozen bytes; a longer line is corruption, not a request
_SCAN_BLOCK = 1 << 20
EXCERPT_CHARS = 40  # how much of a bad value a message quotes


def _excerpt(x) -> str:
    """A text value as a short quotation: its repr, cut after EXCERPT_CHARS characters."""
    r = repr(x)
    return r if len(r) <= EXCERPT_CHARS else f"{r[:EXCERPT_CHARS]}... ({len(x):,} characters)"


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def open_trace_bytes(path: Path):
    """The file's bytes, decompressed if it is gzip (known by its magic number, whatever its name)."""
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def regular_file(path) -> os.stat_result:
    """The stat of `path` if it names a regular file; otherwise an error naming it (no such file, a
    directory, a FIFO, socket or device), without opening it."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such trace file") from None
    except OSError as e:
        raise TraceFormatError(path, None, f"cannot be read: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise TraceFormatError(path, None, "is a directory; give a trace file")
    if not stat.S_ISREG(st.st_mode):
        raise TraceFormatError(path, None, "is not a regular file (a FIFO, socket or device?); give a trace file")
    return st


def check_trace_file(path, max_line_bytes: int = MAX_LINE_BYTES) -> Path:
    """A path that names a regular, readable file (not a directory, a FIFO or a device), whose
    content, decompressed if gzip, is UTF-8 text of lines no longer than MAX_LINE_BYTES with no NUL
    byte. The content is streamed once in blocks, so a corrupt file is refused at its first bad line
    without being read whole; the error names the file and the line and quotes at most a short
    excerpt."""
    path = Path(path)
    st = regular_file(path)
    if st.st_size == 0:
        raise TraceFormatError(path, None, "the file is empty")
    try:
        with open_trace_bytes(path) as f:
            _scan_lines(path, f, max_line_bytes)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise TraceFormatError(path, None, f"cannot be read (a damaged gzip stream?): {str(e)[:200]}") from None
    return path


def _scan_lines(path: Path, f, max_line_bytes: int = MAX_LINE_BYTES) -> None:
    head = f.read(4)
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise TraceFormatError(path, None, "this is UTF-16 text, not UTF-8: a trace is a UTF-8 text file")
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, line_len, block = 1, 0, head
    while block:
        nul = block.find(b"\x00")
        chunk = block if nul < 0 else block[:nul]
        pieces = chunk.split(b"\n")
        for i, piece in enumerate(pieces):
            if i:
                line += 1
                line_len = 0
            line_len += len(piece)
            if line_len > max_line_bytes:
                raise TraceFormatError(path, line, f"the line is longer than {max_line_bytes:,} bytes: not a trace "
                                                   f"row (it begins {_excerpt(piece[:EXCERPT_CHARS])})")
        try:
            decoder.decode(chunk, final=nul >= 0)
        except UnicodeDecodeError:
            raise TraceFormatError(path, line, "this is not UTF-8 text (Latin-1?): a trace is a UTF-8 text "
                                               "file") from None
        if nul >= 0:
            raise TraceFormatError(path, line, "holds a NUL byte: binary data or padding, not text")
        block = f.read(_SCAN_BLOCK)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise TraceFormatError(path, line, "this is not UTF-8 text (it ends inside a character)") from None


def _header(path: Path) -> list[str]:
    with open_trace_bytes(path) as f:
        first = f.readline(MAX_LINE_BYTES + 1).decode("utf-8-sig", errors="replace")
    return [c.strip() for c in first.strip().split(",")]


def _read(path: Path, required: tuple[str, ...], optional: tuple[str, ...] = (), numeric: tuple[str, ...] = (),
          categorical: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a CSV; numeric columns come back as float64, the rest as given. Fast path: pandas'
    C parser with numeric dtypes; any bad value sends us to a string read that finds its line."""
    import pandas as pd  # on first parse: importing igym_marl need not pay for pandas
    check_trace_file(path)
    compression = "gzip" if is_gzip(path) else None
    try:
        head = pd.read_csv(path, nrows=0, engine="c", encoding="utf-8-sig", compression=compression)
    except pd.errors.EmptyDataError:
        raise TraceFormatError(path, None, "the file is empty") from None
    except UnicodeDecodeError:
        raise TraceFormatError(path, 1, "this is not UTF-8 text: a trace is a UTF-8 CSV file") from None
    except (pd.errors.ParserError, ValueError, OSError, EOFError) as e:  # unbalanced quote, bad gzip stream, ...
        raise TraceFormatError(path, 1, f"cannot be read as CSV: {str(e).strip()[:200]}") from None
    cols = [str(c).strip() for c in head.columns]
    missing = [c for c in required if c not in cols]
    if missing:
        other = "format='azure'" if "Timestamp" in required else "format='burstgpt'"
        raise TraceFormatError(path, 1, f"missing column(s) {missing}; the header has {cols}, "
                                        f"expected {list(required)}" + (f" (optional: {list(optional)})" if optional
                                                                        else "") + f"; another format? ({other})")
    raw = dict(zip(cols, head.columns))
    dtypes = {raw[c]: np.float64 for c in numeric}
    dtypes.update({raw[c]: "category" for c in categorical})
    try:
        df = pd.read_csv(path, dtype=dtypes, engine="c", skipinitialspace=True, encoding="utf-8-sig",
                         compression=compression)
        df.columns = cols
        ok = True
    except pd.errors.ParserError as e:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        if m:
            raise TraceFormatError(path, int(m.group(2)), f"the row has {m.group(3)} fields; the header has "
                                                          f"{m.group(1)}") from None
        raise TraceFormatError(path, None, f"cannot be parsed as CSV: {str(e).strip()}") from None
    except (ValueError, UnicodeDecodeError, OverflowError):
        ok = False
    if not ok:
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False, engine="c", encoding="utf-8-sig",
                             compression=compression)
        except (pd.errors.ParserError, UnicodeDecodeError) as e:
            raise TraceFormatError(path, None, f"cannot be parsed as UTF-8 CSV: {str(e).strip()[:200]}") from None
        df.columns = cols
        for c in numeric:
            _numeric(path, df, c, integer=False)  # raises with the line of the bad value
        raise TraceFormatError(path, None, "could not parse the file")  # pragma: no cover
    if len(df) == 0:
        raise TraceFormatError(path, None, "the file has a header but no data rows")
    return df


def _numeric(path: Path, df: pd.DataFrame, col: str, integer: bool, max_value: float = math.inf,
             unit: str = "tokens") -> np.ndarray:
    import pandas as pd  # on first parse: importing igym_marl need not pay for pandas
    if pd.api.types.is_numeric_dtype(df[col]):
        v = df[col].to_numpy(dtype=np.float64)
    else:
        v = pd.to_numeric(df[col].astype(str).str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(v)
    if bad.any():
        i = int(np.argmax(bad))
        raw = df[col].iloc[i]
        if (isinstance(raw, float) and math.isnan(raw) and pd.api.types.is_numeric_dtype(df[col])) or \
                (isinstance(raw, str) and not raw.strip()):
            raise TraceFormatError(path, i + 2, f"column {col!r} is empty (does the row have fewer fields than the "
                                                f"header?)")
        raise TraceFormatError(path, i + 2, f"column {col!r} has non-numeric value {_show(raw)}")
    if (v < 0).any():
        i = int(np.argmax(v < 0))
        raise TraceFormatError(path, i + 2, f"column {col!r} has negative value {_show(df[col].iloc[i])}")
    if integer and (v != np.floor(v)).any():
        i = int(np.argmax(v != np.floor(v)))
        raise TraceFormatError(path, i + 2, f"column {col!r} has non-integer value {_show(df[col].iloc[i])}")
    if (v > max_value).any():
        i = int(np.argmax(v > max_value))
        what = "token count" if unit == "tokens" else "time stamp (seconds)"
        raise TraceFormatError(path, i + 2, f"column {col!r} has value {_show(df[col].iloc[i])}, more than "
                                            f"{max_value:,.0f}: not a plausible {what}")
    return v


def _show(x) -> str:
    """A value as the file spells it, quoted and cut short (plain Python numbers, never numpy
    reprs; floats that are integers without '.0')."""
    if isinstance(x, (str, bytes)):
        return _excerpt(x)
    v = float(x)
    return repr(str(int(v))) if math.isfinite(v) and v == int(v) and abs(v) < 1e18 else repr(str(v))


def _sorted(path: Path, t: np.ndarray, df: pd.DataFrame, col: str) -> None:
    if np.any(np.diff(t) < 0):
        i = int(np.argmax(np.diff(t) < 0)) + 1
        raise TraceFormatError(path, i + 2, f"{col} {_show(df[col].iloc[i])} goes back in time "
                                            f"(previous row: {_show(df[col].iloc[i - 1])}); the release is sorted")


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


MAX_EPISODE_REQUESTS = 2_000_000  # a replica serves tens of requests/s: more is a runaway scale, not a task


def _rescale(arrival, cols, rate_scale, rng):
    """Bernoulli thinning (rate_scale < 1) or copies jittered within +-0.5 s (rate_scale > 1)."""
    n = arrival.shape[0]
    if rate_scale == 1.0:
        return arrival, cols, 0
    if n * rate_scale > MAX_EPISODE_REQUESTS:
        raise ValueError(f"rate_scale={float(rate_scale):g} makes {n:,} requests about {n * rate_scale:,.0f}, more than "
                         f"{MAX_EPISODE_REQUESTS:,} in one workload: far beyond what a replica serves")
    whole = int(math.floor(rate_scale))
    frac = rate_scale - whole
    reps = np.full(n, whole, dtype=np.int64) + (rng.random(n) < frac)
    idx = np.repeat(np.arange(n), reps)
    first_copy = np.concatenate([[True], idx[1:] != idx[:-1]]) if idx.size else np.zeros(0, bool)
    jitter = np.where(first_copy, 0.0, rng.uniform(-0.5, 0.5, idx.size))
    new_arr = np.maximum(arrival[idx] + jitter, 0.0)
    order = np.argsort(new_arr, kind="stable")
    return new_arr[order], [c[idx][order] for c in cols], int(idx.size - n)


def rescale(workload: Workload, rate_scale: float, rng) -> Workload:
    """`workload` with its request rate multiplied by `rate_scale` (thinning or jittered copies,
    time axis kept), as window() does."""
    arr, cols, _ = _rescale(workload.arrival_s, [workload.prompt_tokens, workload.output_tokens, workload.tenant],
                            _check_positive("rate_scale", rate_scale), rng)
    return Workload(arr, *cols, tenants=workload.tenants, name=workload.name)


def _check_positive(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a positive number")
    return float(value)


def detect_format(path) -> str:
    """"burstgpt" or "azure" from a trace file's header, gzip-compressed or not (TraceFormatError
    naming both otherwise)."""
    path = check_trace_file(path, MAX_JSONL_LINE_BYTES)
    with open_trace_bytes(path) as f:
        first = f.readline(MAX_JSONL_LINE_BYTES + 1).decode("utf-8-sig", errors="replace").strip()
    if first.startswith("{"):
        try:
            row = json.loads(first)
        except ValueError:
            raise TraceFormatError(path, 1, f"the first line is not JSON: {_excerpt(first)}") from None
        if isinstance(row, dict) and all(k in row for k in MOONCAKE_FIELDS):
            return "mooncake"
        raise TraceFormatError(path, 1, f"a JSON-lines trace needs the fields {list(MOONCAKE_FIELDS)} (Mooncake's); "
                                        f"the first line has {sorted(row)[:10] if isinstance(row, dict) else type(row).__name__}")
    cols = _header(path)
    if all(c in cols for c in BURSTGPT_COLUMNS):
        return "burstgpt"
    if all(c in cols for c in AZURE_PROCESSED) or all(c in cols for c in AZURE_RAW):
        return "azure"
    raise TraceFormatError(path, 1, f"the header {_excerpt(','.join(cols))} is neither BurstGPT's "
                                    f"{list(BURSTGPT_COLUMNS)} nor the Azure trace's {list(AZURE_PROCESSED)} or "
                                    f"{list(AZURE_RAW)}")


def _datetimes(path: Path, df: pd.DataFrame, col: str) -> pd.Series:
    """A column of date-times; every stamp must share one time zone (or none)."""
    import pandas as pd  # on first parse: importing igym_marl need not pay for pandas
    text = df[col].astype(str).str.strip()
    try:
        stamps = pd.to_datetime(text, errors="coerce", format="mixed")
    except (ValueError, TypeError):  # pandas refuses a column mixing time zones: find the first odd line
        zones = []  # per row: "bad" (not a date-time), None (no zone) or its UTC offset
        for x in text:
            ts = pd.to_datetime(x, errors="coerce")
            zones.append("bad" if pd.isna(ts) else (None if ts.tzinfo is None else ts.utcoffset()))
        first = next(i for i, z in enumerate(zones) if z != "bad")
        for i, z in enumerate(zones):
            if z != "bad" and z != zones[first]:
                raise TraceFormatError(path, i + 2, f"{col} {_show(text.iloc[i])} has another time zone than "
                                                    f"line {first + 2} ({_show(text.iloc[first])}): one trace, "
                                                    f"one time zone") from None
        raise TraceFormatError(path, None, f"column {col!r} cannot be read as date-times") from None
    if stamps.isna().any():
        i = int(np.argmax(stamps.isna().to_numpy()))
        raise TraceFormatError(path, i + 2, f"{col} {_show(text.iloc[i])} is not a date-time")
    return stamps


# ---------------------------------------------------------------------------------- parsing
def parse_burstgpt(path, *, models=None, log_types=None, tenant_map: dict | None = None) -> ParsedTrace:
    """Read a BurstGPT CSV once: rows of the given models and log types, tenants resolved.

    tenant_map: ``{log_type: Tenant}`` or ``{(log_type, model): Tenant}``; default maps
    Conversation log -> "conversation", API log -> "api". A row whose key is not mapped raises,
    naming its line."""
    path = Path(path)
    df = _read(path, BURSTGPT_COLUMNS, BURSTGPT_OPTIONAL, numeric=("Timestamp", "Request tokens", "Response tokens"),
               categorical=("Model", "Log Type"))
    rows = len(df)
    ts = _numeric(path, df, "Timestamp", integer=False, max_value=MAX_STAMP_S, unit="s")
    req = _numeric(path, df, "Request tokens", integer=True, max_value=MAX_TOKENS)
    resp = _numeric(path, df, "Response tokens", integer=True, max_value=MAX_TOKENS)
    _sorted(path, ts, df, "Timestamp")
    for col in ("Model", "Log Type"):
        empty = df[col].isna().to_numpy()
        if empty.any():
            raise TraceFormatError(path, int(np.argmax(empty)) + 2, f"column {col!r} is empty (does the row have fewer "
                                                                    f"fields than the header?)")
    model_cat = df["Model"].astype("category")
    log_cat = df["Log Type"].astype("category")
    keep = np.ones(rows, dtype=bool)
    if models is not None:
        keep &= model_cat.isin(list(models)).to_numpy()
    if log_types is not None:
        keep &= log_cat.isin(list(log_types)).to_numpy()
    tmap = DEFAULT_BURSTGPT_TENANTS if tenant_map is None else tenant_map
    tenants: list[Tenant] = []
    log_codes = log_cat.cat.codes.to_numpy().astype(np.int64)
    model_codes = model_cat.cat.codes.to_numpy().astype(np.int64)
    n_models = len(model_cat.cat.categories)
    pair = log_codes * n_models + model_codes
    table = np.full(len(log_cat.cat.categories) * n_models, -1, dtype=np.int64)
    for code in np.unique(pair[keep]):
        key = (str(log_cat.cat.categories[code // n_models]).strip(), str(model_cat.cat.categories[code % n_models]).strip())
        ten = tmap.get(key, tmap.get(key[0]))
        if ten is None:
            line = int(np.argmax(keep & (pair == code))) + 2
            raise TraceFormatError(path, line, f"tenant_map has no tenant for Log Type {_excerpt(key[0])} / Model "
                                               f"{_excerpt(key[1])}; "
                                               f"keys are {list(tmap)}")
        if ten not in tenants:
            tenants.append(ten)
        table[code] = tenants.index(ten)
    if not tenants:
        raise ValueError(f"{path}: no request left after filtering (models={models}, log_types={log_types})")
    # tenants in tenant_map order (conversation, api by default), whatever the file's order
    order = list(dict.fromkeys(tmap.values()))
    ranked = sorted(range(len(tenants)), key=lambda i: order.index(tenants[i]))
    remap = np.empty(len(tenants), dtype=np.int64)
    remap[ranked] = np.arange(len(tenants))
    table = np.where(table >= 0, remap[np.maximum(table, 0)], -1)
    tenants = [tenants[i] for i in ranked]
    return ParsedTrace(str(path), "burstgpt", ts[keep], req[keep].astype(np.int64), resp[keep].astype(np.int64),
                       table[pair[keep]], tuple(tenants), rows, int(rows - keep.sum()),
                       integer_stamps=bool(np.all(ts == np.floor(ts))))


def parse_azure(path, *, tenant: Tenant = DEFAULT_TRACE_TENANT) -> ParsedTrace:
    """Read the Azure LLM inference trace once, processed or raw form (detected from the header)."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt != "azure":
        raise TraceFormatError(path, 1, "this is a BurstGPT file, not the Azure trace (format='burstgpt')")
    cols = _header(path)
    if all(c in cols for c in AZURE_RAW):
        df = _read(path, AZURE_RAW, numeric=("ContextTokens", "GeneratedTokens"))
        stamps = _datetimes(path, df, "TIMESTAMP")
        t = (stamps - stamps.iloc[0]).dt.total_seconds().to_numpy()
        prompt = _numeric(path, df, "ContextTokens", integer=True, max_value=MAX_TOKENS)
        output = _numeric(path, df, "GeneratedTokens", integer=True, max_value=MAX_TOKENS)
        _sorted(path, t, df, "TIMESTAMP")
        if t[-1] > MAX_STAMP_S:
            i = int(np.argmax(t > MAX_STAMP_S))
            raise TraceFormatError(path, i + 2, f"TIMESTAMP {_show(df['TIMESTAMP'].iloc[i])} is {float(t[i]):.3g} s "
                                                f"after the first row: not a plausible trace")
    else:
        df = _read(path, AZURE_PROCESSED, numeric=AZURE_PROCESSED)
        t = _numeric(path, df, "arrived_at", integer=False, max_value=MAX_STAMP_S, unit="s")
        prompt = _numeric(path, df, "num_prefill_tokens", integer=True, max_value=MAX_TOKENS)
        output = _numeric(path, df, "num_decode_tokens", integer=True, max_value=MAX_TOKENS)
        _sorted(path, t, df, "arrived_at")
    zero = (prompt == 0) | (output == 0)
    if zero.any():
        i = int(np.argmax(zero))
        raise TraceFormatError(path, i + 2, "a request with 0 prompt or 0 output tokens")
    n = len(df)
    return ParsedTrace(str(path), "azure", t, prompt.astype(np.int64), output.astype(np.int64), np.zeros(n, np.int64),
                       (tenant,), n, 0, integer_stamps=False)


def parse_mooncake(path, *, tenant: Tenant = DEFAULT_TRACE_TENANT, block_tokens: int = 16) -> ParsedTrace:
    """Read a Mooncake JSON-lines trace once: arrivals (s), lengths, and block keys for
    `block_tokens`-token blocks (a divisor of 512). A line that is not a JSON object with the four
    fields, a negative or non-integer length, a time stamp out of order, or a hash list longer than
    the prompt's blocks raises TraceFormatError naming the file and the line."""
    path = check_trace_file(path, MAX_JSONL_LINE_BYTES)
    if isinstance(block_tokens, bool) or not isinstance(block_tokens, int) or block_tokens < 1 or \
            MOONCAKE_BLOCK_TOKENS % block_tokens:
        raise ValueError(f"block_tokens={block_tokens!r} must divide the trace's {MOONCAKE_BLOCK_TOKENS}-token blocks")
    per = MOONCAKE_BLOCK_TOKENS // block_tokens
    stamps, prompt, output, counts, key_parts = [], [], [], [], []
    with open_trace_bytes(path) as f:
        for line_no, raw in enumerate(f, start=1):
            text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8").strip()
            if not text:
                continue
            try:
                row = json.loads(text)
            except ValueError:
                raise TraceFormatError(path, line_no, f"is not JSON: {_excerpt(text)}") from None
            if not isinstance(row, dict):
                raise TraceFormatError(path, line_no, f"is not a JSON object: {_excerpt(text)}")
            missing = [k for k in MOONCAKE_FIELDS if k not in row]
            if missing:
                raise TraceFormatError(path, line_no, f"missing field(s) {missing}; a Mooncake row has "
                                                      f"{list(MOONCAKE_FIELDS)}")
            t, n_in, n_out, hashes = (row[k] for k in MOONCAKE_FIELDS)
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0 or \
                    t / 1e3 > MAX_STAMP_S:
                raise TraceFormatError(path, line_no, f"timestamp {_show(t) if isinstance(t, (int, float, str)) else _excerpt(str(t))} "
                                                      f"must be milliseconds in [0, {MAX_STAMP_S * 1e3:.0e}]")
            for name, v, lo in (("input_length", n_in, 1), ("output_length", n_out, 1)):
                if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= MAX_TOKENS:
                    shown = _show(v) if isinstance(v, (int, float, str)) else _excerpt(str(v))
                    raise TraceFormatError(path, line_no, f"{name} {shown} must be an integer in {lo}..{MAX_TOKENS:,}")
            if not isinstance(hashes, list) or not all(isinstance(h, int) and not isinstance(h, bool) and
                                                       0 <= h < 1 << 40 for h in hashes):
                raise TraceFormatError(path, line_no, f"hash_ids must be a list of integers in [0, 2**40): "
                                                      f"{_excerpt(str(hashes))}")
            n_blocks = -(-n_in // MOONCAKE_BLOCK_TOKENS)
            if len(hashes) > n_blocks:
                raise TraceFormatError(path, line_no, f"hash_ids has {len(hashes)} hashes, more than the {n_blocks} "
                                                      f"blocks of {MOONCAKE_BLOCK_TOKENS} tokens in its {n_in:,}-token "
                                                      f"prompt")
            if stamps and t < stamps[-1]:
                raise TraceFormatError(path, line_no, f"timestamp {_show(t)} goes back in time (previous row: "
                                                      f"{_show(stamps[-1])}); the release is sorted")
            n_keys = min(n_in // block_tokens, len(hashes) * per)
            stamps.append(t)
            prompt.append(n_in)
            output.append(n_out)
            counts.append(n_keys)
            key_parts.append(np.repeat(np.asarray(hashes, dtype=np.int64) * per, per)[:n_keys] +
                             np.tile(np.arange(per, dtype=np.int64), len(hashes))[:n_keys])
    if not stamps:
        raise TraceFormatError(path, None, "the file has no rows")
    n = len(stamps)
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    keys = np.concatenate(key_parts) if key_parts else np.zeros(0, dtype=np.int64)
    return ParsedTrace(str(path), "mooncake", np.asarray(stamps, dtype=np.float64) / 1e3,
                       np.asarray(prompt, dtype=np.int64), np.asarray(output, dtype=np.int64), np.zeros(n, np.int64),
                       (tenant,), n, 0, integer_stamps=False, key_ptr=ptr, block_keys=keys,
                       key_block_tokens=block_tokens)


def load_mooncake(path, *, tenant: Tenant = DEFAULT_TRACE_TENANT, block_tokens: int = 16, start_s: float = 0.0,
                  duration_s: float | None = None, speedup: float = 1.0, seed=0) -> tuple[Workload, LoadReport]:
    """Load a Mooncake trace with its block keys (see :func:`parse_mooncake`). Its rate changes only
    through `speedup` (time): thinning or copying would break the prefixes its requests share."""
    _check_window_options(start_s, duration_s, speedup, 1.0)
    return window(parse_mooncake(path, tenant=tenant, block_tokens=block_tokens), start_s=start_s,
                  duration_s=duration_s, speedup=speedup, seed=seed)


# ---------------------------------------------------------------------------------- windows
def window(trace: ParsedTrace, *, start_s: float = 0.0, duration_s: float | None = None, speedup: float = 1.0,
           rate_scale: float = 1.0, keep_failed: bool = False, seed=0) -> tuple[Workload, LoadReport]:
    """The requests of [start_s, start_s + duration_s) of the trace (trace seconds), shifted to start
    at 0, divided by `speedup`, thinned or copied by `rate_scale`; ties spread with `seed`'s
    generator. An empty window is an empty workload with the trace's tenants."""
    start_s = float(start_s)
    if not math.isfinite(start_s) or start_s < 0:
        raise ValueError(f"start_s={start_s!r} must be >= 0")
    duration_s = _check_positive("duration_s", duration_s, allow_none=True)
    speedup = _check_positive("speedup", speedup)
    rate_scale = _check_positive("rate_scale", rate_scale)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    ts = trace.stamps
    end = math.inf if duration_s is None else start_s + duration_s
    if trace.integer_stamps:  # a second's ties may spread into the window from the second before
        lo, hi = np.searchsorted(ts, [math.floor(start_s) - 1, math.ceil(end) if math.isfinite(end) else math.inf])
        t_arr = _spread_ties(ts[lo:hi], rng)
    else:
        lo, hi = np.searchsorted(ts, [start_s, end])
        t_arr = ts[lo:hi].copy()
    sel = (t_arr >= start_s) & (t_arr < end)
    prompt, output, tenant = trace.prompt[lo:hi][sel], trace.output[lo:hi][sel], trace.tenant[lo:hi][sel]
    rows = np.arange(lo, hi)[sel]  # rows of the trace, for its block keys
    t_arr = t_arr[sel]
    failed = output == 0
    n_failed = int(failed.sum())
    if not keep_failed:
        t_arr, prompt, output, tenant, rows = (t_arr[~failed], prompt[~failed], output[~failed], tenant[~failed],
                                               rows[~failed])
    prompt = np.maximum(prompt, 1)  # a 0-token prompt still costs one position
    output = np.maximum(output, 1)
    arr = (t_arr - start_s) / speedup
    if trace.has_keys and rate_scale != 1.0:
        raise ValueError(f"{trace.path}: its requests share prefixes by their block keys; thinning or copying them "
                         f"would break those prefixes: change its rate through time (speedup, or load= in the trace "
                         f"task), not rate_scale")
    arr, (prompt, output, tenant, rows), changed = _rescale(arr, [prompt, output, tenant, rows], rate_scale, rng)
    ptr = keys = None
    if trace.has_keys:
        ptr, keys = take_keys(trace.key_ptr, trace.block_keys, rows)
    wl = Workload(arr, prompt, output, tenant, trace.tenants, name=f"{trace.format}:{Path(trace.path).name}",
                  key_ptr=ptr, block_keys=keys, key_block_tokens=trace.key_block_tokens)
    counts = np.bincount(tenant, minlength=len(trace.tenants))
    report = LoadReport(trace.path, trace.rows, len(wl), 0 if keep_failed else n_failed, n_failed if keep_failed else 0,
                        int(trace.rows - sel.sum()), changed, {t.name: int(c) for t, c in zip(trace.tenants, counts)})
    return wl, report


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
    _check_window_options(start_s, duration_s, speedup, rate_scale)
    return window(parse_burstgpt(path, models=models, log_types=log_types, tenant_map=tenant_map), start_s=start_s,
                  duration_s=duration_s, speedup=speedup, rate_scale=rate_scale, keep_failed=keep_failed, seed=seed)


def load_azure(path, *, tenant: Tenant = DEFAULT_TRACE_TENANT, start_s: float = 0.0, duration_s: float | None = None,
               speedup: float = 1.0, rate_scale: float = 1.0, seed=0) -> tuple[Workload, LoadReport]:
    """Load the Azure LLM inference trace, processed or raw form (detected from the header)."""
    _check_window_options(start_s, duration_s, speedup, rate_scale)
    return window(parse_azure(path, tenant=tenant), start_s=start_s, duration_s=duration_s, speedup=speedup,
                  rate_scale=rate_scale, seed=seed)


def _check_window_options(start_s, duration_s, speedup, rate_scale) -> None:
    """Bad options fail before the file is read."""
    if isinstance(start_s, bool) or not isinstance(start_s, (int, float)) or not math.isfinite(start_s) or start_s < 0:
        raise ValueError(f"start_s={start_s!r} must be >= 0")
    _check_positive("duration_s", duration_s, allow_none=True)
    _check_positive("speedup", speedup)
    _check_positive("rate_scale", rate_scale)
