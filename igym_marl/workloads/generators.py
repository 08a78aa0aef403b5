"""Synthetic traffic: Poisson and Gamma arrivals, BurstGPT- and Azure-calibrated generators.

Every generator takes a seed (or numpy Generator) and returns a :class:`~igym_marl.sim.Workload`;
the same seed always gives the same traffic. docs/workloads.md compares the calibrated generators
with the real traffic they imitate.

Arrival processes are **Gamma renewal processes in operational time**: with a rate profile r(t),
arrivals are the times where the integrated rate Lambda(t) crosses the partial sums of i.i.d.
Gamma(shape k, mean 1) gaps. k = 1 is a (time-varying) Poisson process; k < 1 is burstier
(inter-arrival CV = 1 / sqrt(k)).

Length models and their sources:

* ``SHAREGPT_LENGTHS``: the vLLM paper (Kwon et al., SOSP 2023, section 6.1): ShareGPT mean
  input 161.31 and output 337.99 tokens; log-normal with those means (log-sd 1.0 / 0.9).
* ``BurstGPTLengths``: requests Zipf-like, pdf proportional to L^-1.1 on [1, 8192] tokens (the
  exponent of the BurstGPT authors' own generator; on that range the mean is 622 tokens, the
  published mean of BurstGPT_1). Responses grow with the request: conditional mean
  2.65 x L^0.675 tokens, the power law through the published ~125 tokens at 300 request tokens
  and ~450 at 2,000, times a log-normal factor (log-sd 0.7, mean 1). Conversation (ChatGPT)
  responses are bimodal: 20 % are short answers (log-normal, mean 12 tokens).
* ``AZURE_CONV_LENGTHS``: a quantile fit of the Azure LLM inference trace 2023 conversation hour
  (piecewise-linear inverse CDF through its 1st..99th percentiles; docs/workloads.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..sim.types import Tenant, Workload, take_keys


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _positive(name, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not math.isfinite(value) \
            or value <= 0:
        raise ValueError(f"{name}={value!r} must be a positive number")
    return float(value)


# ---------------------------------------------------------------------------------- lengths
@dataclass(frozen=True)
class LengthModel:
    """Log-normal prompt and output lengths with given means (tokens) and log-sd."""

    prompt_mean: float
    prompt_sigma: float
    output_mean: float
    output_sigma: float
    prompt_max: int = 4096
    output_max: int = 2048

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        def draw(mean, sigma, lo, hi):
            mu = math.log(mean) - sigma * sigma / 2.0
            return np.clip(np.rint(rng.lognormal(mu, sigma, n)), lo, hi).astype(np.int64)
        return (draw(self.prompt_mean, self.prompt_sigma, 4, self.prompt_max),
                draw(self.output_mean, self.output_sigma, 1, self.output_max))


SHAREGPT_LENGTHS = LengthModel(161.31, 1.0, 337.99, 0.9)


@dataclass(frozen=True)
class BurstGPTLengths:
    """Zipf-like requests; responses growing with the request, bimodal when `chat`."""

    zipf_a: float = 1.1
    min_tokens: int = 1
    max_tokens: int = 8192
    resp_coef: float = 2.65
    resp_exp: float = 0.675
    resp_sigma: float = 0.7
    chat: bool = True
    short_share: float = 0.2
    short_mean: float = 12.0
    resp_max: int = 4096

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        a, lo, hi = self.zipf_a, float(self.min_tokens), float(self.max_tokens + 1)
        u = rng.random(n)
        req = np.floor((lo ** (1 - a) + u * (hi ** (1 - a) - lo ** (1 - a))) ** (1 / (1 - a)))
        req = np.clip(req, self.min_tokens, self.max_tokens).astype(np.int64)
        s = self.resp_sigma
        resp = self.resp_coef * req ** self.resp_exp * rng.lognormal(-s * s / 2, s, n)
        if self.chat:
            short = rng.random(n) < self.short_share
            resp = np.where(short, rng.lognormal(math.log(self.short_mean) - 0.125, 0.5, n), resp)
        return req, np.clip(np.rint(resp), 1, self.resp_max).astype(np.int64)


@dataclass(frozen=True)
class QuantileLengths:
    """Piecewise-linear inverse CDFs through (probability, tokens) knots."""

    probs: tuple[float, ...]
    prompt_knots: tuple[float, ...]
    output_knots: tuple[float, ...]

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        p = np.asarray(self.probs)
        a = np.interp(rng.random(n), p, self.prompt_knots)
        b = np.interp(rng.random(n), p, self.output_knots)
        return np.maximum(np.rint(a), 1).astype(np.int64), np.maximum(np.rint(b), 1).astype(np.int64)


@dataclass(frozen=True, eq=False)
class EmpiricalLengths:
    """(prompt, output) pairs resampled with replacement from observed requests, so a trace's
    capacity is measured with its own length mix, correlation included."""

    prompt: np.ndarray
    output: np.ndarray

    def __post_init__(self):
        if self.prompt.shape != self.output.shape or self.prompt.size == 0:
            raise ValueError(f"EmpiricalLengths needs equally long, non-empty prompt and output arrays; got "
                             f"{self.prompt.shape} and {self.output.shape}")

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        i = rng.integers(0, self.prompt.size, n)
        return np.maximum(self.prompt[i], 1).astype(np.int64), np.maximum(self.output[i], 1).astype(np.int64)


# Fitted to data/traces/azure_conv_2023_1h.csv (19,366 requests): its percentiles
# 0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100.
AZURE_CONV_LENGTHS = QuantileLengths(
    probs=(0.0, 0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99, 0.995, 0.999, 1.0),
    prompt_knots=(2.0, 29.0, 181.0, 207.0, 396.0, 1020.0, 1189.0, 2734.5, 4083.0, 4142.0, 4831.0, 6179.0, 14050.0),
    output_knots=(7.0, 16.0, 41.0, 54.0, 85.0, 129.0, 395.0, 424.0, 451.0, 601.0, 643.0, 954.0, 1000.0),
)


# ---------------------------------------------------------------------------------- arrivals
def gamma_arrivals(rng: np.random.Generator, rate_grid: np.ndarray, dt: float, shape: float) -> np.ndarray:
    """Gamma renewal arrivals under a piecewise-constant rate (rate_grid[i] req/s on [i dt, (i+1) dt))."""
    shape = _positive("shape", shape)
    rate_grid = np.asarray(rate_grid, dtype=np.float64)
    if rate_grid.ndim != 1 or np.any(rate_grid < 0) or not np.all(np.isfinite(rate_grid)):
        raise ValueError("rate profile must be a 1-D array of finite rates >= 0")
    lam = np.concatenate([[0.0], np.cumsum(rate_grid * dt)])  # integrated rate at grid points
    total = lam[-1]
    if total <= 0:
        return np.zeros(0)
    n_guess = int(total + 6 * math.sqrt(total / shape) + 16)
    gaps = rng.gamma(shape, 1.0 / shape, n_guess)
    ops = np.cumsum(gaps)
    while ops[-1] < total:  # rare: draw more
        ops = np.concatenate([ops, ops[-1] + np.cumsum(rng.gamma(shape, 1.0 / shape, n_guess))])
    ops = ops[ops < total]
    times = np.interp(ops, lam, np.arange(lam.shape[0]) * dt)
    return times


def _assemble(parts, tenants, name, key_block_tokens: int = 16) -> Workload:
    """parts: list of (arrival_s, prompt, output, tenant_index[, (key_ptr, block_keys)]) arrays -> one
    sorted Workload. Parts with block keys keep them (a part without keys has none per request); each
    part's keys must already be distinct from the other parts'."""
    arr = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
    cols = [np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, np.int64) for i in (1, 2, 3)]
    order = np.argsort(arr, kind="stable")
    ptr = keys = None
    if any(len(p) > 4 for p in parts):
        counts, blocks = [], []
        for p in parts:
            if len(p) > 4:
                counts.append(np.diff(p[4][0]))
                blocks.append(p[4][1])
            else:
                counts.append(np.zeros(p[0].shape[0], dtype=np.int64))
        all_ptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
        ptr, keys = take_keys(all_ptr, np.concatenate(blocks).astype(np.int64), order)
    return Workload(arr[order], *(c[order] for c in cols), tenants=tuple(tenants), name=name, key_ptr=ptr,
                    block_keys=keys, key_block_tokens=key_block_tokens)


# Client patience (Tenant.timeout_s): people watching a chat give up after about 10 s (Nielsen's
# limit for keeping a user's attention on a dialogue, "Usability Engineering", 1993); API clients
# wait 60 s (the default read timeout of common reverse proxies such as nginx); batch clients 600 s
# (the OpenAI Python SDK's default request timeout).
USER_TIMEOUT_S, API_TIMEOUT_S, BATCH_TIMEOUT_S = 10.0, 60.0, 600.0
DEFAULT_TENANT = Tenant("default", ttft_slo_ms=500.0, tpot_slo_ms=100.0, spec_acceptance=0.6, timeout_s=API_TIMEOUT_S)


def poisson_workload(rate_rps: float, duration_s: float, seed, lengths=SHAREGPT_LENGTHS,
                     tenants: tuple[Tenant, ...] = (DEFAULT_TENANT,), name: str = "poisson") -> Workload:
    """Poisson arrivals at `rate_rps` for `duration_s` seconds; tenants drawn uniformly."""
    return gamma_workload(rate_rps, duration_s, seed, shape=1.0, lengths=lengths, tenants=tenants, name=name)


def gamma_workload(rate_rps: float, duration_s: float, seed, shape: float = 0.5, lengths=SHAREGPT_LENGTHS,
                   tenants: tuple[Tenant, ...] = (DEFAULT_TENANT,), name: str = "gamma") -> Workload:
    """Gamma renewal arrivals at a fixed mean rate (CV = 1/sqrt(shape)); tenants drawn uniformly."""
    rate_rps = _positive("rate_rps", rate_rps)
    duration_s = _positive("duration_s", duration_s)
    rng = _rng(seed)
    arr = gamma_arrivals(rng, np.array([rate_rps]), duration_s, shape)
    p, o = lengths.sample(rng, arr.shape[0])
    return _assemble([(arr, p, o, rng.integers(0, len(tenants), arr.shape[0]))], tenants, name)


@dataclass(frozen=True)
class TenantStream:
    """One tenant's traffic: a rate profile (req/s per grid step), burstiness and lengths; with
    `sessions` (a :class:`~igym_marl.workloads.sessions.SessionModel`), multi-turn conversations
    at that request rate instead, `lengths` and `shape` unused."""

    tenant: Tenant
    rate: np.ndarray  # req/s on each grid step
    shape: float
    lengths: object
    sessions: object | None = None


def streams_workload(streams: list[TenantStream], dt: float, seed, name: str = "streams") -> Workload:
    """Superpose tenant streams (each a Gamma process under its own rate profile, or conversations)."""
    rng = _rng(seed)
    parts = []
    for i, s in enumerate(streams):
        if s.sessions is not None:
            from .sessions import session_requests
            a, p, o, keys = session_requests(s.sessions, s.rate, dt, rng, stream=i)
            parts.append((a, p, o, np.full(a.shape[0], i, dtype=np.int64), keys))
            continue
        arr = gamma_arrivals(rng, s.rate, dt, s.shape)
        p, o = s.lengths.sample(rng, arr.shape[0])
        parts.append((arr, p, o, np.full(arr.shape[0], i, dtype=np.int64)))
    return _assemble(parts, [s.tenant for s in streams], name)


# ---------------------------------------------------------------------------------- BurstGPT
# Draft acceptance: lower for open chat than for API/code traffic (Spec-Bench, Xia et al. 2024).
CONVERSATION = Tenant("conversation", ttft_slo_ms=300.0, tpot_slo_ms=100.0, priority=1, spec_acceptance=0.6,
                      timeout_s=USER_TIMEOUT_S)
API = Tenant("api", ttft_slo_ms=1000.0, tpot_slo_ms=150.0, priority=0, spec_acceptance=0.65, timeout_s=API_TIMEOUT_S)


@dataclass(frozen=True)
class BurstGPTProfile:
    """The BurstGPT-shaped rate profile at native time scale (seconds of a real day).

    mean_rps: the trace's mean request rate (0.271 req/s for BurstGPT_1).
    conversation_share: share of requests from conversation logs (our choice; not published).
    Conversation follows a weekday daytime cycle with two daily peaks (10:00 and 15:00, 2.5 h
    wide) near zero at night and half the traffic on weekends; API traffic is erratic (hourly
    log-normal level, log-sd 0.8) with night spikes (on average one 30-min spike per night).
    Storms: Poisson onsets (`storms_per_day`), log-normal durations (median `storm_median_s`),
    peak rate `storm_peak` x mean_rps (uniform in the range), on either tenant.
    Local burstiness: Gamma shapes 0.529 (conversation) and 1.416 (API), Gamma fits of
    BurstGPT_1's conversation and API inter-arrivals (docs/workloads.md).
    """

    mean_rps: float = 0.271
    conversation_share: float = 0.6
    storms_per_day: float = 4.0
    storm_median_s: float = 90.0
    storm_peak: tuple[float, float] = (20.0, 70.0)
    conversation_shape: float = 0.529
    api_shape: float = 1.416

    def rates(self, rng: np.random.Generator, duration_s: float, dt: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        n = int(math.ceil(duration_s / dt))
        t = np.arange(n) * dt
        hour = (t / 3600.0) % 24.0
        day = (t // 86400).astype(int)
        weekend = (day % 7) >= 5
        bumps = np.exp(-0.5 * ((hour - 10.0) / 2.5) ** 2) + np.exp(-0.5 * ((hour - 15.0) / 2.5) ** 2)
        conv = (0.03 + bumps) * np.where(weekend, 0.5, 1.0)
        n_hours = int(math.ceil(duration_s / 3600.0)) + 1
        level = rng.lognormal(-0.32, 0.8, n_hours)[(t // 3600).astype(int)]
        api = level.copy()
        for d in range(int(math.ceil(duration_s / 86400.0)) + 1):
            for _ in range(rng.poisson(1.0)):
                start = d * 86400 + rng.uniform(0, 6 * 3600)  # between midnight and 6:00
                sel = (t >= start) & (t < start + 1800)
                api[sel] += rng.uniform(2.0, 6.0)
        conv *= self.conversation_share / conv.mean()
        api *= (1 - self.conversation_share) / api.mean()
        storms_c, storms_a = np.zeros(n), np.zeros(n)
        for _ in range(rng.poisson(self.storms_per_day * duration_s / 86400.0)):
            start = rng.uniform(0, duration_s)
            length = rng.lognormal(math.log(self.storm_median_s), 0.6)
            peak = rng.uniform(*self.storm_peak)
            target = storms_c if rng.random() < self.conversation_share else storms_a
            target[(t >= start) & (t < start + length)] += peak
        scale = self.mean_rps / (conv.mean() + api.mean() + storms_c.mean() + storms_a.mean())
        return (conv + storms_c) * scale, (api + storms_a) * scale


def burstgpt_workload(duration_s: float, seed, profile: BurstGPTProfile = BurstGPTProfile(),
                      lengths_conversation=BurstGPTLengths(chat=True), lengths_api=BurstGPTLengths(chat=False),
                      tenants: tuple[Tenant, Tenant] = (CONVERSATION, API), dt: float = 1.0) -> Workload:
    """BurstGPT-calibrated traffic at native time scale (see BurstGPTProfile)."""
    duration_s = _positive("duration_s", duration_s)
    rng = _rng(seed)
    rc, ra = profile.rates(rng, duration_s, dt)
    return streams_workload([TenantStream(tenants[0], rc, profile.conversation_shape, lengths_conversation),
                             TenantStream(tenants[1], ra, profile.api_shape, lengths_api)], dt, rng, name="burstgpt")


# Azure conversation hour: mean rate 5.53 req/s; its per-minute rate has log-sd 0.22 and lag-1
# autocorrelation 0.85 (a slow wobble), the gaps within it a CV near 1 (Gamma shape 0.95).
AZURE_CONV_RATE_RPS = 5.53
AZURE_CONV_SHAPE = 0.95
AZURE_CONV_WOBBLE = (0.22, 0.85)  # log-sd and lag-1 autocorrelation of the per-minute rate


def azure_conv_workload(duration_s: float, seed, rate_rps: float = AZURE_CONV_RATE_RPS,
                        tenants: tuple[Tenant, ...] = (DEFAULT_TENANT,)) -> Workload:
    """Traffic shaped like the Azure 2023 conversation hour: Gamma arrivals under a per-minute
    log-normal AR(1) rate wobble, and quantile-fitted lengths."""
    duration_s = _positive("duration_s", duration_s)
    rate_rps = _positive("rate_rps", rate_rps)
    rng = _rng(seed)
    sd, rho = AZURE_CONV_WOBBLE
    n = int(math.ceil(duration_s / 60.0))
    x = np.empty(n)
    x[0] = rng.normal(0.0, sd)
    for i in range(1, n):
        x[i] = rho * x[i - 1] + rng.normal(0.0, sd * math.sqrt(1 - rho * rho))
    rate = rate_rps * np.exp(x) / np.exp(x).mean()
    stream = TenantStream(tenants[0], np.repeat(rate, 60)[: int(math.ceil(duration_s))], AZURE_CONV_SHAPE,
                          AZURE_CONV_LENGTHS)
    return streams_workload([stream], 1.0, rng, name="azure-conv")
