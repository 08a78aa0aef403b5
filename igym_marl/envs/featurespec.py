"""What a feature is: a quantity the code computes, a scale, and a squash or a cap (the table that
writes the observation docs). The shared features (features.py) and each agent's own features
(team.py) are written with it."""

from __future__ import annotations

import math
from dataclasses import dataclass


def sq(x: float) -> float:
    """x / (1 + x) for x >= 0: 0 -> 0, 1 -> 0.5, large -> 1."""
    return x / (1.0 + x)


def finite(x: float, default: float = 0.0) -> float:
    """x, or `default` for NaN and infinities."""
    return default if x != x or math.isinf(x) else x


@dataclass(frozen=True)
class Feature:
    """One observation feature: ``quantity`` (what the code computes) / ``scale``, then s(.) if
    ``squash``, or min(1, .) if ``cap``. ``note`` completes the description."""

    name: str
    quantity: str
    scale: float = 1.0
    squash: bool = False
    cap: bool = False
    note: str = ""

    @property
    def description(self) -> str:
        x = self.quantity if self.scale == 1.0 else f"{self.quantity} / {_fmt(self.scale)}"
        x = f"s({x})" if self.squash else (f"min(1, {x})" if self.cap else x)
        return f"{x}{'; ' + self.note if self.note else ''}"


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v == int(v) else f"{v:g}"
