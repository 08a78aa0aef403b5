"""Synthetic traffic generators.

ShareGPT-like lengths: the vLLM paper (Kwon et al., SOSP 2023, section 6.1) reports ShareGPT
conversations with mean input 161.31 and mean output 337.99 tokens. We draw both from
log-normal distributions with those means (sigma 1.0 for prompts, 0.9 for outputs, a long tail
as in the paper's Fig. 11), clipped to [4, 4096] and [1, 2048] tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..sim.types import Tenant, Workload


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
DEFAULT_TENANT = Tenant("default", ttft_slo_ms=500.0, tpot_slo_ms=100.0)


def poisson_workload(rate_rps: float, duration_s: float, seed, lengths: LengthModel = SHAREGPT_LENGTHS,
                     tenants: tuple[Tenant, ...] = (DEFAULT_TENANT,), name: str = "poisson") -> Workload:
    """Poisson arrivals at `rate_rps` for `duration_s` seconds; tenants drawn uniformly."""
    if not (isinstance(rate_rps, (int, float)) and rate_rps > 0 and math.isfinite(rate_rps)):
        raise ValueError(f"rate_rps={rate_rps!r} must be a positive number")
    if not (isinstance(duration_s, (int, float)) and duration_s > 0 and math.isfinite(duration_s)):
        raise ValueError(f"duration_s={duration_s!r} must be a positive number")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n = int(rng.poisson(rate_rps * duration_s))
    arrival = np.sort(rng.uniform(0.0, duration_s, n))
    prompt, output = lengths.sample(rng, n)
    tenant = rng.integers(0, len(tenants), n)
    return Workload(arrival, prompt, output, tenant, tenants, name=name)
