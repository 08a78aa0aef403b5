"""What stepping a cluster costs, against stepping its replicas alone, and how it scales with N.

    python benchmarks/bench_cluster.py [--windows 30]

1. **A 16-replica window against 16 single-replica windows.** The same traffic (cluster_bursty at
   N = 16, vLLM's default knobs, least-outstanding routing, every replica up) is played twice in
   one process: through ``serving_cluster_v0`` (routing, 66 agents' observations, the reward) and
   by replaying, on 16 bare ``Simulator`` objects, exactly the requests each replica received.
   The ratio cluster / replicas is the cluster's overhead; goal: at most 1 (N windows cost at
   most N times one replica's), which holds when the ratio stays near 1. Best of three
   interleaved runs.
2. **Scaling of agent count.** serving_cluster_v0 at N = 4, 16, 64 (18, 66, 258 agents): env
   steps per second and the process's peak memory growth (tracemalloc) over the windows.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from igym_marl import serving_cluster_v0
from igym_marl.envs import DEFAULT_ACTIONS
from igym_marl.sim import Knobs, Simulator
from igym_marl.sim.types import Workload


def actions(env):
    act = {a: DEFAULT_ACTIONS[a.split("/")[1]] for a in env.possible_agents if "/" in a}
    act["router"] = 1
    act["autoscaler"] = env.n - 1
    return act


def play_cluster(n, windows, seed=1_000_000):
    env = serving_cluster_v0.parallel_env("cluster_bursty", replicas=n, episode_windows=windows)
    env.reset(seed=seed)
    act = actions(env)
    t = time.perf_counter()
    while env.agents:
        env.step(act)
    return time.perf_counter() - t, env


def play_replicas(env, windows):
    """Replay, on bare simulators, the requests each replica of `env` received."""
    c = env.cluster
    sims = []
    for i, sim in enumerate(c.sims):
        sel = np.flatnonzero(c.owner == i)
        w = env.workload
        z = np.zeros(0, dtype=np.int64)
        s = Simulator(sim.config)
        s.reset(Workload(np.zeros(0), z, z, z, tenants=w.tenants), seed=sim.seed)
        sims.append((s, w.arrival_s[sel], w.prompt_tokens[sel], w.output_tokens[sel], w.tenant[sel]))
    W = env.task.window_s
    t = time.perf_counter()
    for k in range(windows):
        for s, arr, p, o, ten in sims:
            m = (arr >= k * W) & (arr < (k + 1) * W)
            s.add_requests(arr[m], p[m], o[m], ten[m])
            s.advance(W, Knobs())
    return time.perf_counter() - t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--windows", type=int, default=30)
    args = p.parse_args(argv)
    best_c = best_r = float("inf")
    for _ in range(3):
        tc, env = play_cluster(16, args.windows)
        best_c = min(best_c, tc)
        best_r = min(best_r, play_replicas(env, args.windows))
    print(f"16 replicas, {args.windows} windows of cluster_bursty: cluster {1e3 * best_c / args.windows:.1f} ms/window, "
          f"16 bare replicas {1e3 * best_r / args.windows:.1f} ms/window, ratio {best_c / best_r:.2f}")
    print("\n| N | agents | env steps/s | ms per window | peak memory growth (MB) |\n|---|---|---|---|---|")
    for n in (4, 16, 64):
        tc, env = play_cluster(n, args.windows)
        tracemalloc.start()  # a second run for memory: tracing slows Python down
        play_cluster(n, args.windows)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        print(f"| {n} | {len(env.possible_agents)} | {args.windows / tc:.1f} | {1e3 * tc / args.windows:.1f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
