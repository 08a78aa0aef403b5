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

import importlib.util

from ._openenv import skip_openenv_web_interface

skip_openenv_web_interface()  # openenv's Gradio web interface is never mounted here: seconds off every start

if any(importlib.util.find_spec(m) is None for m in ("fastapi", "openenv", "uvicorn")):  # pragma: no cover
    raise ImportError("igym_marl.server needs the server extra: pip install -e '.[server]'")

__all__ = ["create_app"]


def __getattr__(name: str):
    # the server stack (openenv, FastAPI, the envs) is imported on first use, so that `igym-marl serve`
    # can bind its port and say so, and check its settings, before the seconds that import takes
    if name == "create_app":
        from .app import create_app
        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
