"""Multi-turn traffic: conversations that resend their context, and shared system prompts.

Most of today's traffic repeats itself: a chat turn resends the whole conversation so far, and
every request of an application starts with the same system prompt. :func:`session_requests`
generates such traffic with **block keys** (see :class:`~igym_marl.sim.Workload`), so that the
simulator's prefix cache can reuse what an earlier turn or another user of the application computed.

A :class:`SessionModel` describes one tenant's conversations:

* ``system_prompts`` applications, each with its own system prompt of ``system_prompt_tokens``
  tokens (uniform in the range), chosen by a session with Zipf popularity (exponent
  ``popularity``; 0: uniform);
* sessions start as a Gamma process at the tenant's request rate divided by the mean number of
  turns, so requests arrive at the tenant's rate;
* a session has 1 + Geometric turns with mean ``mean_turns``; turn k + 1 arrives ``think_s``
  (log-normal: median, log-sd) after turn k arrived: the answer's time plus the user's;
* turn 1's prompt is the system prompt plus a first message; turn k + 1's is turn k's prompt, its
  answer and a new message (``first`` and ``followup`` give (message, answer) lengths); a session
  ends before a turn whose prompt and answer would pass ``max_context`` tokens;
* keys name the session's token stream block by block: a block wholly inside the system prompt is
  the application's (shared by all its sessions), any later block the session's own. A turn's keys
  cover its prompt and its answer, so the next turn finds the answer's blocks too (vLLM caches
  generated tokens' blocks as it caches the prompt's).

The generator is open-loop, as a trace replay is: turn times do not wait for the simulated answer.

``MOONCAKE_SESSIONS`` is calibrated to Mooncake's conversation trace (data/traces/; the figures
and how they were read are in the constants' comments and docs/workloads.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..sim.types import Tenant, Workload
from .generators import QuantileLengths, _positive, _rng, gamma_arrivals

KEY_SPAN = 1 << 24  # blocks of one stream: a stream's keys are its index x KEY_SPAN + its block


@dataclass(frozen=True)
class SessionModel:
    """One tenant's conversations (see the module docstring). Lengths in tokens, times in seconds."""

    system_prompts: int
    system_prompt_tokens: tuple[int, int]
    mean_turns: float
    think_s: tuple[float, float]  # log-normal median (s) and log-sd of the gap between a turn and the next
    first: object  # .sample(rng, n) -> (first message tokens, answer tokens)
    followup: object  # .sample(rng, n) -> (new message tokens, answer tokens)
    popularity: float = 0.0
    max_context: int = 131072
    arrival_shape: float = 1.0  # Gamma shape of session starts (1: Poisson)

    def __post_init__(self):
        if isinstance(self.system_prompts, bool) or not isinstance(self.system_prompts, int) or self.system_prompts < 1:
            raise ValueError(f"system_prompts={self.system_prompts!r} must be an integer >= 1")
        lo, hi = self.system_prompt_tokens
        if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi):
            raise ValueError(f"system_prompt_tokens={self.system_prompt_tokens!r} must be integers 0 <= lo <= hi")
        if not (isinstance(self.mean_turns, (int, float)) and 1.0 <= self.mean_turns <= 1000.0):
            raise ValueError(f"mean_turns={self.mean_turns!r} must be a number in [1, 1000]")
        _positive("think_s median", self.think_s[0])
        if not 0.0 <= self.think_s[1] <= 5.0:
            raise ValueError(f"think_s log-sd={self.think_s[1]!r} must be in [0, 5]")
        if not 0.0 <= self.popularity <= 5.0:
            raise ValueError(f"popularity={self.popularity!r} must be a Zipf exponent in [0, 5]")
        if self.max_context <= hi + 2:
            raise ValueError(f"max_context={self.max_context!r} must leave room beyond the system prompt")
        _positive("arrival_shape", self.arrival_shape)


def session_requests(model: SessionModel, rate: np.ndarray, dt: float, rng, stream: int = 0,
                     block_tokens: int = 16) -> tuple:
    """One tenant's requests for a rate profile (`rate[i]` requests/s on [i dt, (i + 1) dt)).

    Returns (arrival_s, prompt_tokens, output_tokens, (key_ptr, block_keys)), arrivals sorted,
    ready for ``generators._assemble``; `stream` (0, 1, ...) keeps this tenant's keys apart from
    other tenants' in the same workload."""
    rng = _rng(rng)
    rate = np.asarray(rate, dtype=np.float64)
    horizon = rate.shape[0] * dt
    starts = gamma_arrivals(rng, rate / model.mean_turns, dt, model.arrival_shape)
    n_s = starts.shape[0]
    lo, hi = model.system_prompt_tokens
    sys_len = rng.integers(lo, hi + 1, model.system_prompts)
    weights = 1.0 / np.arange(1, model.system_prompts + 1) ** model.popularity
    app = rng.choice(model.system_prompts, n_s, p=weights / weights.sum())
    q = (model.mean_turns - 1.0) / model.mean_turns  # P(another turn)
    turns = 1 + (rng.geometric(1.0 - q, n_s) - 1 if q > 0 else np.zeros(n_s, dtype=np.int64))
    n_follow = int(turns.sum() - n_s)
    msg1, out1 = model.first.sample(rng, n_s)
    msgk, outk = model.followup.sample(rng, max(n_follow, 1))
    think = rng.lognormal(math.log(model.think_s[0]), model.think_s[1], max(n_follow, 1))
    base = (stream + 1) << 40  # this tenant's key space
    arr, prompt, out, counts, parts = [], [], [], [], []
    f = 0
    for s in range(n_s):
        a = int(app[s])
        t = float(starts[s])
        context = int(sys_len[a])  # tokens of the conversation so far (the system prompt)
        for k in range(int(turns[s])):
            if k == 0:
                msg, ans = int(msg1[s]), int(out1[s])
            else:
                msg, ans = int(msgk[f]), int(outk[f])
                t += float(think[f])
                f += 1
            p = context + msg
            if t >= horizon or p + ans > model.max_context:
                f += int(turns[s]) - 1 - k if k else int(turns[s]) - 1
                break
            n_keys = (p + ans) // block_tokens
            shared = min(int(sys_len[a]) // block_tokens, n_keys)
            parts.append(np.concatenate([base + a * KEY_SPAN + np.arange(shared),
                                         base + (model.system_prompts + s) * KEY_SPAN + np.arange(shared, n_keys)]))
            counts.append(n_keys)
            arr.append(t)
            prompt.append(p)
            out.append(ans)
            context = p + ans
    order = np.argsort(np.asarray(arr, dtype=np.float64), kind="stable")
    arr_a = np.asarray(arr, dtype=np.float64)[order]
    ptr = np.concatenate([[0], np.cumsum(np.asarray(counts, dtype=np.int64))]).astype(np.int64)
    keys = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)
    from ..sim.types import take_keys
    ptr, keys = take_keys(ptr, keys, order) if len(arr) else (ptr, keys)
    return (arr_a, np.asarray(prompt, dtype=np.int64)[order], np.asarray(out, dtype=np.int64)[order], (ptr, keys))


def session_workload(model: SessionModel, rate_rps: float, duration_s: float, seed,
                     tenant: Tenant | None = None, block_tokens: int = 16, name: str = "sessions") -> Workload:
    """Conversations arriving at `rate_rps` requests/s on average for `duration_s` seconds."""
    from .generators import DEFAULT_TENANT, _assemble
    rate_rps = _positive("rate_rps", rate_rps)
    duration_s = _positive("duration_s", duration_s)
    rng = _rng(seed)
    a, p, o, keys = session_requests(model, np.full(int(math.ceil(duration_s)), rate_rps), 1.0, rng,
                                     block_tokens=block_tokens)
    tenant = tenant or DEFAULT_TENANT
    return _assemble([(a, p, o, np.zeros(a.shape[0], dtype=np.int64), keys)], (tenant,), name, block_tokens)


# ---------------------------------------------------------------------------------- Mooncake
# Read off data/traces/mooncake_conversation_trace.jsonl.gz (12,031 requests, one hour):
# * every prompt begins with the same 512-token block, no two conversations share their second,
#   and the shortest prompt is 891 tokens: one system prompt of about 880 tokens;
# * a request whose prompt extends an earlier request's whole prompt is that conversation's next
#   turn: 3,967 of them (33 %), so 1.49 turns per conversation seen in the hour; 1.52 makes the
#   generated share of repeated prompt blocks the trace's 36.6 % (the hour cuts the conversations
#   that cross its edges);
# * the gap between a turn's arrival and the next one's: median 144 s, p10 48 s, p90 528 s
#   (log-sd 0.93 from p10 and p90);
# * first-turn prompts less the system prompt, next turns' new tokens beyond the previous prompt
#   and answer (clipped at 1: 10 % resend less than the whole answer), and all answers: the
#   percentiles below (0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100).
_Q = (0.0, 0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99, 0.995, 0.999, 1.0)
MOONCAKE_FIRST = QuantileLengths(
    _Q, prompt_knots=(11.0, 14.0, 18.0, 28.0, 608.0, 5105.0, 13476.0, 25661.0, 38026.0, 86331.0, 108286.0, 119756.0,
                      125315.0),
    output_knots=(1.0, 3.0, 9.0, 23.0, 162.0, 348.0, 464.0, 578.0, 667.0, 996.0, 1203.0, 2000.0, 2000.0))
MOONCAKE_FOLLOWUP = QuantileLengths(
    _Q, prompt_knots=(1.0, 1.0, 1.0, 1.0, 10.0, 46.0, 489.0, 4228.0, 6907.0, 16705.0, 22190.0, 37518.0, 91467.0),
    output_knots=(1.0, 3.0, 13.0, 27.0, 150.0, 355.0, 492.0, 633.0, 773.0, 1502.0, 1998.0, 2000.0, 2000.0))
MOONCAKE_SESSIONS = SessionModel(system_prompts=1, system_prompt_tokens=(880, 880), mean_turns=1.52,
                                 think_s=(144.0, 0.93), first=MOONCAKE_FIRST, followup=MOONCAKE_FOLLOWUP)


def prefix_repeat_share(workload: Workload, block_tokens: int = 16) -> float:
    """The share of prompt blocks (full `block_tokens` blocks) whose key an earlier request's prompt
    or answer already had: what an unbounded prefix cache could serve, at the workload's keys."""
    seen: set = set()
    hit = total = 0
    for i in range(len(workload)):
        keys = workload.keys_of(i)
        n_prompt = min(int(workload.prompt_tokens[i]) // block_tokens, keys.shape[0])
        for j in range(n_prompt):
            total += 1
            if int(keys[j]) in seen:
                hit += 1
        seen.update(int(k) for k in keys)
    return hit / total if total else 0.0


__all__ = ["SessionModel", "session_requests", "session_workload", "MOONCAKE_SESSIONS", "prefix_repeat_share"]
