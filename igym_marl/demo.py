"""Simulator demo: the same ten minutes of traffic served under two configurations.

    python -m igym_marl.demo

Two tenants (interactive: TTFT 300 ms / TPOT 18 ms, a premium streaming tier of 55 tokens/s,
priority 1; batch: TTFT 5 s / TPOT 200 ms)
send ShareGPT-like requests (Poisson, 15 req/s, 80 % of the saturation of Llama-3.1-8B on one
A100-80GB). Configuration A is vLLM's default (batch_cap 256, chunked prefill, FCFS);
configuration B caps the batch at 32, disables chunked prefill and turns on priority routing.
"""
from __future__ import annotations

import time

from .sim import VLLM_DEFAULT, Knobs, SimConfig, Simulator, Tenant
from .workloads import poisson_workload

TENANTS = (Tenant("interactive", ttft_slo_ms=300.0, tpot_slo_ms=18.0, priority=1),
           Tenant("batch", ttft_slo_ms=5000.0, tpot_slo_ms=200.0, priority=0))
CONFIGS = {
    "A: vLLM default": VLLM_DEFAULT,
    "B: cap 32, prefill-first, priority": Knobs(batch_cap=32, kv_budget_fraction=0.9, prefill_decode_split=False,
                                                priority_routing=True),
}


def main() -> None:
    workload = poisson_workload(15.0, 600.0, seed=7, tenants=TENANTS, name="demo")
    print(f"{len(workload)} requests over 600 s, Llama-3.1-8B on 1 x A100-80GB, vLLM 0.15\n")
    print("| configuration | tenant | TTFT p50 / p99 ms | TPOT p50 / p99 ms | SLO met | tokens/s | preemptions |")
    print("|---|---|---|---|---|---|---|")
    for name, knobs in CONFIGS.items():
        sim = Simulator(SimConfig())
        sim.reset(workload, seed=0)
        t0 = time.perf_counter()
        for _ in range(120):
            sim.advance(5.0, knobs)
        wall = time.perf_counter() - t0
        e = sim.episode_metrics()
        for t in e.tenants:
            lat = t.latency
            print(f"| {name} | {t.name} | {lat.ttft_p50_ms:,.0f} / {lat.ttft_p99_ms:,.0f} | "
                  f"{lat.tpot_p50_ms:.1f} / {lat.tpot_p99_ms:.1f} | {100 * t.slo_attainment:.1f} % | "
                  f"{e.throughput_tps:,.0f} | {e.preemptions} |")
        print(f"|  | (simulated 600 s in {wall:.2f} s wall) | | | | | |")


if __name__ == "__main__":
    main()
