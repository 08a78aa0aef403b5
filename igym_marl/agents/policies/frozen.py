"""One agent held to a fixed rule while the others learn (``train_marl.py --freeze``, ablations).

A frozen agent follows one rule:

* ``heuristic``: that agent's part of the tuned heuristic's decision each window;
* ``vllm-default``: that agent's knobs at vLLM's default;
* ``constant:INDEX``: one of the agent's Discrete actions;
* ``constant:KNOB=VALUE+KNOB=VALUE``: the agent's own knobs (the constant policy's syntax).
"""

from __future__ import annotations

from igym_marl.envs import AGENTS, DEFAULT_ACTIONS, AGENT_KNOBS, encode_action

from igym_marl.agents.policies.simple import parse_knob_values

FROZEN_RULES = "heuristic, vllm-default, constant:INDEX, constant:KNOB=VALUE+..."


class FrozenAgent:
    def __init__(self, agent: str, rule: str):
        if agent not in AGENTS:
            raise ValueError(f"unknown agent {agent!r}; agents: {', '.join(AGENTS)}")
        self.agent, self.rule = agent, rule
        self.policy = None
        if rule == "heuristic":
            from igym_marl.agents.policies.heuristic import HeuristicPolicy
            self.policy = HeuristicPolicy()
        elif rule == "vllm-default":
            self.index = DEFAULT_ACTIONS[agent]
        elif rule.startswith("constant:"):
            arg = rule.split(":", 1)[1]
            if "=" in arg:
                self.index = encode_action(agent, **parse_knob_values(arg, allowed=AGENT_KNOBS[agent].knobs))
            else:
                try:
                    self.index = int(arg)
                except ValueError:
                    raise ValueError(f"{agent}={rule}: {arg!r} is neither an index nor KNOB=VALUE") from None
                if not 0 <= self.index < AGENT_KNOBS[agent].n:
                    raise ValueError(f"{agent}={rule}: index {self.index} out of range 0..{AGENT_KNOBS[agent].n - 1}")
        else:
            raise ValueError(f"{agent}={rule}: allowed policies {FROZEN_RULES}")

    def reset(self, task, seed: int) -> None:
        if self.policy is not None:
            self.policy.reset(task, seed)

    def act(self, observations, infos, state=None) -> int:
        if self.policy is None:
            return self.index
        return int(self.policy.act(observations, infos, state)[self.agent])


def parse_freeze(items) -> dict[str, str]:
    """["AGENT=RULE", ...] -> {agent: rule}, every rule validated."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--freeze {item!r}: expected AGENT=POLICY")
        agent, rule = item.split("=", 1)
        if agent not in AGENTS:
            raise ValueError(f"--freeze {item!r}: unknown agent {agent!r}; agents: {', '.join(AGENTS)}")
        FrozenAgent(agent, rule)
        out[agent] = rule
    return out


__all__ = ["FrozenAgent", "parse_freeze", "FROZEN_RULES"]
