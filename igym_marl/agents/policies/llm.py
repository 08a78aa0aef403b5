"""A zero-shot LLM controller over any OpenAI-compatible chat-completions endpoint.

Configuration (arguments win over environment variables):

* base URL: ``base_url`` or ``IGYM_LLM_BASE_URL`` (else ``OPENAI_BASE_URL``), e.g.
  ``http://localhost:8000/v1``; the policy POSTs to ``{base_url}/chat/completions``;
* model: ``model`` or ``IGYM_LLM_MODEL`` (else ``OPENAI_MODEL``);
* key: ``IGYM_LLM_API_KEY`` (else ``OPENAI_API_KEY``) or the first line of ``api_key_file``, sent
  as a Bearer token if set. Never a command-line argument (other users of the machine can read
  those in the process list), and never written to errors, logs or records.

Each window the policy sends the last window's observation (the InferenceGym fields with units,
every tenant's SLOs and latencies, the current knobs) and asks for a JSON object with exactly the
six InferenceGym fields, each restricted to the agents' action levels. The reply is validated
strictly (no clamping, no nearest-level rounding). An invalid reply is retried once.

The LLM can never take an evaluation down: a window has a deadline (``timeout_s``, for all its
attempts together, enforced by closing the connection, so a server trickling bytes costs at most
the deadline), a reply is read up to ``MAX_RESPONSE_BYTES``, and any transport or parse failure
-- refused connection, bad status line, truncated or non-UTF-8 body, absurd numbers -- makes the
window fall back to the tuned heuristic's decision. ``stats()`` counts calls, retries, fallbacks
and deadline expiries (evaluate.py reports them).
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import socket
import threading
import time
import urllib.parse
from pathlib import Path

from igym_marl.sim import KNOB_LEVELS, Knobs, level_index

from igym_marl.agents.policies.base import KnobPolicy, metrics_of
from igym_marl.agents.policies.heuristic import HeuristicPolicy

# The knobs in the InferenceGym field order, with the simulator's levels.
LEVELS = {k: list(KNOB_LEVELS[k]) for k in ("batch_cap", "prefill_decode_split", "kv_budget_fraction",
                                            "quantization_tier", "speculation_depth", "priority_routing")}

SYSTEM = """You operate an LLM inference server (a vLLM-class engine serving {model} on {gpus}).
Every {window:g} s you choose its configuration for the next window. Goal: maximise the share of
requests that meet their latency SLOs (TTFT = time to first token, TPOT = time per output token),
weighted by tenant weight, times answer quality (FP16 1.0, INT8 0.995, INT4 0.97), while reserving
little GPU memory (weights + KV-cache pool).
Knobs and trade-offs:
- batch_cap: max running sequences. Larger drains queues faster but slows every token (TPOT).
- prefill_decode_split: true = chunked prefill (smooth TPOT, long prompts start later).
- kv_budget_fraction: share of the KV pool usable; too small causes preemptions and rejects long
  prompts; large costs memory.
- quantization_tier: INT8/INT4 use less memory and decode faster at small batch, cost quality,
  are slower at large batch; every switch pauses the engine ~2-3 s.
- speculation_depth: draft tokens per step; helps at very small batches only, hurts under load.
- priority_routing: true = higher-priority tenants admitted first and preempted last (can starve
  low-priority tenants).
Tenants: {tenants}
Answer with ONLY a JSON object with exactly these keys and values from these lists:
{levels}"""


UNITS = {"queue_depth": "requests", "active_requests": "requests", "kv_cache_occupancy": "fraction",
         "mean_prompt_length": "tokens", "p50_ttft_ms": "ms", "p99_ttft_ms": "ms", "p50_itl_ms": "ms",
         "throughput_tps": "tokens/s", "slo_compliance_rate": "fraction (episode so far)",
         "gpu_memory_used_gb": "GB", "estimated_cost_per_1k": "$", "request_arrival_rate": "req/s",
         "spec_acceptance_rate": "fraction", "eviction_events": "preemptions", "step_index": "window"}


def _ms(v, digits: int) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def observation_text(inferencegym: dict | None, tenants: list[dict], knobs: dict | None, seconds: float) -> str:
    """The user message of one window: the 15 InferenceGym fields, each tenant's window and the
    configuration. The one format, whether the env runs here or behind igym-marl's server
    (examples/llm_agent_remote.py builds the same text from the wire)."""
    if inferencegym is None:
        return "The episode starts now: no traffic observed yet. Current configuration: vLLM defaults."
    lines = [f"Last window ({seconds:g} s):"]
    for k, v in inferencegym.items():
        lines.append(f"- {k}: {v:.4g} {UNITS[k]}")
    for t in tenants:
        lines.append(f"- tenant {t['name']}: arrived {t['arrived']}, queue {t['queue_depth']}, TTFT p99 "
                     f"{_ms(t['ttft_p99_ms'], 0)} ms, TPOT p99 {_ms(t['tpot_p99_ms'], 1)} ms, SLO met "
                     f"{t['slo_met']}, missed {t['slo_missed']}, oldest wait {t['oldest_wait_ms']:.0f} ms")
    lines.append(f"Current configuration: {json.dumps(knobs)}")
    return "\n".join(lines)


MAX_RESPONSE_BYTES = 1 << 20  # a chat completion with one JSON object is a few kB


class LLMError(RuntimeError):
    pass


def validate_reply(content: str) -> Knobs:
    """Parse and strictly validate the model's reply -> Knobs (LLMError explains what is wrong)."""
    text = content.strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, flags=re.S)
    if fence:
        text = fence.group(1)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise LLMError(f"reply is not JSON ({e.msg})") from None
    except (ValueError, RecursionError) as e:  # e.g. an integer of more than 4,300 digits
        raise LLMError(f"reply cannot be read as JSON ({str(e)[:120]})") from None
    if not isinstance(obj, dict):
        raise LLMError(f"reply is a JSON {type(obj).__name__}, not an object")
    missing = [k for k in LEVELS if k not in obj]
    extra = [k for k in obj if k not in LEVELS]
    if missing or extra:
        raise LLMError(f"reply fields: missing {missing}, unexpected {extra}")
    values = {}
    for k, allowed in LEVELS.items():
        i = level_index(k, obj[k])  # the simulator's one matching rule; a 400-digit integer matches nothing
        if i is None:
            shown = repr(obj[k]) if len(repr(obj[k])) <= 40 else repr(obj[k])[:37] + "..."
            raise LLMError(f"{k}={shown} is not one of {allowed}")
        values[k] = allowed[i]
    return Knobs(**values)


class LLMPolicy(KnobPolicy):
    name = "llm"

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key_file: str | None = None,
                 timeout_s: float = 30.0, fallback: KnobPolicy | None = None):
        env = os.environ
        self.base_url = (base_url or env.get("IGYM_LLM_BASE_URL") or env.get("OPENAI_BASE_URL") or "").rstrip("/")
        self.model = model or env.get("IGYM_LLM_MODEL") or env.get("OPENAI_MODEL")
        if not self.base_url:
            raise ValueError("the llm policy needs a base URL: --llm-base-url or IGYM_LLM_BASE_URL "
                             "(e.g. http://localhost:8000/v1)")
        url = urllib.parse.urlsplit(self.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"llm base URL {self.base_url!r} must be http:// or https:// with a host")
        if not self.model:
            raise ValueError("the llm policy needs a model name: --llm-model or IGYM_LLM_MODEL")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not math.isfinite(timeout_s) \
                or timeout_s <= 0:
            raise ValueError(f"timeout_s={timeout_s!r} must be a positive number of seconds (the deadline per window)")
        if api_key_file is not None:
            path = Path(api_key_file)
            if not path.is_file():
                raise ValueError(f"api_key_file={str(path)!r}: no such file")
            lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            if not lines or not lines[0].strip():
                raise ValueError(f"api_key_file={str(path)!r} is empty")
            self._api_key = lines[0].strip()
        else:
            self._api_key = env.get("IGYM_LLM_API_KEY") or env.get("OPENAI_API_KEY")
        self.timeout_s = float(timeout_s)
        self.fallback = fallback or HeuristicPolicy()
        self.counts = {"calls": 0, "retries": 0, "fallbacks": 0, "deadlines": 0}

    def __repr__(self) -> str:  # never the key
        return f"LLMPolicy(base_url={self.base_url!r}, model={self.model!r}, timeout_s={self.timeout_s})"

    def reset(self, task, seed):
        super().reset(task, seed)
        self.fallback.reset(task, seed)
        self.counts = {"calls": 0, "retries": 0, "fallbacks": 0, "deadlines": 0}
        self.last_error = None
        r = task.config
        tenants = "; ".join(f"{t.name} (TTFT SLO {t.ttft_slo_ms:g} ms, TPOT SLO {t.tpot_slo_ms:g} ms, priority "
                            f"{t.priority}, weight {t.weight:g})" for t in task.tenants)
        self.system = SYSTEM.format(model=r.model, gpus=f"{r.tp} x {r.gpu}", window=task.window_s, tenants=tenants,
                                    levels=json.dumps(LEVELS))
        self.knobs = None

    def stats(self) -> dict:
        return dict(self.counts)

    def _observation(self, infos) -> str:
        m = metrics_of(infos)
        if m is None:
            return observation_text(None, [], None, 0.0)
        info = infos[next(iter(infos))]
        tenants = [{"name": t.name, "arrived": t.arrived, "queue_depth": t.queue_depth,
                    "ttft_p99_ms": t.latency.ttft_p99_ms, "tpot_p99_ms": t.latency.tpot_p99_ms,
                    "slo_met": t.slo_met, "slo_missed": t.slo_missed, "oldest_wait_ms": t.oldest_wait_ms}
                   for t in m.tenants]
        return observation_text(info["inferencegym"], tenants, info["knobs"], m.seconds)

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _post(self, body: bytes, deadline: float) -> bytes:
        """POST to {base_url}/chat/completions and return the body; LLMError on any failure. A
        watchdog closes the connection at `deadline` (time.monotonic()), whatever the server does."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LLMError("no time left in this window's deadline")
        url = urllib.parse.urlsplit(self.base_url)
        cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        conn = cls(url.hostname, url.port, timeout=remaining)
        expired = threading.Event()

        def expire():
            expired.set()
            sock = conn.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        watchdog = threading.Timer(remaining, expire)
        watchdog.daemon = True
        watchdog.start()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            conn.request("POST", f"{url.path}/chat/completions", body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read(MAX_RESPONSE_BYTES + 1)
            if expired.is_set():
                raise TimeoutError
            if len(data) > MAX_RESPONSE_BYTES:
                raise LLMError(f"response larger than {MAX_RESPONSE_BYTES:,} bytes")
            if resp.length:  # read(n) returns a body cut short by the server without complaint
                raise http.client.IncompleteRead(data, resp.length)
            if resp.status != 200:
                text = self._redact(data[:4096].decode("utf-8", "replace"))  # redact, then cut
                raise LLMError(f"HTTP {resp.status} {resp.reason}: {text[:200]!r}")
            return data
        except LLMError:
            raise
        except Exception as e:  # any transport failure: refused, reset, bad status line, truncated body, ...
            if expired.is_set() or isinstance(e, (TimeoutError, socket.timeout)):
                self.counts["deadlines"] += 1
                raise LLMError(f"no complete response within the {self.timeout_s:g} s deadline") from None
            raise LLMError(f"request failed: {type(e).__name__}: {e}") from None
        finally:
            watchdog.cancel()
            conn.close()

    def _ask(self, user: str, deadline: float) -> Knobs:
        body = {"model": self.model, "temperature": 0,
                "messages": [{"role": "system", "content": self.system}, {"role": "user", "content": user}]}
        self.counts["calls"] += 1
        try:
            data = self._post(json.dumps(body).encode(), deadline)
            try:
                payload = json.loads(data.decode("utf-8"))
            except UnicodeDecodeError:
                raise LLMError("response body is not UTF-8") from None
            except (ValueError, RecursionError) as e:  # JSONDecodeError, or an integer of > 4,300 digits
                raise LLMError(f"response body is not JSON ({str(e)[:120]})") from None
            try:
                content = payload["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError):
                raise LLMError("response has no choices[0].message.content") from None
            if not isinstance(content, str):
                raise LLMError("message content is not text")
            try:
                return validate_reply(content)
            except LLMError:
                raise
            except (ValueError, RecursionError, OverflowError) as e:
                raise LLMError(f"reply cannot be read: {str(e)[:120]}") from None
        except LLMError as e:
            raise LLMError(self._redact(str(e))) from None

    def choose(self, user: str) -> Knobs | None:
        """Ask the model for this window's knobs given the observation text; one retry with the
        reason when a reply is invalid, within one deadline. None when both attempts failed (the
        caller falls back)."""
        deadline = time.monotonic() + self.timeout_s  # every attempt of this window shares it
        for attempt in range(2):
            try:
                self.knobs = self._ask(user, deadline)
                return self.knobs
            except LLMError as e:
                self.last_error = str(e)
                if attempt == 0 and time.monotonic() < deadline:
                    self.counts["retries"] += 1
                    user = f"{user}\n\nYour previous answer was invalid: {e}. Answer again with only the JSON object."
                else:
                    break
        self.counts["fallbacks"] += 1
        return None

    def act_knobs(self, observations, infos, state=None) -> Knobs:
        fallback = self.fallback.act_knobs(observations, infos, state)  # keeps the fallback's state current
        knobs = self.choose(self._observation(infos))
        return knobs if knobs is not None else fallback
