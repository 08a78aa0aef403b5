"""The simulator and workload packages import no RL library (ARCHITECTURE.md)."""

import subprocess
import sys


def test_core_imports_no_rl_library():
    code = ("import sys, igym_marl.sim, igym_marl.sim.reference, igym_marl.workloads, igym_marl.sim.calibration;"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('gymnasium', 'pettingzoo', 'supersuit', 'torch')];"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
