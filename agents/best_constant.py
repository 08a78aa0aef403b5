"""The best constant configuration per task, from the cached search (python -m agents.tuning best-constant)."""

from __future__ import annotations

from .simple import ConstantPolicy
from .tuning import load_best_constant


class BestConstantPolicy(ConstantPolicy):
    name = "best-constant"

    def __init__(self):
        self.knobs = None

    def reset(self, task, seed):
        super().reset(task, seed)
        self.knobs = load_best_constant(task.id)
