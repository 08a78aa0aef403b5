"""examples/rllib_ppo.py runs as documented at a tiny budget and prints a held-out score."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")

ROOT = Path(__file__).resolve().parents[2]


def test_the_rllib_example_trains_and_scores_a_held_out_episode():
    r = subprocess.run([sys.executable, "-W", "ignore", str(ROOT / "examples" / "rllib_ppo.py"), "--iterations", "1",
                        "--train-batch", "64", "--episode-windows", "8"], cwd=ROOT, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    m = re.search(r"seed 1000000: RLlib PPO .* (\d\.\d{4})$", r.stdout.strip())
    assert m and 0.0 <= float(m.group(1)) <= 1.0, r.stdout
