"""A zero-shot LLM controller over any OpenAI-compatible chat-completions endpoint.

Configuration (arguments win over environment variables):

* base URL: ``base_url`` or ``IGYM_LLM_BASE_URL`` (else ``OPENAI_BASE_URL``), e.g.
  ``http://localhost:8000/v1``; the policy POSTs to ``{base_url}/chat/completions``;
* model: ``model`` or ``IGYM_LLM_MODEL`` (else ``OPENAI_MODEL``);
* key: ``api_key`` or ``IGYM_LLM_API_KEY`` (else ``OPENAI_API_KEY``), sent as a Bearer token if set.

Each window the policy sends the last window's observation (the InferenceGym fields with units,
every tenant's SLOs and latencies, the current knobs) and asks for a JSON object with exactly the
six InferenceGym fields, each restricted to the agents' action levels. The reply is validated
strictly (no clamping, no nearest-level rounding); an invalid or failed reply is retried once,
then the window falls back to the tuned heuristic's decision, and ``stats()`` counts the calls,
retries and fallbacks (evaluate.py reports them).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request

from igym_marl.envs import SPECS, knobs_to_actions
from igym_marl.sim import Knobs

from .base import Policy, metrics_of
from .heuristic import HeuristicPolicy

LEVELS = {
    "batch_cap": list(SPECS["batch_scheduler"].levels[0]),
    "prefill_decode_split": [False, True],
    "kv_budget_fraction": list(SPECS["kv_manager"].levels[0]),
    "quantization_tier": list(SPECS["kv_manager"].levels[1]),
    "speculation_depth": list(SPECS["spec_controller"].levels[0]),
    "priority_routing": [False, True],
}

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
    if not isinstance(obj, dict):
        raise LLMError(f"reply is a JSON {type(obj).__name__}, not an object")
    missing = [k for k in LEVELS if k not in obj]
    extra = [k for k in obj if k not in LEVELS]
    if missing or extra:
        raise LLMError(f"reply fields: missing {missing}, unexpected {extra}")
    for k, allowed in LEVELS.items():
        v = obj[k]
        ok = any(type(v) is type(a) and v == a for a in allowed) or (
            isinstance(allowed[0], float) and isinstance(v, (int, float)) and not isinstance(v, bool)
            and any(abs(v - a) < 1e-9 for a in allowed))
        if not ok:
            raise LLMError(f"{k}={v!r} is not one of {allowed}")
    obj["kv_budget_fraction"] = round(float(obj["kv_budget_fraction"]), 1)
    return Knobs(**obj)


class LLMPolicy(Policy):
    name = "llm"

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key: str | None = None,
                 timeout_s: float = 30.0, fallback: Policy | None = None):
        env = os.environ
        self.base_url = (base_url or env.get("IGYM_LLM_BASE_URL") or env.get("OPENAI_BASE_URL") or "").rstrip("/")
        self.model = model or env.get("IGYM_LLM_MODEL") or env.get("OPENAI_MODEL")
        self.api_key = api_key or env.get("IGYM_LLM_API_KEY") or env.get("OPENAI_API_KEY")
        if not self.base_url:
            raise ValueError("the llm policy needs a base URL: --llm-base-url or IGYM_LLM_BASE_URL "
                             "(e.g. http://localhost:8000/v1)")
        if not self.model:
            raise ValueError("the llm policy needs a model name: --llm-model or IGYM_LLM_MODEL")
        self.timeout_s = timeout_s
        self.fallback = fallback or HeuristicPolicy()
        self.counts = {"calls": 0, "retries": 0, "fallbacks": 0}

    def reset(self, task, seed):
        super().reset(task, seed)
        self.fallback.reset(task, seed)
        self.counts = {"calls": 0, "retries": 0, "fallbacks": 0}
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
            return "The episode starts now: no traffic observed yet. Current configuration: vLLM defaults."
        info = infos[next(iter(infos))]
        lines = [f"Last window ({m.seconds:g} s):"]
        units = {"queue_depth": "requests", "active_requests": "requests", "kv_cache_occupancy": "fraction",
                 "mean_prompt_length": "tokens", "p50_ttft_ms": "ms", "p99_ttft_ms": "ms", "p50_itl_ms": "ms",
                 "throughput_tps": "tokens/s", "slo_compliance_rate": "fraction (episode so far)",
                 "gpu_memory_used_gb": "GB", "estimated_cost_per_1k": "$", "request_arrival_rate": "req/s",
                 "spec_acceptance_rate": "fraction", "eviction_events": "preemptions", "step_index": "window"}
        for k, v in info["inferencegym"].items():
            lines.append(f"- {k}: {v:.4g} {units[k]}")
        for t in m.tenants:
            lines.append(f"- tenant {t.name}: arrived {t.arrived}, queue {t.queue_depth}, TTFT p99 "
                         f"{t.latency.ttft_p99_ms:.0f} ms, TPOT p99 {t.latency.tpot_p99_ms:.1f} ms, SLO met "
                         f"{t.slo_met}, missed {t.slo_missed}, oldest wait {t.oldest_wait_ms:.0f} ms")
        lines.append(f"Current configuration: {json.dumps(info['knobs'])}")
        return "\n".join(lines)

    def _ask(self, user: str) -> Knobs:
        body = {"model": self.model, "temperature": 0,
                "messages": [{"role": "system", "content": self.system}, {"role": "user", "content": user}]}
        req = urllib.request.Request(f"{self.base_url}/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})})
        self.counts["calls"] += 1
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                payload = json.loads(resp.read().decode())
        except (urllib.error.URLError, TimeoutError, OSError, json.JSONDecodeError) as e:
            raise LLMError(f"request failed: {e}") from None
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise LLMError("response has no choices[0].message.content") from None
        if not isinstance(content, str):
            raise LLMError("message content is not text")
        return validate_reply(content)

    def act(self, observations, infos, state=None):
        heuristic_actions = self.fallback.act(observations, infos, state)  # keeps the fallback's state current
        user = self._observation(infos)
        for attempt in range(2):
            try:
                self.knobs = self._ask(user)
                return knobs_to_actions(self.knobs)
            except LLMError as e:
                if attempt == 0:
                    self.counts["retries"] += 1
                    user = f"{user}\n\nYour previous answer was invalid: {e}. Answer again with only the JSON object."
        self.counts["fallbacks"] += 1
        return heuristic_actions
