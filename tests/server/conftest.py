"""A live server on loopback, started once per module in its own process and stopped after."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("openenv", reason="the server extra is not installed: pip install -e '.[server]'")
import httpx  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, *args: str, log_path: Path):
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "igym_marl.cli", "serve", "--port", str(self.port), *args]
        # to a file, never an unread pipe: a full pipe would stall the server
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not come up within 90 s")

    def log(self) -> str:
        return self.log_path.read_text()

    def status(self, collect: bool = False) -> dict:
        return httpx.get(self.url + "/server/status", params={"collect": "true"} if collect else {},
                         timeout=10).json()

    def tracebacks(self) -> list[str]:
        """Every traceback or ASGI exception the server has logged so far."""
        log = self.log()
        return [ln for ln in log.splitlines() if "Traceback" in ln or "Exception in ASGI" in ln]

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    server = LiveServer("--max-sessions", "40", "--idle-timeout", "120", "--max-body-bytes", "65536",
                        "--allow-origin", "http://localhost:3000", log_path=tmp_path_factory.mktemp("server") / "server.log")
    yield server
    server.stop()


# A valid single-replica action: the six knob fields.
GOOD = dict(batch_cap=64, kv_budget_fraction=0.9, speculation_depth=0, quantization_tier="FP16",
            prefill_decode_split=True, priority_routing=False)


@pytest.fixture(scope="module")
def client():
    """The whole app in-process, no socket: 8 sessions, 10 minutes' idle timeout."""
    from fastapi.testclient import TestClient

    from igym_marl.server import create_app
    with TestClient(create_app(max_sessions=8, idle_timeout_s=600)) as c:
        yield c


CHROMIUM = "/usr/bin/chromium"


def browser_required() -> bool:
    """CI sets IGYM_REQUIRE_BROWSER=1: there a missing browser fails the browser test."""
    return os.environ.get("IGYM_REQUIRE_BROWSER") == "1"
