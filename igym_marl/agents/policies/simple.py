"""Random and constant policies."""

from __future__ import annotations

import numpy as np

from igym_marl.envs import AGENTS, AGENT_KNOBS
from igym_marl.sim import Knobs
from igym_marl.workloads import VLLM_DEFAULT

from igym_marl.agents.policies.base import KnobPolicy, Policy

PRESETS = {"vllm-default": VLLM_DEFAULT}


class RandomPolicy(Policy):
    """Uniform over each agent's action space; seeded by the episode seed (and `seed` offset)."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.offset = seed

    def reset(self, task, seed):
        super().reset(task, seed)
        self.rng = np.random.default_rng([seed, self.offset, 7])

    def act(self, observations, infos, state=None):
        return {a: int(self.rng.integers(AGENT_KNOBS[a].n)) for a in AGENTS}


class ConstantPolicy(KnobPolicy):
    """The same knobs every window. `knobs`: a preset name ("vllm-default") or
    "batch_cap=64+kv_budget_fraction=0.5" overriding vLLM's default (values must be levels)."""

    name = "constant"

    def __init__(self, knobs: str | Knobs = "vllm-default"):
        self.knobs = knobs if isinstance(knobs, Knobs) else parse_knobs(knobs)
        from igym_marl.envs import knobs_to_actions
        knobs_to_actions(self.knobs)  # every value must be one of the agents' levels

    def decide(self, infos):
        return self.knobs


KNOB_SEPARATORS = ("+", ",")  # "+" composes with comma-separated agent lists; "," is accepted too


def parse_knob_values(text: str, allowed=None) -> dict:
    """``KNOB=VALUE+KNOB=VALUE`` -> {knob: typed value}; `allowed` limits the knob names (default:
    all six). Values are typed as Knobs wants them; Knobs and encode_action check their ranges."""
    names = list(Knobs().as_dict()) if allowed is None else list(allowed)
    joined = text
    for sep in KNOB_SEPARATORS[1:]:
        joined = joined.replace(sep, KNOB_SEPARATORS[0])
    values = {}
    for part in filter(None, (p.strip() for p in joined.split(KNOB_SEPARATORS[0]))):
        if "=" not in part:
            raise ValueError(f"{text!r}: {part!r} is not KNOB=VALUE; presets: {list(PRESETS)}")
        k, v = (x.strip() for x in part.split("=", 1))
        if k not in names:
            raise ValueError(f"{text!r}: unknown knob {k!r}; allowed: {names}")
        if k in ("prefill_decode_split", "priority_routing"):
            if v.lower() not in ("true", "false", "on", "off", "1", "0"):
                raise ValueError(f"{text!r}: {k}={v!r}; allowed: true/false, on/off, 1/0")
            values[k] = v.lower() in ("true", "on", "1")
        elif k == "quantization_tier":
            values[k] = v.upper()
        elif k == "kv_budget_fraction":
            try:
                values[k] = float(v)
            except ValueError:
                raise ValueError(f"{text!r}: {k}={v!r} is not a number") from None
        else:
            try:
                values[k] = int(v)
            except ValueError:
                raise ValueError(f"{text!r}: {k}={v!r} is not an integer") from None
    return values


def parse_knobs(text: str) -> Knobs:
    """A preset name, or ``KNOB=VALUE+KNOB=VALUE`` overriding vLLM's default."""
    if text in PRESETS:
        return PRESETS[text]
    return Knobs(**{**VLLM_DEFAULT.as_dict(), **parse_knob_values(text)})


__all__ = ["RandomPolicy", "ConstantPolicy", "parse_knobs", "parse_knob_values", "PRESETS"]
