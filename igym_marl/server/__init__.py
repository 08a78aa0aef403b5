"""igym_marl.server: the environment over the network, and a live web dashboard.

Optional: ``pip install -e '.[server]'`` (openenv-core, FastAPI, uvicorn), then

    igym-marl serve [--host 127.0.0.1] [--port 8000] [--max-sessions 64]

* The OpenEnv protocol, served by openenv-core itself: ``POST /reset``, ``POST /step``,
  ``GET /state``, ``/health``, ``/schema``, ``/metadata`` and the WebSocket ``/ws`` (one env per
  connection) for the single-agent InferenceGym interface; the same under ``/multi`` for the
  four-agent interface.
* HTTP sessions for clients without WebSockets under ``/sessions`` (docs/server.md).
* ``GET /tasks``, ``POST /grader``, ``GET /baseline``, ``GET /leaderboard``.
* The dashboard at ``/web`` (``/`` redirects there), served from this package.

The simulator and the envs know nothing of this package: it is an adapter over
``igym_marl.envs``.
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
    import openenv  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("igym_marl.server needs the server extra: pip install -e '.[server]'") from e

from .app import create_app  # noqa: E402

__all__ = ["create_app"]
