"""The first run of a process that must compile the kernel says so, once, on stderr."""

import os
import subprocess
import sys


def test_a_cold_cache_is_announced_once(tmp_path):
    code = "from igym_marl.sim import engine; engine.announce_compilation(); engine.announce_compilation()"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})  # an empty cache: cold
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("compiling the simulator's kernel (first run only") == 1, r.stderr
    assert str(tmp_path) in r.stderr and r.stdout == ""
