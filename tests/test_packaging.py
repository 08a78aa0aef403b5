"""The built wheel installs one top-level package, igym_marl: nothing that could shadow another
distribution's import name (``agents`` is the OpenAI Agents SDK's)."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_installs_only_igym_marl(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    wheel = next(tmp_path.glob("igym_marl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"igym_marl"}, top
    assert "igym_marl/agents/policies/heuristic.py" in names and "igym_marl/envs/team.py" in names
    # what the policies read ships with them
    assert "igym_marl/agents/data/best_constant.json" in names
    assert "igym_marl/agents/checkpoints/mappo/static_workload.pt" in names
    assert "igym_marl/py.typed" in names  # typed package (PEP 561)
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names), \
        [n for n in names if "dist-info" in n]


def test_the_package_reports_its_version():
    import tomllib

    import igym_marl
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert igym_marl.__version__ == declared
