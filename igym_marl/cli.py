"""The ``igym-marl`` command.

    igym-marl serve [--host 127.0.0.1] [--port 8000] [--max-sessions 64] [--idle-timeout 600]
                    [--max-body-bytes 65536] [--allow-origin http://host:port ...]

``serve`` needs the server extra: ``pip install -e '.[server]'`` (docs/server.md).
"""

from __future__ import annotations

import argparse
import socket
import sys

MIN_BODY_BYTES = 1024  # as igym_marl.server.app.MIN_BODY_BYTES (the server extra may be missing here)


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


def _body_bytes(text):
    v = _positive_int("--max-body-bytes")(text)
    if v < MIN_BODY_BYTES:
        raise argparse.ArgumentTypeError(f"--max-body-bytes={v} must be >= {MIN_BODY_BYTES} (bytes): a grader log "
                                         f"or a step body needs room")
    return v


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
    s.add_argument("--max-body-bytes", type=_body_bytes, default=65536,
                   help=f"largest HTTP request body and WebSocket message accepted, >= {MIN_BODY_BYTES} "
                        f"(default 65536)")
    s.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="a web origin (scheme://host[:port]) whose pages may open WebSockets here, besides the "
                        "server's own; repeatable. Clients that send no Origin (programs) are always allowed")
    s.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"))
    return ap


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything says the server is up."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise SystemExit(f"igym-marl serve: --host={host!r} cannot be resolved: {e.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise SystemExit(f"igym-marl serve: cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(args) -> None:
    try:
        import uvicorn

        from .server.app import check_origins, create_app
    except ImportError as e:
        raise SystemExit(f"igym-marl serve: {e}; install the server extra: pip install -e '.[server]'") from None
    try:
        origins = check_origins(args.allow_origin)
    except ValueError as e:
        raise SystemExit(f"igym-marl serve: --allow-origin: {e}") from None
    app = create_app(max_sessions=args.max_sessions, idle_timeout_s=args.idle_timeout,
                     max_body_bytes=args.max_body_bytes, allow_origins=origins)
    sock = _bind(args.host, args.port)
    print(f"igym-marl: serving on http://{args.host}:{args.port} (dashboard: /web, API docs: /docs)", flush=True)
    config = uvicorn.Config(app, log_level=args.log_level, ws_max_size=args.max_body_bytes)
    uvicorn.Server(config).run(sockets=[sock])


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        serve(args)


if __name__ == "__main__":
    main(sys.argv[1:])
