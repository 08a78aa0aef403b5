"""HTTP sessions: one env per session, one operation at a time on each, a cap on their number, and
expiry when idle.

For clients that do not speak WebSocket (OpenEnv's plain HTTP routes build a fresh env per
request, so an episode cannot span requests there). Framework-free: the FastAPI routes in app.py
call this store.

**Concurrency model.** A session runs one operation at a time. :meth:`SessionStore.claim` marks a
session busy and returns it, or raises :class:`SessionBusy` at once if another operation holds it;
:meth:`SessionStore.release` frees it. Nothing ever waits for a session: a second operation is
refused (HTTP 409), never queued. The store's own lock guards only its dictionary and the busy
flags, for microseconds, and is never held while an env works.
"""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

from .environment import ClusterServingEnvironment, MultiAgentServingEnvironment, ServingEnvironment

MODES = {"single": ServingEnvironment, "multi": MultiAgentServingEnvironment, "cluster": ClusterServingEnvironment}


class SessionLimit(RuntimeError):
    """Every session slot is taken."""


class UnknownSession(KeyError):
    """No session by that id (never created, closed, or expired)."""


class SessionBusy(RuntimeError):
    """Another operation on the session is under way."""


@dataclass
class Session:
    id: str
    mode: str
    env: object
    created_s: float
    last_used_s: float
    busy: str | None = None  # the operation under way, or None


def check_mode(mode) -> str:
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"mode={mode!r} is unknown; allowed: {', '.join(MODES)}")
    return mode


def check_session_id(sid) -> str:
    if not isinstance(sid, str):
        raise ValueError(f"session_id={sid!r} must be a string (the id POST /sessions returned)")
    return sid


class SessionStore:
    """At most `max_sessions` sessions; one idle for more than `idle_timeout_s` (and not busy) is
    dropped at the next access to the store. Thread-safe."""

    def __init__(self, max_sessions: int = 64, idle_timeout_s: float = 600.0, clock=time.monotonic):
        if isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1:
            raise ValueError(f"max_sessions={max_sessions!r} must be an integer >= 1")
        if isinstance(idle_timeout_s, bool) or not (isinstance(idle_timeout_s, (int, float)) and idle_timeout_s > 0):
            raise ValueError(f"idle_timeout_s={idle_timeout_s!r} must be a number of seconds > 0")
        self.max_sessions = max_sessions
        self.idle_timeout_s = float(idle_timeout_s)
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.expired = 0

    def _reap(self, now: float) -> None:
        stale = [sid for sid, s in self._sessions.items()
                 if now - s.last_used_s > self.idle_timeout_s and s.busy is None]
        for sid in stale:
            del self._sessions[sid]
        self.expired += len(stale)

    def add(self, mode: str, env, busy: str | None = None) -> Session:
        """Register a session for an env built by the caller (building one is slow: not under the
        store's lock). `busy` names an operation that holds the new session from the start."""
        check_mode(mode)
        with self._lock:
            now = self._clock()
            self._reap(now)
            if len(self._sessions) >= self.max_sessions:
                raise SessionLimit(f"session limit reached: {len(self._sessions)} of {self.max_sessions} in use; "
                                   f"close one (DELETE /sessions/{{id}}) or wait until one has been idle for "
                                   f"{self.idle_timeout_s:g} s")
            s = Session(uuid.uuid4().hex, mode, env, now, now, busy)
            self._sessions[s.id] = s
            return s

    def create(self, mode: str = "single", task_id: str | None = None) -> Session:
        """Build the env of `mode` (ValueError for a bad mode or task) and register it."""
        check_mode(mode)
        env = MODES[mode]() if task_id is None else MODES[mode](task_id)
        return self.add(mode, env)

    def _lookup(self, sid: str) -> Session:
        check_session_id(sid)
        now = self._clock()
        self._reap(now)
        s = self._sessions.get(sid)
        if s is None:
            raise UnknownSession(f"session {sid!r} does not exist (never created, closed, or idle for more "
                                 f"than {self.idle_timeout_s:g} s)")
        s.last_used_s = now
        return s

    def get(self, sid: str) -> Session:
        with self._lock:
            return self._lookup(sid)

    def claim(self, sid: str, operation: str) -> Session:
        """The session, marked busy with `operation`; SessionBusy at once if it is already busy."""
        with self._lock:
            s = self._lookup(sid)
            if s.busy is not None:
                raise SessionBusy(f"session {sid!r} is busy with a {s.busy}; one operation at a time per "
                                  f"session: retry when it has answered")
            s.busy = operation
            return s

    def release(self, s: Session) -> None:
        with self._lock:
            s.busy = None
            s.last_used_s = self._clock()

    @contextmanager
    def exclusive(self, sid: str, operation: str):
        """``with store.exclusive(sid, "step") as s:`` -- claim, then release whatever happens."""
        s = self.claim(sid, operation)
        try:
            yield s
        finally:
            self.release(s)

    def touch(self, s: Session) -> None:
        with self._lock:
            s.last_used_s = self._clock()

    def close(self, sid: str, force: bool = False) -> None:
        """Drop a session; SessionBusy if an operation holds it (unless `force`, for its own
        operation undoing a failed creation)."""
        with self._lock:
            check_session_id(sid)
            s = self._sessions.get(sid)
            if s is None:
                raise UnknownSession(f"session {sid!r} does not exist")
            if s.busy is not None and not force:
                raise SessionBusy(f"session {sid!r} is busy with a {s.busy}; close it when that has answered")
            del self._sessions[sid]

    def reap(self) -> int:
        with self._lock:
            before = len(self._sessions)
            self._reap(self._clock())
            return before - len(self._sessions)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)
