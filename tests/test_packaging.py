"""The built wheel installs one top-level package, igym_marl: nothing that could shadow another
distribution's import name (``agents`` is the OpenAI Agents SDK's). It carries every file the package
reads, and a missing one is an error naming it. (scripts/check_wheel.py installs the wheel in a clean
venv far from the checkout and compares scores: `make test-wheel`.)"""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

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


def test_the_wheel_carries_the_data_and_the_leaderboard(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    names = set(zipfile.ZipFile(next(tmp_path.glob("igym_marl-*.whl"))).namelist())
    shipped = {f"igym_marl/data/{p.relative_to(ROOT / 'data')}" for p in (ROOT / "data").rglob("*") if p.is_file()}
    assert shipped and shipped <= names, sorted(shipped - names)  # every file of data/, its README and checksums
    assert "igym_marl/data/README.md" in names and "igym_marl/data/SHA256SUMS" in names
    assert "igym_marl/docs/leaderboard.md" in names
    assert {"igym_marl/agents/checkpoints/mappo/cluster_diurnal.pt", "igym_marl/agents/data/heuristic_params.json",
            "igym_marl/agents/data/cluster_best_constant.json"} <= names


@pytest.mark.parametrize("module, attr, reader, command", [
    ("igym_marl.agents.policies.heuristic", "PARAMS_FILE", lambda m: m.load_tuned("static_workload"),
     "igym-marl tune heuristic"),
    ("igym_marl.agents.analysis.tuning", "BEST_CONSTANT_FILE", lambda m: m.best_constant_or_default("static_workload"),
     "igym-marl tune best-constant"),
    ("igym_marl.agents.cluster.baselines", "CLUSTER_CACHE", lambda m: m.cluster_baseline("cluster_bursty", "hpa"),
     "igym-marl cluster-baselines --search"),
])
def test_a_missing_parameter_file_is_an_error_naming_it_never_a_fallback(monkeypatch, tmp_path, module, attr,
                                                                         reader, command):
    import importlib
    m = importlib.import_module(module)
    gone = tmp_path / "gone.json"
    monkeypatch.setattr(m, attr, gone)
    with pytest.raises(FileNotFoundError) as e:
        reader(m)
    assert str(gone) in str(e.value) and command in str(e.value)


def test_in_a_checkout_the_paths_read_the_repository():
    import igym_marl.paths as paths
    assert paths.DATA_DIR == ROOT / "data" and paths.LEADERBOARD_FILE == ROOT / "docs" / "leaderboard.md"
    with pytest.raises(FileNotFoundError, match="no_such_file.csv is missing"):
        paths.data_path("calibration", "no_such_file.csv")
