"""One operation at a time per session, the rest answered 409 at once, and a server that keeps
answering /health whatever the clients overlap.

A gate holds an env operation in its worker thread until the test releases it, so every overlap
is exact rather than a race on timing. The server runs in-process under uvicorn on loopback.
"""

import asyncio
import json
import socket
import threading
import time

import httpx
import pytest
import uvicorn
import websockets

from igym_marl.server import create_app
from igym_marl.server import environment as envmod

from .conftest import GOOD



class Gate:
    """While armed, the next env reset or step waits in its worker thread until released."""

    def __init__(self):
        self.armed = False
        self.entered = threading.Event()
        self.go = threading.Event()

    def arm(self):
        self.armed, self.entered, self.go = True, threading.Event(), threading.Event()

    def wait_here(self):
        if self.armed:
            self.armed = False
            self.entered.set()
            assert self.go.wait(30), "the test never released the gate"


@pytest.fixture(scope="module")
def gated_server():
    gate = Gate()
    mp = pytest.MonkeyPatch()
    for name in ("reset", "step"):
        orig = getattr(envmod._EpisodeEnvironment, name)

        def gated(self, *a, _orig=orig, **k):
            gate.wait_here()
            return _orig(self, *a, **k)
        mp.setattr(envmod._EpisodeEnvironment, name, gated)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(max_sessions=8), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield url, gate
    server.should_exit = True
    thread.join(10)
    mp.undo()


async def _health_ms(c: httpx.AsyncClient) -> float:
    t0 = time.perf_counter()
    r = await c.get("/health")
    assert r.status_code == 200
    return 1e3 * (time.perf_counter() - t0)


SECOND = {  # the overlapping operation, as an HTTP request on session `sid`
    "step": lambda c, sid: c.post(f"/sessions/{sid}/step", json={"action": {"policy": "heuristic"}}),
    "reset": lambda c, sid: c.post(f"/sessions/{sid}/reset", json={"seed": 5}),
    "delete": lambda c, sid: c.delete(f"/sessions/{sid}"),
    "grader": lambda c, sid: c.post("/grader", json={"session_id": sid}),
    "state": lambda c, sid: c.get(f"/sessions/{sid}/state"),
    "log": lambda c, sid: c.get(f"/sessions/{sid}/log"),
}
FIRST = {
    "step": lambda c, sid: c.post(f"/sessions/{sid}/step", json={"action": GOOD}),
    "reset": lambda c, sid: c.post(f"/sessions/{sid}/reset", json={"task_id": "static_workload", "seed": 3}),
}


@pytest.mark.parametrize("first, second", [("step", "step"), ("step", "reset"), ("reset", "reset"),
                                           ("reset", "delete"), ("step", "grader"), ("step", "state"),
                                           ("reset", "log"), ("step", "delete")])
def test_overlapping_operations_on_one_http_session_get_409_at_once(gated_server, first, second):
    url, gate = gated_server

    async def go():
        async with httpx.AsyncClient(base_url=url, timeout=20) as c:
            sid = (await c.post("/sessions", json={"task_id": "bursty_workload", "seed": 1})).json()["session_id"]
            gate.arm()
            held = asyncio.ensure_future(FIRST[first](c, sid))
            assert await asyncio.to_thread(gate.entered.wait, 10)
            t0 = time.perf_counter()
            r = await SECOND[second](c, sid)
            waited_ms = 1e3 * (time.perf_counter() - t0)
            assert r.status_code == 409, r.text
            assert f"busy with a {first}" in r.json()["detail"]
            assert waited_ms < 1000  # answered at once, not queued behind the held operation
            assert max([await _health_ms(c) for _ in range(5)]) < 100
            gate.go.set()
            r1 = await held
            assert r1.status_code == 200, r1.text
            # the session is free again, and intact
            r = await c.post(f"/sessions/{sid}/step", json={"action": GOOD})
            assert r.status_code == 200, r.text
            assert (await c.delete(f"/sessions/{sid}")).status_code == 204
    asyncio.run(go())


def test_a_refused_reset_leaves_the_session_as_it_was(gated_server):
    url, _ = gated_server
    with httpx.Client(base_url=url, timeout=20) as c:
        sid = c.post("/sessions", json={"task_id": "bursty_workload", "seed": 4}).json()["session_id"]
        c.post(f"/sessions/{sid}/step", json={"action": GOOD})
        before = c.get(f"/sessions/{sid}/state").json()
        log = c.get(f"/sessions/{sid}/log").json()
        for body in ({"task_id": "static_workload", "seed": -1}, {"seed": -1}, {"task_id": "nope"},
                     {"seed": "x"}, {"task_id": ["static_workload"]}):
            r = c.post(f"/sessions/{sid}/reset", json=body)
            assert r.status_code == 422, (body, r.text)
            assert c.get(f"/sessions/{sid}/state").json() == before
            assert c.get(f"/sessions/{sid}/log").json() == log
        r = c.post(f"/sessions/{sid}/step", json={"action": GOOD})
        assert r.status_code == 200 and r.json()["observation"]["window"] == 2
        assert r.json()["observation"]["task_id"] == "bursty_workload"
        c.delete(f"/sessions/{sid}")


def test_a_refused_reset_over_the_websocket_leaves_the_episode_going(gated_server):
    url, _ = gated_server

    async def go():
        async with websockets.connect(url.replace("http", "ws") + "/ws") as ws:
            await ws.send(json.dumps({"type": "reset", "data": {"task_id": "bursty_workload", "seed": 4}}))
            assert json.loads(await ws.recv())["type"] == "observation"
            await ws.send(json.dumps({"type": "step", "data": GOOD}))
            assert json.loads(await ws.recv())["data"]["observation"]["window"] == 1
            await ws.send(json.dumps({"type": "reset", "data": {"task_id": "static_workload", "seed": -1}}))
            reply = json.loads(await ws.recv())
            assert reply["type"] == "error" and "seed=-1" in reply["data"]["message"]
            await ws.send(json.dumps({"type": "state"}))
            st = json.loads(await ws.recv())["data"]
            assert st["task_id"] == "bursty_workload" and st["window"] == 1 and st["step_count"] == 1
            await ws.send(json.dumps({"type": "step", "data": GOOD}))
            obs = json.loads(await ws.recv())["data"]["observation"]
            assert obs["window"] == 2 and obs["task_id"] == "bursty_workload"
    asyncio.run(go())


@pytest.mark.parametrize("second", ["reset", "step"])
def test_websocket_operations_sent_back_to_back_wait_safely(gated_server, second):
    """One connection is one session: a second message waits for the first's answer; the server
    keeps answering everyone else meanwhile."""
    url, gate = gated_server

    async def go():
        async with websockets.connect(url.replace("http", "ws") + "/ws") as ws, \
                httpx.AsyncClient(base_url=url, timeout=20) as c:
            await ws.send(json.dumps({"type": "reset", "data": {"seed": 2}}))
            await ws.recv()
            gate.arm()
            await ws.send(json.dumps({"type": "step", "data": {"policy": "heuristic"}}))
            assert await asyncio.to_thread(gate.entered.wait, 10)
            data = {"seed": 3} if second == "reset" else GOOD
            await ws.send(json.dumps({"type": second, "data": data}))
            assert max([await _health_ms(c) for _ in range(5)]) < 100
            gate.go.set()
            first_reply = json.loads(await ws.recv())
            second_reply = json.loads(await ws.recv())
            assert first_reply["data"]["observation"]["window"] == 1
            assert second_reply["type"] == "observation"
            assert second_reply["data"]["observation"]["window"] == (0 if second == "reset" else 2)
    asyncio.run(go())


@pytest.mark.parametrize("body", [{"mode": []}, {"mode": {}}, {"mode": 3}, {"mode": "Single"}])
def test_bad_session_modes_are_422(gated_server, body):
    url, _ = gated_server
    r = httpx.post(url + "/sessions", json=body)
    assert r.status_code == 422 and "mode=" in r.json()["detail"] and "allowed: single, multi" in r.text


@pytest.mark.parametrize("sid", [["a"], {"a": 1}, 3, None])
def test_bad_grader_session_ids_are_422(gated_server, sid):
    url, _ = gated_server
    r = httpx.post(url + "/grader", json={"session_id": sid})
    assert r.status_code == 422 and "session_id=" in r.json()["detail"]


def test_status_does_not_collect_garbage_on_the_event_loop(gated_server, monkeypatch):
    url, _ = gated_server
    calls = []
    import gc
    monkeypatch.setattr(gc, "collect", lambda *a: calls.append(threading.current_thread().name) or 0)
    assert httpx.get(url + "/server/status").status_code == 200
    assert calls == []  # plain polling never collects
    assert httpx.get(url + "/server/status", params={"collect": "true"}).status_code == 200
    assert len(calls) == 1 and calls[0] != threading.main_thread().name
