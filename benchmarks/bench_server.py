"""The server's two speed goals, each as a ratio measured in one run.

    python benchmarks/bench_server.py [--starts 3] [--rounds 2]

1. **Start-up: ready in under 3 s.** Time from launching ``igym-marl serve`` to its first answered
   ``/health``, against the baseline of the same command in a process that first imports
   openenv-core's Gradio web interface (what every start cost before the server stopped importing
   it). One untimed start of each first, then interleaved A B A B; the median of each. The servers
   run with Python's bytecode cache on, as Python's default is (pip compiles a wheel's modules when
   it installs them): a PYTHONDONTWRITEBYTECODE=1 in the environment is dropped for them, since an
   editable checkout would otherwise compile the package from source on every start.
2. **``/health`` under load: p99 under 100 ms.** The load of docs/server.md (32 WebSocket sessions
   each playing a whole ``bursty_workload`` episode with the heuristic, 2 clients polling
   ``/server/status``) from a load-generator process, while this process probes ``/health`` every
   50 ms; against the same probe on the idle server. The first round warms the server up and is
   not counted. On 2 cores the server, the load and the probe share the machine, so the ratio to
   the idle probe is the figure to compare across machines.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

import httpx
import numpy as np

BASELINE = ("import openenv.core.env_server.web_interface, sys; from igym_marl.cli import main; "
            "sys.exit(main(sys.argv[1:]))")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(eager_web_interface: bool, env: dict | None = None) -> tuple[subprocess.Popen, str, float]:
    port = _free_port()
    pre = [sys.executable, "-c", BASELINE] if eager_web_interface else [sys.executable, "-m", "igym_marl.cli"]
    t0 = time.perf_counter()
    proc = subprocess.Popen([*pre, "serve", "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with code {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return proc, url, time.perf_counter() - t0
        except httpx.HTTPError:
            time.sleep(0.02)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def _probe(url: str, while_running: subprocess.Popen | None, seconds: float = 0.0) -> list[float]:
    out = []
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=30) as c:
        while (while_running.poll() is None) if while_running else time.monotonic() < deadline:
            t0 = time.perf_counter()
            c.get("/health").raise_for_status()
            out.append(1e3 * (time.perf_counter() - t0))
            time.sleep(0.05)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--starts", type=int, default=3, help="start-ups timed of each kind")
    ap.add_argument("--rounds", type=int, default=2, help="load rounds counted after the warm-up round")
    args = ap.parse_args(argv)

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times = {False: [], True: []}
    for _ in range(args.starts + 1):  # the first round is untimed: it writes the bytecode and warms the disk cache
        for eager in (False, True):
            proc, _, dt = _start(eager, env)
            times[eager].append(dt)
            _stop(proc)
    now, before = float(np.median(times[False][1:])), float(np.median(times[True][1:]))
    print(f"start-up to the first /health: {now:.2f} s, with openenv's web interface imported "
          f"{before:.2f} s (ratio {now / before:.2f}; medians of {args.starts}); goal < 3 s")

    proc, url, _ = _start(False)
    try:
        idle = _probe(url, None, seconds=5.0)
        loaded = []
        for rnd in range(args.rounds + 1):
            load = subprocess.Popen([sys.executable, "-m", "igym_marl.server.loadgen", "--url",
                                     url.replace("http", "ws"), "--sessions", "32", "--task", "bursty_workload",
                                     "--policy", "heuristic", "--seed", str(1_000_000 + 100_000 * rnd),
                                     "--status-pollers", "2"], stdout=subprocess.PIPE, text=True)
            health = _probe(url, load)
            summary = json.loads(load.communicate()[0])
            if summary["errors"]:
                raise SystemExit(f"the load met errors: {summary['first_errors']}")
            if rnd:  # the first round warms the server up (policies load on first use)
                loaded += health
    finally:
        _stop(proc)
    i99, l99 = float(np.percentile(idle, 99)), float(np.percentile(loaded, 99))
    print(f"/health p99: idle {i99:.1f} ms, under 32 sessions' load {l99:.1f} ms "
          f"(ratio {l99 / i99:.1f}; p50 {np.percentile(idle, 50):.1f} / {np.percentile(loaded, 50):.1f} ms, "
          f"{len(loaded)} probes under load); goal < 100 ms under load")


if __name__ == "__main__":
    main()
