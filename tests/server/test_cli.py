"""`igym-marl serve` refuses bad settings in one line, and says it is serving only once it is."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def serve(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "igym_marl.cli", "serve", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("args, fragment", [
    (["--max-body-bytes", "100"], "--max-body-bytes=100 must be >= 1024"),
    (["--max-body-bytes", "x"], "--max-body-bytes='x' must be an integer"),
    (["--port", "70000"], "--port=70000 must be in 1..65535"),
    (["--allow-origin", "evil.example"], "allow_origin='evil.example' is not an origin"),
    (["--host", "no-such-host.invalid"], "--host='no-such-host.invalid' cannot be resolved"),
])
def test_bad_settings_are_one_line_errors(args, fragment):
    r = serve(*args)
    assert r.returncode == 2 or r.returncode == 1, r
    assert fragment in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "serving on" not in r.stdout


def test_a_port_in_use_is_an_error_before_any_serving_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = serve("--port", str(port))
    assert r.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "serving on" not in r.stdout
