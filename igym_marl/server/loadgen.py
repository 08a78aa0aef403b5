"""A load generator for the server, on loopback: N concurrent WebSocket sessions, each playing
whole episodes over OpenEnv's ``/ws`` protocol, timing every step.

    python -m igym_marl.server.loadgen --url ws://127.0.0.1:8000 --sessions 32 --task bursty_workload \
        --status-pollers 2

Optionally, clients poll ``/server/status`` meanwhile. To see what a load balancer sees while the
server is busy, probe ``/health`` from another process (tests/server/test_live.py does).

Used by tests/server/test_load.py and for the figures in docs/server.md. Bounded: every session
plays `episodes` episodes and stops; a step waits at most `timeout_s`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field

import numpy as np
import websockets


@dataclass
class LoadResult:
    sessions: int
    steps: int = 0
    errors: list = field(default_factory=list)
    latencies_s: list = field(default_factory=list)
    wall_s: float = 0.0
    scores: list = field(default_factory=list)
    status_polls: int = 0

    def summary(self) -> dict:
        lat = np.array(self.latencies_s) if self.latencies_s else np.array([np.nan])
        return {"sessions": self.sessions, "steps": self.steps, "errors": len(self.errors),
                "wall_s": round(self.wall_s, 2), "steps_per_s": round(self.steps / self.wall_s, 1) if self.wall_s else 0.0,
                "p50_step_ms": round(1e3 * float(np.nanpercentile(lat, 50)), 1),
                "p99_step_ms": round(1e3 * float(np.nanpercentile(lat, 99)), 1),
                "max_step_ms": round(1e3 * float(np.nanmax(lat)), 1),
                "status_polls": self.status_polls, "episodes_finished": len(self.scores),
                "first_errors": [str(e)[:200] for e in self.errors[:3]]}


async def _request(ws, message: dict, timeout_s: float) -> dict:
    await ws.send(json.dumps(message))
    reply = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
    if reply.get("type") == "error":
        raise RuntimeError(f"server error: {reply.get('data')}")
    return reply


async def play(url: str, task: str, seed: int, policy: str, result: LoadResult, episodes: int = 1,
               max_steps: int | None = None, timeout_s: float = 120.0) -> None:
    """One WebSocket session: `episodes` episodes of `policy` (a server-side policy name)."""
    try:
        async with websockets.connect(url.rstrip("/") + "/ws", max_size=2**22, open_timeout=timeout_s,
                                      ping_interval=None) as ws:
            for e in range(episodes):
                await _request(ws, {"type": "reset", "data": {"task_id": task, "seed": seed + e}}, timeout_s)
                done, n = False, 0
                while not done and (max_steps is None or n < max_steps):
                    t0 = time.perf_counter()
                    reply = await _request(ws, {"type": "step", "data": {"policy": policy}}, timeout_s)
                    result.latencies_s.append(time.perf_counter() - t0)
                    result.steps += 1
                    n += 1
                    done = bool(reply["data"].get("done"))
                    if done:
                        result.scores.append(reply["data"]["observation"]["episode"]["score"])
            await ws.send(json.dumps({"type": "close"}))
    except Exception as exc:  # every failure is counted, none is raised: the run reports them
        result.errors.append(exc)


async def _probe(http_url: str, path: str, period_s: float, stop: asyncio.Event, on_reply) -> None:
    import httpx
    async with httpx.AsyncClient(base_url=http_url, timeout=30) as c:
        while not stop.is_set():
            t0 = time.perf_counter()
            r = await c.get(path)
            if r.status_code == 200:
                on_reply(time.perf_counter() - t0)
            try:
                await asyncio.wait_for(stop.wait(), period_s)
            except asyncio.TimeoutError:
                pass


async def run_load(url: str, sessions: int = 32, task: str = "bursty_workload", policy: str = "heuristic",
                   seed: int = 1_000_000, episodes: int = 1, max_steps: int | None = None,
                   timeout_s: float = 120.0, status_pollers: int = 0) -> LoadResult:
    """`sessions` WebSocket sessions playing; meanwhile `status_pollers` clients poll /server/status
    every 100 ms."""
    result = LoadResult(sessions)
    http_url = url.replace("wss://", "https://").replace("ws://", "http://").rstrip("/")
    stop = asyncio.Event()

    def count_status(_):
        result.status_polls += 1
    pollers = [asyncio.ensure_future(_probe(http_url, "/server/status", 0.1, stop, count_status))
               for _ in range(status_pollers)]
    t0 = time.perf_counter()
    await asyncio.gather(*(play(url, task, seed + 1000 * i, policy, result, episodes, max_steps, timeout_s)
                           for i in range(sessions)))
    result.wall_s = time.perf_counter() - t0
    stop.set()
    await asyncio.gather(*pollers)
    return result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="ws://127.0.0.1:8000")
    ap.add_argument("--sessions", type=int, default=32)
    ap.add_argument("--task", default="bursty_workload")
    ap.add_argument("--policy", default="heuristic")
    ap.add_argument("--episodes", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1_000_000, help="session i plays seeds from seed + 1000 i")
    ap.add_argument("--status-pollers", type=int, default=0, help="clients polling /server/status meanwhile")
    args = ap.parse_args(argv)
    res = asyncio.run(run_load(args.url, args.sessions, args.task, args.policy, seed=args.seed, episodes=args.episodes,
                               status_pollers=args.status_pollers))
    print(json.dumps(res.summary(), indent=2))


if __name__ == "__main__":
    main()
