"""The ``igym-marl`` command: one front door over the functions the scripts call.

    igym-marl train [...]              train MAPPO, IPPO or single-agent PPO   (= python train_marl.py)
    igym-marl evaluate [...]           evaluate policies on held-out seeds     (= python evaluate.py)
    igym-marl leaderboard [...]        every baseline and shipped learner, 10 held-out episodes, table and plot
    igym-marl serve [...]              the OpenEnv-compatible server and its dashboard
    igym-marl replay [...]             replay measured serving runs, or fit an engine profile to them
    igym-marl bench [sim|env|loaders]  speed benchmarks, each against its recorded baseline (all three by default)
    igym-marl tune [...]               search the best constants / tune the heuristic on training seeds
    igym-marl cluster-baselines [...]  cluster mode's best constants, HPA rule and baseline table

``igym-marl COMMAND --help`` describes a command's options. ``serve`` needs the server extra:
``pip install -e '.[server]'`` (docs/server.md).
"""

from __future__ import annotations

import argparse
import importlib
import socket
import sys

# command -> (module whose main(argv) runs it, one line of help); each module's docstring is its --help
COMMANDS = {
    "train": ("igym_marl.agents.training.train", "train MAPPO, IPPO or single-agent PPO (= python train_marl.py)"),
    "evaluate": ("igym_marl.agents.analysis.evaluate", "evaluate policies on held-out seeds (= python evaluate.py)"),
    "leaderboard": ("igym_marl.agents.analysis.evaluate", "every baseline and shipped learner on every task: "
                                                          "evaluate --compare, 10 held-out episodes, table and plot"),
    "replay": ("igym_marl.tools.replay", "replay measured serving runs through the simulator, or fit an engine to them"),
    "bench": ("", "speed benchmarks against their recorded baselines: sim, env, loaders (default: all three)"),
    "tune": ("igym_marl.agents.analysis.tuning", "search the best constants or tune the heuristic on training seeds"),
    "cluster-baselines": ("igym_marl.agents.cluster.evaluate", "cluster mode: best constants, HPA rule, baseline table"),
}
BENCHES = {"sim": "igym_marl.tools.bench_sim", "env": "igym_marl.tools.bench_env",
           "loaders": "igym_marl.tools.bench_loaders"}
# what `igym-marl leaderboard` passes to evaluate before the user's own options (which win)
LEADERBOARD_ARGS = ["--compare", "--episodes", "10", "--workers", "2", "--markdown", "leaderboard.md",
                    "--plot", "leaderboard.png"]

MIN_BODY_BYTES = 1024  # as igym_marl.server.app.MIN_BODY_BYTES (the server extra may be missing here)
DEFAULT_MAX_BODY_BYTES = 256 * 1024  # as igym_marl.server.app.DEFAULT_MAX_BODY_BYTES


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
    ap = argparse.ArgumentParser(prog="igym-marl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)  # its own parser reads the rest (_run_command)
    s = sub.add_parser("serve", help="serve the environment (OpenEnv protocol, HTTP sessions, dashboard at /web)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000)")
    s.add_argument("--max-sessions", type=_positive_int("--max-sessions"), default=64,
                   help="HTTP sessions, and WebSocket sessions per OpenEnv endpoint, each at most this many (default 64)")
    s.add_argument("--idle-timeout", type=_seconds, default=600.0,
                   help="seconds after which an idle session is closed (default 600)")
    s.add_argument("--max-body-bytes", type=_body_bytes, default=DEFAULT_MAX_BODY_BYTES,
                   help=f"largest HTTP request body and WebSocket message accepted, >= {MIN_BODY_BYTES} "
                        f"(default {DEFAULT_MAX_BODY_BYTES}: a cluster episode's grader log with per-replica "
                        f"knobs is about 120 kB)")
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
        from .server.origins import check_origins  # light: the server stack is imported below
    except ImportError as e:
        raise SystemExit(f"igym-marl serve: {e}; install the server extra: pip install -e '.[server]'") from None
    try:
        origins = check_origins(args.allow_origin)
    except ValueError as e:
        raise SystemExit(f"igym-marl serve: --allow-origin: {e}") from None
    sock = _bind(args.host, args.port)  # connections wait in the backlog until the app is up
    print(f"igym-marl: listening on http://{args.host}:{args.port}; loading the server ...", flush=True)
    import uvicorn

    from .server import create_app
    app = create_app(max_sessions=args.max_sessions, idle_timeout_s=args.idle_timeout,
                     max_body_bytes=args.max_body_bytes, allow_origins=origins)
    print(f"igym-marl: serving on http://{args.host}:{args.port} (dashboard: /web, API docs: /docs)", flush=True)
    config = uvicorn.Config(app, log_level=args.log_level, ws_max_size=args.max_body_bytes)
    uvicorn.Server(config).run(sockets=[sock])


def _run_command(name: str, argv: list[str]) -> int:
    """Run `name`'s main over `argv`, its usage lines reading ``igym-marl NAME``."""
    if name == "bench":
        which = [argv.pop(0)] if argv and argv[0] in BENCHES else list(BENCHES)
        if argv and not argv[0].startswith("-"):
            raise SystemExit(f"igym-marl bench: {argv[0]!r} is not a benchmark; allowed: {', '.join(BENCHES)}")
        if len(which) > 1 and argv:
            raise SystemExit(f"igym-marl bench: options {argv} need one benchmark: igym-marl bench "
                             f"{{{','.join(BENCHES)}}} {' '.join(argv)}")
        for b in which:
            code = _call(BENCHES[b], f"igym-marl bench {b}", argv)
            if code:
                return code
        return 0
    if name == "leaderboard":
        argv = LEADERBOARD_ARGS + argv
    return _call(COMMANDS[name][0], f"igym-marl {name}", argv)


def _call(module: str, prog: str, argv: list[str]) -> int:
    saved = sys.argv[0]
    sys.argv[0] = prog  # argparse names the program after argv[0]
    try:
        return int(importlib.import_module(module).main(argv) or 0)
    finally:
        sys.argv[0] = saved


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return _run_command(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        serve(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
