"""The best constant configuration per task, from the cached search (python -m igym_marl.agents.analysis.tuning best-constant).

On a task nobody searched -- a trace -- there is no best constant: the policy plays vLLM's
default instead and says so (``stats()["fallback_vllm_default"] == 1``; evaluate.py prints a note).
"""

from __future__ import annotations

from igym_marl.agents.policies.simple import ConstantPolicy
from igym_marl.agents.analysis.tuning import best_constant_or_default


class BestConstantPolicy(ConstantPolicy):
    name = "best-constant"

    def __init__(self):
        self.knobs = None
        self.searched = True

    def reset(self, task, seed):
        super().reset(task, seed)
        self.knobs, self.searched = best_constant_or_default(task.id)

    def stats(self) -> dict:
        return {} if self.searched else {"fallback_vllm_default": 1}
