"""Policies for igym_marl.serving_v0: one interface (igym_marl.agents.policies.base.Policy), one registry.

    from igym_marl.agents import make_policy
    policy = make_policy("heuristic")          # or random, vllm-default, constant:KNOB=V,...,
                                               # best-constant, llm, ppo, mappo, rllib (the ray extra),
                                               # and two probes: oracle, mpc
"""

from __future__ import annotations

from igym_marl.agents.policies.base import KnobPolicy, Policy


def _random(arg, **kw):
    from igym_marl.agents.policies.simple import RandomPolicy
    return RandomPolicy()


def _constant(arg, **kw):
    from igym_marl.agents.policies.simple import ConstantPolicy
    return ConstantPolicy(arg or "vllm-default")


def _vllm_default(arg, **kw):
    from igym_marl.agents.policies.simple import ConstantPolicy
    p = ConstantPolicy("vllm-default")
    p.name = "vllm-default"
    return p


def _best_constant(arg, **kw):
    from igym_marl.agents.policies.best_constant import BestConstantPolicy
    return BestConstantPolicy()


def _heuristic(arg, **kw):
    from igym_marl.agents.policies.heuristic import HeuristicPolicy
    return HeuristicPolicy()


def _llm(arg, llm_base_url=None, llm_model=None, llm_api_key_file=None, llm_timeout=30.0, **kw):
    from igym_marl.agents.policies.llm import LLMPolicy
    return LLMPolicy(base_url=llm_base_url, model=llm_model, api_key_file=llm_api_key_file, timeout_s=llm_timeout)


def _mappo(arg, checkpoint=None, **kw):
    from igym_marl.agents.policies.learned import MAPPOPolicy
    return MAPPOPolicy(checkpoint)


def _ppo(arg, checkpoint=None, **kw):
    from igym_marl.agents.policies.learned import PPOPolicy
    return PPOPolicy(checkpoint)


def _rllib(arg, checkpoint=None, **kw):
    try:
        from igym_marl.agents.training.rllib import RLlibPolicy
    except ImportError as e:
        raise ValueError(f"policy='rllib' needs the ray extra (pip install -e '.[ray]'): {e}") from None
    return RLlibPolicy(checkpoint)


def _oracle(arg, **kw):
    from igym_marl.agents.policies.oracle import OraclePolicy
    return OraclePolicy()


def _mpc(arg, **kw):
    from igym_marl.agents.policies.mpc import MPCPolicy
    return MPCPolicy()


POLICIES = {"random": _random, "constant": _constant, "vllm-default": _vllm_default, "best-constant": _best_constant,
            "heuristic": _heuristic, "llm": _llm, "ppo": _ppo, "mappo": _mappo, "oracle": _oracle,
            "mpc": _mpc, "rllib": _rllib}


def make_policy(name: str, **options) -> Policy:
    """Build a policy by registry name; ``constant:KNOB=VALUE,...`` sets a constant configuration."""
    base, _, arg = name.partition(":")
    if base not in POLICIES:
        raise ValueError(f"policy={name!r} is unknown; allowed: {', '.join(POLICIES)} (and constant:KNOB=VALUE+...)")
    if arg and base != "constant":
        raise ValueError(f"policy={name!r}: only 'constant' takes a ':...' argument")
    policy = POLICIES[base](arg, **options)
    if base == "constant" and arg:
        policy.name = name
    return policy


__all__ = ["Policy", "KnobPolicy", "POLICIES", "make_policy"]
