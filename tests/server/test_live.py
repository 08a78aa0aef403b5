"""Against a live server process on loopback: OpenEnv's own client, load, and faults."""

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import websockets
from openenv.core.generic_client import GenericEnvClient

import numpy as np

from .conftest import GOOD

ROOT = Path(__file__).resolve().parents[2]



def _wait_for(server, pred, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = server.status(collect=True)
        if pred(st):
            return st
        time.sleep(0.1)
    return server.status(collect=True)


def test_openenv_generic_client_single_multi_and_cluster(live_server):
    async def play():
        async with GenericEnvClient(base_url=live_server.url) as env:
            r = await env.reset(task_id="static_workload", seed=7)
            assert r.observation["task_id"] == "static_workload" and r.observation["seed"] == 7 and not r.done
            r = await env.step(GOOD)
            assert r.observation["window"] == 1 and r.reward > 0 and r.observation["knobs"] == GOOD
            r2 = await env.step({"policy": "heuristic"})
            assert r2.observation["window"] == 2
            st = await env.state()
            assert st["step_count"] == 2 and st["seed"] == 7 and st["task_id"] == "static_workload"
            with pytest.raises(RuntimeError, match="VALIDATION_ERROR"):
                await env.step(dict(GOOD, batch_cap=9999))
        async with GenericEnvClient(base_url=live_server.url + "/multi") as env:
            r = await env.reset(task_id="adversarial_multitenant", seed=3)
            assert set(r.observation["observations"]) == {"batch_scheduler", "kv_manager", "spec_controller",
                                                          "tenant_router"}
            r = await env.step({"batch_scheduler": 5, "kv_manager": 3, "spec_controller": 0, "tenant_router": 1})
            assert r.observation["window"] == 1 and r.observation["knobs"]["priority_routing"] is True
        async with GenericEnvClient(base_url=live_server.url + "/cluster") as env:
            r = await env.reset(task_id="cluster_conversation", seed=4)
            assert len(r.observation["replicas"]) == 4 and r.observation["fleet"]["active"] == 4
            r = await env.step({"knobs": GOOD, "rule": "prefix_affinity", "target": 3})
            assert r.observation["window"] == 1 and r.observation["fleet"]["target"] == 3
            r = await env.step({"policy": "hpa"})
            assert r.observation["window"] == 2 and (await env.state())["step_count"] == 2
            with pytest.raises(RuntimeError, match="target=9 must be an integer in 1..4"):
                await env.step({"knobs": GOOD, "rule": "prefix_affinity", "target": 9})
    asyncio.run(play())


def test_ws_validation_errors_name_the_field(live_server):
    async def go():
        async with websockets.connect(live_server.ws_url + "/ws") as ws:
            await ws.send(json.dumps({"type": "reset", "data": {"seed": 1}}))
            assert json.loads(await ws.recv())["type"] == "observation"
            await ws.send(json.dumps({"type": "step", "data": dict(GOOD, kv_budget_fraction=3)}))
            reply = json.loads(await ws.recv())
            assert reply["type"] == "error" and "kv_budget_fraction=3 is out of range" in json.dumps(reply)
    asyncio.run(go())


def test_openenvs_own_client_shows_what_was_wrong(live_server):
    """OpenEnv's client prints the error's message and code only: the detail must be in the message."""
    async def go():
        async with GenericEnvClient(base_url=live_server.url) as env:
            await env.reset(task_id="static_workload", seed=1)
            with pytest.raises(Exception) as e:
                await env.step(dict(GOOD, kv_budget_fraction=3))
            return str(e.value)
    text = asyncio.run(go())
    assert "kv_budget_fraction=3 is out of range" in text and "VALIDATION_ERROR" in text, text


def _load_with_health_probe(server, seed: int) -> tuple[dict, list[float]]:
    """32 WebSocket sessions playing whole bursty episodes and 2 clients polling /server/status, in
    a load-generator process; meanwhile this process probes /health every 50 ms, as a load balancer
    would (its own process: the load's clients would delay the probe's replies in theirs)."""
    cmd = [sys.executable, "-m", "igym_marl.server.loadgen", "--url", server.ws_url, "--sessions", "32",
           "--task", "bursty_workload", "--policy", "heuristic", "--seed", str(seed), "--status-pollers", "2"]
    load = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    health = []
    with httpx.Client(base_url=server.url, timeout=30) as c:
        while load.poll() is None:
            t0 = time.perf_counter()
            assert c.get("/health").status_code == 200
            health.append(1e3 * (time.perf_counter() - t0))
            time.sleep(0.05)
    out, err = load.communicate()
    assert load.returncode == 0, err
    return json.loads(out), health


def test_32_concurrent_sessions_play_whole_bursty_episodes_without_errors_or_leaks(live_server):
    """The load figures of docs/server.md: 32 WebSocket sessions, each a whole bursty_workload
    episode with the heuristic, while 2 clients poll /server/status; three rounds (the first warms
    the server up)."""
    summaries, rss = [], []
    for rnd in range(3):
        s, health = _load_with_health_probe(live_server, 1_000_000 + 100_000 * rnd)
        s.update(health_probes=len(health), health_p50_ms=round(float(np.percentile(health, 50)), 1),
                 health_p99_ms=round(float(np.percentile(health, 99)), 1), health_max_ms=round(max(health), 1))
        summaries.append(s)
        assert s["errors"] == 0, s["first_errors"]
        assert s["steps"] == 32 * 120 and s["episodes_finished"] == 32 and s["status_polls"] > 10
        # never frozen: every probe answered within a second, the bound of the slow-step test below. The
        # latency goal itself (p99 under 100 ms) is a speed figure of the machine, measured as a ratio to
        # the idle server's in benchmarks/bench_server.py, not a pass/fail bound here
        assert s["health_max_ms"] < 1000, json.dumps(s)
        st = _wait_for(live_server, lambda st: st["ws_sessions"] == 0 and st["live_envs"] == st["http_sessions"])
        assert st["ws_sessions"] == 0 and st["live_envs"] == st["http_sessions"], st  # every env freed
        rss.append(live_server.rss_mb())
    print("\nload:", json.dumps(summaries), "rss_mb:", [round(x, 1) for x in rss])
    # every env is freed (checked above, by count); what else an episode leaves behind stays under 1 MB:
    # 64 episodes after the warm-up round grow the server by less than 64 MB. Resident memory moves
    # by +-15 MB from round to round as the allocator keeps and returns arenas, with no trend.
    assert rss[2] - rss[0] < 64, rss


def test_faults_dropped_clients_malformed_json_oversized_and_the_limit(live_server):
    async def drop_mid_episode():
        ws = await websockets.connect(live_server.ws_url + "/ws")
        await ws.send(json.dumps({"type": "reset", "data": {"task_id": "bursty_workload", "seed": 9}}))
        await ws.recv()
        for _ in range(3):
            await ws.send(json.dumps({"type": "step", "data": {"policy": "heuristic"}}))
            await ws.recv()
        ws.transport.abort()  # the client vanishes: no close frame

    async def malformed_then_valid():
        async with websockets.connect(live_server.ws_url + "/ws") as ws:
            await ws.send("{not json")
            reply = json.loads(await ws.recv())
            assert reply["type"] == "error" and reply["data"]["code"] == "INVALID_JSON"
            await ws.send(json.dumps({"type": "reset", "data": {"seed": 2}}))  # the session survives
            assert json.loads(await ws.recv())["type"] == "observation"

    async def oversized():
        async with websockets.connect(live_server.ws_url + "/ws", max_size=None) as ws:
            await ws.send(json.dumps({"type": "reset", "data": {"pad": "x" * 200_000}}))
            with pytest.raises(websockets.ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1009  # message too big

    async def over_the_limit():
        conns = [await websockets.connect(live_server.ws_url + "/ws") for _ in range(40)]
        extra = await websockets.connect(live_server.ws_url + "/ws")
        reply = json.loads(await extra.recv())
        assert reply["type"] == "error" and reply["data"]["code"] == "CAPACITY_REACHED"
        for c in [*conns, extra]:
            await c.close()

    async def close_before_the_reply():  # the late send must not be logged as an exception
        for kind in ("step", "reset"):
            ws = await websockets.connect(live_server.ws_url + "/ws")
            await ws.send(json.dumps({"type": "reset", "data": {"task_id": "adversarial_multitenant", "seed": 9}}))
            await ws.recv()
            data = {"policy": "heuristic"} if kind == "step" else {"seed": 10}
            await ws.send(json.dumps({"type": kind, "data": data}))
            await ws.close()

    asyncio.run(drop_mid_episode())
    asyncio.run(close_before_the_reply())
    time.sleep(1.0)
    assert live_server.tracebacks() == [], live_server.log()[-3000:]
    st = _wait_for(live_server, lambda st: st["ws_sessions"] == 0)
    assert st["ws_sessions"] == 0
    asyncio.run(malformed_then_valid())
    asyncio.run(oversized())
    r = httpx.post(live_server.url + "/sessions", content=b"x" * 100_000, headers={"content-type": "application/json"})
    assert r.status_code == 413
    asyncio.run(over_the_limit())
    st = _wait_for(live_server, lambda st: st["ws_sessions"] == 0)
    assert st["ws_sessions"] == 0
    assert httpx.get(live_server.url + "/health").json()["status"] == "healthy"  # never a crash
    assert live_server.tracebacks() == [], live_server.log()[-3000:]


def test_websockets_from_other_origins_are_refused(live_server):
    async def connect(origin):
        headers = {"Origin": origin} if origin else {}
        async with websockets.connect(live_server.ws_url + "/ws", additional_headers=headers) as ws:
            await ws.send(json.dumps({"type": "reset", "data": {"seed": 1}}))
            return json.loads(await ws.recv())["type"]

    for origin in (None, live_server.url, "http://localhost:3000"):
        assert asyncio.run(connect(origin)) == "observation", origin
    for origin in ("http://evil.example", "null", "http://localhost:3001", live_server.url + ".evil.example"):
        with pytest.raises(websockets.InvalidStatus) as info:
            asyncio.run(connect(origin))
        assert info.value.response.status_code == 403, origin


def test_a_real_slow_step_and_a_reset_never_freeze_the_server(live_server):
    """The original freeze: a step with a policy that loads on first use, then a reset of the same
    session. Every overlap gets an answer (200, or 409 at once), and /health keeps answering."""
    async def go():
        async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as c:
            for policy in ("mappo", "heuristic", "best-constant"):
                sid = (await c.post("/sessions", json={"task_id": "adversarial_multitenant"})).json()["session_id"]
                step = asyncio.ensure_future(c.post(f"/sessions/{sid}/step", json={"action": {"policy": policy}}))
                await asyncio.sleep(0.05)
                codes = [(await c.post(f"/sessions/{sid}/reset", json={"seed": 1})).status_code for _ in range(3)]
                t0 = time.perf_counter()
                assert (await c.get("/health")).status_code == 200
                assert time.perf_counter() - t0 < 1.0
                assert set(codes) <= {200, 409}
                assert (await step).status_code == 200
                assert (await c.post(f"/sessions/{sid}/reset", json={"seed": 2})).status_code == 200
                assert (await c.delete(f"/sessions/{sid}")).status_code == 204
    asyncio.run(go())


def test_the_server_logged_no_exceptions(live_server):
    """Runs last in this module: whatever the clients did above, the server never raised."""
    log = live_server.log()
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-3000:]
