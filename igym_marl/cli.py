"""The ``igym-marl`` command.

    igym-marl serve [--host 127.0.0.1] [--port 8000] [--max-sessions 64] [--idle-timeout 600]
                    [--max-body-bytes 65536]

``serve`` needs the server extra: ``pip install -e '.[server]'`` (docs/server.md).
"""

from __future__ import annotations

import argparse
import sys


def _positive_int(name):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}={text!r} must be an integer") from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"{name}={v} must be >= 1")
        return v
    return parse


def _port(text):
    v = _positive_int("--port")(text)
    if v > 65535:
        raise argparse.ArgumentTypeError(f"--port={v} must be in 1..65535")
    return v


def _seconds(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--idle-timeout={text!r} must be a number of seconds") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"--idle-timeout={v} must be > 0")
    return v


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="igym-marl", description="igym-marl command line")
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve the environment (OpenEnv protocol, HTTP sessions, dashboard at /web)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000)")
    s.add_argument("--max-sessions", type=_positive_int("--max-sessions"), default=64,
                   help="HTTP sessions, and WebSocket sessions per OpenEnv endpoint, each at most this many (default 64)")
    s.add_argument("--idle-timeout", type=_seconds, default=600.0,
                   help="seconds after which an idle session is closed (default 600)")
    s.add_argument("--max-body-bytes", type=_positive_int("--max-body-bytes"), default=65536,
                   help="largest HTTP request body and WebSocket message accepted (default 65536)")
    s.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"))
    return ap


def serve(args) -> None:
    try:
        import uvicorn

        from .server import create_app
    except ImportError as e:
        raise SystemExit(f"igym-marl serve: {e}; install the server extra: pip install -e '.[server]'") from None
    app = create_app(max_sessions=args.max_sessions, idle_timeout_s=args.idle_timeout,
                     max_body_bytes=args.max_body_bytes)
    print(f"igym-marl: serving on http://{args.host}:{args.port} (dashboard: /web, API docs: /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, ws_max_size=args.max_body_bytes)


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        serve(args)


if __name__ == "__main__":
    main(sys.argv[1:])
