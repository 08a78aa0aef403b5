"""A tiny deterministic workload whose timeline can be derived by hand (tests, docstrings)."""

from __future__ import annotations

from .types import Tenant, Workload

TOY_TENANTS = (Tenant("interactive", ttft_slo_ms=200.0, tpot_slo_ms=50.0, priority=1, spec_acceptance=0.8),
               Tenant("batch", ttft_slo_ms=5000.0, tpot_slo_ms=200.0, priority=0, spec_acceptance=0.6))


def toy_workload(requests=None, tenants=TOY_TENANTS) -> Workload:
    """Three requests by default: (arrival_s, prompt_tokens, output_tokens, tenant)."""
    if requests is None:
        requests = [(0.0, 100, 4, 0), (0.0, 200, 3, 1), (1.0, 50, 2, 0)]
    return Workload.from_requests(requests, tenants, name="toy")
