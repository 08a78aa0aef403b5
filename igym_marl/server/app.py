"""The FastAPI application: OpenEnv's routes (served by openenv-core), HTTP sessions, the task
catalog, the grader, server-side baselines, the leaderboard and the dashboard.

Route layout (docs/server.md):

* OpenEnv, single agent: ``POST /reset``, ``POST /step``, ``GET /state``, ``GET /health``,
  ``GET /schema``, ``GET /metadata``, WebSocket ``/ws``.
* OpenEnv, four agents: the same under ``/multi``; cluster mode (replicas, router, autoscaler)
  under ``/cluster``.
* HTTP sessions: ``POST /sessions``, ``POST /sessions/{id}/reset``, ``POST /sessions/{id}/step``,
  ``GET /sessions/{id}/state``, ``GET /sessions/{id}/log``, ``DELETE /sessions/{id}``. They live
  under their own prefix, so they never collide with OpenEnv's ``/reset`` and ``/step``.
* ``GET /tasks``, ``POST /grader``, ``GET /baseline``, ``GET /leaderboard``, ``GET /server/status``.
* ``/web``: the dashboard; ``/`` redirects there.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
from pathlib import Path
from typing import Optional

from fastapi import Body, FastAPI, HTTPException, Request, WebSocketDisconnect
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from openenv.core.env_server.http_server import HTTPEnvServer
from openenv.core.env_server.types import ConcurrencyConfig
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..envs import AGENT_KNOBS, AGENTS
from ..paths import LEADERBOARD_FILE
from ..workloads.tasks import get_task
from ..envs.cluster import ROUTER_RULES
from ..workloads.cluster_tasks import CLUSTER_TASK_IDS, get_cluster_task
from .environment import (BASELINES, CLUSTER_BASELINES, DEFAULT_CLUSTER_TASK, DEFAULT_TASK, LIVE_EPISODES, SINGLE_TASKS,
                          ClusterServingEnvironment, EpisodeOver, MultiAgentServingEnvironment, ServingEnvironment,
                          replay, run_baseline)
from .models import (CLUSTER_SERVER_POLICIES, KNOB_FIELDS, SERVER_POLICIES, ClusterAction, ClusterObservation,
                     MultiAgentAction, MultiAgentObservation, ServingAction, ServingObservation)
from .origins import check_origins
from .sessions import MODES, SessionBusy, SessionLimit, SessionStore, UnknownSession, check_mode, check_session_id

WEB_DIR = Path(__file__).resolve().parent / "web"
DEFAULT_MAX_BODY_BYTES = 256 * 1024  # a cluster grader log with per-replica knobs is ~120 kB


class BodyLimit:
    """Refuse HTTP request bodies over `max_bytes` with 413 (declared or streamed)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def _reject(self, send, size_text: str) -> None:
        body = json.dumps({"detail": f"request body of {size_text} bytes exceeds the limit of {self.max_bytes} bytes"})
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body.encode()})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(send, declared.decode())
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await self._reject(send, f"more than {size}")
            chunks.append(chunk)
            more = msg.get("more_body", False)
        body, sent = b"".join(chunks), False

        async def replay_body():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()
        return await self.app(scope, replay_body, send)


try:  # starlette >= 1.x raises this RuntimeError subclass on a send or receive after the client left
    from starlette.websockets import WebSocketDisconnected as _LateDisconnect
except ImportError:  # pragma: no cover - older starlette
    _LateDisconnect = WebSocketDisconnect


class WebSocketEndGuard:
    """A client that closes its WebSocket before the server's reply is not an error: openenv's
    /ws handler has already destroyed the session by then, so the late send's disconnect
    (``WebSocketDisconnect``, or ``WebSocketDisconnected`` on starlette 1.x) is dropped here instead
    of being logged as an exception."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        try:
            await self.app(scope, receive, send)
        except (WebSocketDisconnect, _LateDisconnect, OSError):
            pass


class DetailedWsErrors:
    """openenv-core answers an invalid WebSocket message with the message "Invalid message" and the
    details in ``data.errors``; its own client prints only the message and the code. Here the first
    error's text joins the message (``Invalid message: kv_budget_fraction=3 is out of range ...``),
    so every client shows what was wrong; ``data.errors`` is unchanged."""

    def __init__(self, app):
        self.app = app

    @staticmethod
    def detailed(text: str) -> str:
        if '"VALIDATION_ERROR"' not in text or '"Invalid message"' not in text:
            return text
        try:
            reply = json.loads(text)
            data = reply["data"]
            first = data["errors"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            return text
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("data",))
        msg = str(first.get("msg", "")).removeprefix("Value error, ")
        data["message"] = f"Invalid message: {msg}" + (f" (at {where})" if where else "")
        if len(data["errors"]) > 1:
            data["message"] += f"; and {len(data['errors']) - 1} more in data.errors"
        return json.dumps(reply)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)

        async def send_detailed(message):
            if message.get("type") == "websocket.send" and message.get("text"):
                message = {**message, "text": self.detailed(message["text"])}
            await send(message)
        return await self.app(scope, receive, send_detailed)


class OriginGuard:
    """WebSocket handshakes from a web page of another origin are refused (HTTP 403), so a page
    the user happens to open cannot fill a local server's session slots. Allowed: no ``Origin``
    header (programs, not browsers, send none), the server's own origin (``http(s)://`` + the
    ``Host`` the client addressed), and the origins given to ``--allow-origin``."""

    def __init__(self, app, allow_origins: tuple[str, ...] = ()):
        self.app, self.allow = app, {o.rstrip("/").lower() for o in allow_origins}

    def allowed(self, headers: dict) -> bool:
        origin = headers.get(b"origin")
        if origin is None:
            return True
        origin = origin.decode("latin-1").rstrip("/").lower()
        host = headers.get(b"host", b"").decode("latin-1").lower()
        return origin in self.allow or (bool(host) and origin in (f"http://{host}", f"https://{host}"))

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not self.allowed(dict(scope.get("headers") or [])):
            await receive()  # the websocket.connect event
            await send({"type": "websocket.close", "code": 1008, "reason": "origin not allowed"})
            return None
        return await self.app(scope, receive, send)


def _errors(e: ValidationError) -> list:
    return [{"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type"),
             "input": err.get("input")} for err in e.errors(include_url=False, include_context=False)]


def _validation_422(e: ValidationError) -> HTTPException:
    return HTTPException(status_code=422, detail=_errors(e))  # inputs come from a JSON body: serialisable


def _task_entry(t) -> dict:
    return {"id": t.id, "description": t.description, "window_s": t.window_s,
            "episode_windows": t.episode_windows, "capacity_rps": t.capacity_rps,
            "tenants": [{"name": x.name, "ttft_slo_ms": x.ttft_slo_ms, "tpot_slo_ms": x.tpot_slo_ms,
                         "priority": x.priority, "weight": x.weight} for x in t.tenants]}


def task_catalog() -> dict:
    tasks = [_task_entry(get_task(tid)) for tid in SINGLE_TASKS]
    cluster_tasks = [{**_task_entry(t), "replicas": t.replicas, "replica_capacity_rps": t.replica_capacity_rps}
                     for t in map(get_cluster_task, CLUSTER_TASK_IDS)]
    agents = {a: {"n": AGENT_KNOBS[a].n, "knobs": list(AGENT_KNOBS[a].knobs),
                  "levels": [list(lv) for lv in AGENT_KNOBS[a].levels]} for a in AGENTS}
    return {"tasks": tasks, "default_task": DEFAULT_TASK, "policies": list(SERVER_POLICIES),
            "baselines": list(BASELINES), "knob_fields": list(KNOB_FIELDS),
            "action_schema": ServingAction.model_json_schema(),
            "multi_agent": {"agents": agents, "action_schema": MultiAgentAction.model_json_schema()},
            "cluster": {"tasks": cluster_tasks, "default_task": DEFAULT_CLUSTER_TASK,
                        "policies": list(CLUSTER_SERVER_POLICIES), "baselines": list(CLUSTER_BASELINES),
                        "rules": list(ROUTER_RULES), "action_schema": ClusterAction.model_json_schema()}}


def read_leaderboard(path: Path = LEADERBOARD_FILE) -> dict:
    """The first table of docs/leaderboard.md (written by `make leaderboard`) as rows of cells."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it ships with igym-marl (reinstall the package); `make leaderboard` writes it in a clone of the repository")
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    table = []
    for ln in lines:
        if ln.startswith("|"):
            table.append([c.strip() for c in ln.strip("|").split("|")])
        elif table:
            break
    header, rows = table[0], table[2:]
    return {"columns": header, "rows": rows, "source": "docs/leaderboard.md"}


def _obs_response(obs) -> dict:
    data = obs.model_dump(exclude={"metadata"})
    reward, done = data.pop("reward"), data.pop("done")
    return {"observation": data, "reward": reward, "done": done}


MIN_BODY_BYTES = 1024  # 1 kB holds any single-replica step; grader logs need the default


def check_body_bytes(max_body_bytes) -> int:
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < MIN_BODY_BYTES:
        raise ValueError(f"max_body_bytes={max_body_bytes!r} must be an integer >= {MIN_BODY_BYTES} (bytes)")
    return max_body_bytes


def create_app(max_sessions: int = 64, idle_timeout_s: float = 600.0,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, allow_origins: tuple[str, ...] = ()) -> FastAPI:
    """The whole server. `max_sessions` caps the HTTP sessions and, separately, the WebSocket
    sessions of each OpenEnv endpoint; sessions idle for `idle_timeout_s` are dropped; WebSocket
    handshakes from pages of other origins than the server's own and `allow_origins` are refused."""
    check_body_bytes(max_body_bytes)
    allow_origins = check_origins(allow_origins)
    store = SessionStore(max_sessions, idle_timeout_s)  # validates both
    conc = ConcurrencyConfig(max_concurrent_envs=max_sessions, session_timeout=idle_timeout_s)
    app = FastAPI(title="igym-marl", version=__version__,
                  description="LLM-serving control as an OpenEnv environment (docs/server.md)")
    single = HTTPEnvServer(ServingEnvironment, ServingAction, ServingObservation, concurrency_config=conc)
    single.register_routes(app)
    multi_app = FastAPI(title="igym-marl, four agents")
    multi = HTTPEnvServer(MultiAgentServingEnvironment, MultiAgentAction, MultiAgentObservation,
                          concurrency_config=conc)
    multi.register_routes(multi_app)
    app.mount("/multi", multi_app)
    cluster_app = FastAPI(title="igym-marl, cluster mode")
    cluster = HTTPEnvServer(ClusterServingEnvironment, ClusterAction, ClusterObservation, concurrency_config=conc)
    cluster.register_routes(cluster_app)
    app.mount("/cluster", cluster_app)
    app.state.sessions, app.state.openenv = store, {"single": single, "multi": multi, "cluster": cluster}
    app.state.max_body_bytes = max_body_bytes

    _error_handlers(app, multi_app, cluster_app)
    _session_routes(app, store)
    _benchmark_routes(app, store)
    _status_routes(app, store, max_sessions, idle_timeout_s, max_body_bytes)
    _dashboard_and_reaper(app, store, idle_timeout_s)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(WebSocketEndGuard)
    app.add_middleware(DetailedWsErrors)
    app.add_middleware(OriginGuard, allow_origins=allow_origins)
    return app


def _error_handlers(app: FastAPI, *mounted: FastAPI) -> None:
    """A finished episode is 409, a bad value 422, on every app."""

    @app.exception_handler(EpisodeOver)
    async def _episode_over(request: Request, exc: EpisodeOver):
        hint = ("; OpenEnv's plain-HTTP /step builds a fresh env per request: play episodes over /ws or "
                "/sessions (docs/server.md)") if request.url.path in ("/step", "/multi/step", "/cluster/step") else ""
        return JSONResponse({"detail": f"{exc}{hint}"}, status_code=409)

    @app.exception_handler(ValueError)
    async def _bad_value(request: Request, exc: ValueError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    for sub in mounted:
        sub.add_exception_handler(EpisodeOver, _episode_over)
        sub.add_exception_handler(ValueError, _bad_value)


def _exclusive_factory(store: SessionStore):
    """(claim one session for one operation: a context manager, the HTTP error of a failed claim)."""

    def _http_error(e: Exception) -> HTTPException:
        if isinstance(e, UnknownSession):
            return HTTPException(status_code=404, detail=str(e.args[0]))
        return HTTPException(status_code=409, detail=str(e))

    @contextlib.contextmanager
    def _exclusive(sid, operation: str):
        try:
            s = store.claim(sid, operation)
        except (UnknownSession, SessionBusy) as e:
            raise _http_error(e) from None
        try:
            yield s
        finally:
            store.release(s)

    return _exclusive, _http_error


def _session_routes(app: FastAPI, store: SessionStore) -> None:
    # ------------------------------------------------------------------ HTTP sessions
    # One operation at a time per session (sessions.py): a second one is answered 409 at once.
    # Env work runs in the thread pool; the event loop never waits on a lock or on an env.
    _exclusive, _http_error = _exclusive_factory(store)

    def _reset_fields(body: dict) -> dict:
        extra = sorted(set(body) - {"task_id", "seed", "mode"})
        if extra:
            raise ValueError(f"unknown field(s) {extra}; allowed: mode, task_id, seed")
        return {k: body[k] for k in ("task_id", "seed") if k in body}

    @app.post("/sessions", status_code=201, tags=["Sessions"])
    async def create_session(body: dict = Body(default_factory=dict)):
        """Open a session (its own env) and start its first episode: {mode?, task_id?, seed?}."""
        fields = _reset_fields(body)
        mode = check_mode(body.get("mode", "single"))
        env = await run_in_threadpool(MODES[mode])
        try:
            s = store.add(mode, env, busy="reset")
        except SessionLimit as e:
            raise HTTPException(status_code=503, detail=str(e), headers={"Retry-After": "5"}) from None
        try:
            obs = await run_in_threadpool(s.env.reset, **fields)
        except BaseException:
            store.close(s.id, force=True)
            raise
        store.release(s)
        return {"session_id": s.id, "mode": s.mode, **_obs_response(obs)}

    @app.post("/sessions/{sid}/reset", tags=["Sessions"])
    async def reset_session(sid: str, body: dict = Body(default_factory=dict)):
        """Start a new episode: {task_id?, seed?}. All or nothing: a refused reset leaves the session as it was."""
        fields = _reset_fields(body)
        if "mode" in body:
            raise ValueError("mode is fixed when the session is created")
        with _exclusive(sid, "reset") as s:
            obs = await run_in_threadpool(s.env.reset, **fields)
        return {"session_id": s.id, **_obs_response(obs)}

    @app.post("/sessions/{sid}/step", tags=["Sessions"])
    async def step_session(sid: str, body: dict = Body(...)):
        """{action: {...}}: the six knob fields, or {policy: name} (in multi mode, the agents' indices; in
        cluster mode, {knobs, rule, target})."""
        if set(body) != {"action"} or not isinstance(body["action"], dict):
            raise ValueError(f"the body must be {{\"action\": {{...}}}}; got fields {sorted(body)}")
        with _exclusive(sid, "step") as s:
            cls = {"single": ServingAction, "multi": MultiAgentAction, "cluster": ClusterAction}[s.mode]
            try:
                action = cls.model_validate(body["action"])
            except ValidationError as e:
                raise _validation_422(e) from None
            obs = await run_in_threadpool(s.env.step, action)
        return _obs_response(obs)

    @app.get("/sessions/{sid}/state", tags=["Sessions"])
    async def session_state(sid: str):
        with _exclusive(sid, "state read") as s:
            return {"session_id": s.id, "mode": s.mode, **s.env.state.model_dump()}

    @app.get("/sessions/{sid}/log", tags=["Sessions"])
    async def session_log(sid: str):
        """The episode so far as the grader takes it: {task_id, seed, actions}."""
        with _exclusive(sid, "log read") as s:
            return s.env.episode.log_record()

    @app.delete("/sessions/{sid}", status_code=204, tags=["Sessions"])
    async def close_session(sid: str):
        try:
            store.close(sid)
        except (UnknownSession, SessionBusy, ValueError) as e:
            if isinstance(e, ValueError):
                raise
            raise _http_error(e) from None


def _benchmark_routes(app: FastAPI, store: SessionStore) -> None:
    _exclusive, _ = _exclusive_factory(store)

    # ------------------------------------------------------------------ catalog, grading, baselines
    @app.get("/tasks", tags=["Benchmark"])
    async def tasks():
        return task_catalog()

    @app.post("/grader", tags=["Benchmark"])
    async def grader(body: dict = Body(...)):
        """Recompute an episode's score by replaying its log: {task_id, seed, actions} (actions: one
        dict of the six knob fields per window; for a cluster task one {knobs, rule, target} per
        window), or {session_id} of a finished session."""
        if set(body) == {"session_id"}:
            with _exclusive(check_session_id(body["session_id"]), "grading") as s:
                record = s.env.episode.log_record(finished=True)
            task_id, seed, actions = record["task_id"], record["seed"], record["actions"]
        elif set(body) == {"task_id", "seed", "actions"}:
            task_id, seed, actions = body["task_id"], body["seed"], body["actions"]
        else:
            raise ValueError(f"give {{task_id, seed, actions}} or {{session_id}}; got fields {sorted(body)}")
        return await run_in_threadpool(replay, task_id, seed, actions)

    @app.get("/baseline", tags=["Benchmark"])
    async def baseline(policy: str = "heuristic", task_id: str = DEFAULT_TASK, seed: int = 1_000_000):
        """One episode of `policy` on `task_id` and `seed`, run here: heuristic or vllm-default on a
        single-replica task; vllm-default, hpa or best-constant on a cluster task."""
        return await run_in_threadpool(run_baseline, policy, task_id, seed)

    @app.get("/leaderboard", tags=["Benchmark"])
    async def leaderboard():
        try:
            return read_leaderboard()
        except FileNotFoundError as e:
            raise HTTPException(status_code=404, detail=str(e)) from None


def _status_routes(app: FastAPI, store: SessionStore, max_sessions: int, idle_timeout_s: float,
                   max_body_bytes: int) -> None:
    single, multi, cluster = (app.state.openenv[k] for k in ("single", "multi", "cluster"))
    collecting: dict = {}

    async def _collect() -> None:
        """One garbage collection in a worker thread, shared by concurrent callers."""
        if "task" not in collecting:
            collecting["task"] = asyncio.ensure_future(run_in_threadpool(gc.collect))
        try:
            await collecting["task"]
        finally:
            collecting.pop("task", None)

    @app.get("/server/status", tags=["Health"])
    async def server_status(collect: bool = False):
        """Counters of the server. `live_envs` counts the envs not yet freed, which can include
        garbage the collector has not reached yet; `?collect=true` runs a collection first (in a
        worker thread; it takes a few hundred ms and holds the interpreter meanwhile: for tests and
        diagnosis, not for polling)."""
        if collect:
            await _collect()
        return {"live_envs": len(LIVE_EPISODES), "http_sessions": len(store), "ws_sessions": single.active_sessions,
                "multi_ws_sessions": multi.active_sessions, "cluster_ws_sessions": cluster.active_sessions,
                "max_sessions": max_sessions,
                "idle_timeout_s": idle_timeout_s, "expired_http_sessions": store.expired,
                "max_body_bytes": max_body_bytes, "rss_mb": _rss_mb()}


def _dashboard_and_reaper(app: FastAPI, store: SessionStore, idle_timeout_s: float) -> None:
    # ------------------------------------------------------------------ dashboard
    @app.get("/", include_in_schema=False)
    async def root():
        return RedirectResponse("/web/")

    app.mount("/web", StaticFiles(directory=WEB_DIR, html=True), name="web")

    async def _reaper():
        while True:
            await asyncio.sleep(min(30.0, idle_timeout_s / 2))
            store.reap()

    async def _start_reaper():
        app.state.reaper = asyncio.create_task(_reaper())

    async def _stop_reaper():
        app.state.reaper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await app.state.reaper

    app.router.on_startup.append(_start_reaper)
    app.router.on_shutdown.append(_stop_reaper)


def _rss_mb() -> Optional[float]:
    try:
        with open(f"/proc/{os.getpid()}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


__all__ = ["create_app", "task_catalog", "read_leaderboard"]
