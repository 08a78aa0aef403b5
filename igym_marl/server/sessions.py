"""HTTP sessions: one env per session, a cap on their number, and expiry when idle.

For clients that do not speak WebSocket (OpenEnv's plain HTTP routes build a fresh env per
request, so an episode cannot span requests there). Framework-free: the FastAPI routes in app.py
call this store.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from .environment import MultiAgentServingEnvironment, ServingEnvironment

MODES = {"single": ServingEnvironment, "multi": MultiAgentServingEnvironment}


class SessionLimit(RuntimeError):
    """Every session slot is taken."""


class UnknownSession(KeyError):
    """No session by that id (never created, closed, or expired)."""


@dataclass
class Session:
    id: str
    mode: str
    env: object
    created_s: float
    last_used_s: float
    lock: threading.Lock = field(default_factory=threading.Lock)


class SessionStore:
    """At most `max_sessions` sessions; one idle for more than `idle_timeout_s` is dropped at the
    next access to the store. Thread-safe; each session's own lock serialises its steps."""

    def __init__(self, max_sessions: int = 64, idle_timeout_s: float = 600.0, clock=time.monotonic):
        if isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1:
            raise ValueError(f"max_sessions={max_sessions!r} must be an integer >= 1")
        if not (isinstance(idle_timeout_s, (int, float)) and idle_timeout_s > 0):
            raise ValueError(f"idle_timeout_s={idle_timeout_s!r} must be a number of seconds > 0")
        self.max_sessions = max_sessions
        self.idle_timeout_s = float(idle_timeout_s)
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.expired = 0

    def _reap(self, now: float) -> None:
        stale = [sid for sid, s in self._sessions.items()
                 if now - s.last_used_s > self.idle_timeout_s and not s.lock.locked()]
        for sid in stale:
            del self._sessions[sid]
        self.expired += len(stale)

    def create(self, mode: str = "single", task_id: str | None = None) -> Session:
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is unknown; allowed: {', '.join(MODES)}")
        env = MODES[mode]() if task_id is None else MODES[mode](task_id)  # ValueError for a bad task
        with self._lock:
            now = self._clock()
            self._reap(now)
            if len(self._sessions) >= self.max_sessions:
                raise SessionLimit(f"session limit reached: {len(self._sessions)} of {self.max_sessions} in use; "
                                   f"close one (DELETE /sessions/{{id}}) or wait until one has been idle for "
                                   f"{self.idle_timeout_s:g} s")
            s = Session(uuid.uuid4().hex, mode, env, now, now)
            self._sessions[s.id] = s
            return s

    def get(self, sid: str) -> Session:
        with self._lock:
            now = self._clock()
            self._reap(now)
            s = self._sessions.get(sid)
            if s is None:
                raise UnknownSession(f"session {sid!r} does not exist (never created, closed, or idle for more "
                                     f"than {self.idle_timeout_s:g} s)")
            s.last_used_s = now
            return s

    def touch(self, s: Session) -> None:
        with self._lock:
            s.last_used_s = self._clock()

    def close(self, sid: str) -> None:
        with self._lock:
            if self._sessions.pop(sid, None) is None:
                raise UnknownSession(f"session {sid!r} does not exist")

    def reap(self) -> int:
        with self._lock:
            before = len(self._sessions)
            self._reap(self._clock())
            return before - len(self._sessions)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)
