"""The house's floors: the simulator core imports no RL library, and no import runs back up
(sim <- workloads <- envs <- serving_v0 <- agents <- server, cli <- scripts): the server serves
policies, so it sits above agents, and nothing below imports it."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ["igym_marl.paths", "igym_marl.sim", "igym_marl.workloads", "igym_marl.envs", "igym_marl.serving_v0",
          "igym_marl.serving_cluster_v0", "igym_marl.demo", "igym_marl.agents", "igym_marl.server", "igym_marl.cli"]


def test_core_imports_no_rl_library():
    code = ("import sys, igym_marl.sim, igym_marl.sim.reference, igym_marl.workloads, igym_marl.sim.calibration;"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('gymnasium', 'pettingzoo', 'supersuit', 'torch')];"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    mod = _module_of(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def _floor(name: str) -> int | None:
    for i, f in enumerate(FLOORS):
        if name == f or name.startswith(f + "."):
            return i
    return None


def test_no_import_runs_back_up():
    upward = []
    for path in (ROOT / "igym_marl").rglob("*.py"):
        here = _floor(_module_of(path))
        for name in _imports(path):
            there = _floor(name)
            if here is not None and there is not None and there > here:
                upward.append(f"{_module_of(path)} imports {name}")
    assert upward == []


def test_the_kernel_layout_is_private_to_the_simulator():
    """``igym_marl.sim.layout`` (the kernel's column numbers) is read only inside ``igym_marl.sim``;
    everything above reads requests through ``Simulator.requests()``."""
    leaks = []
    for path in list((ROOT / "igym_marl").rglob("*.py")) + list((ROOT / "scripts").rglob("*.py")) + \
            list((ROOT / "benchmarks").rglob("*.py")) + [ROOT / "train_marl.py", ROOT / "evaluate.py"]:
        mod = _module_of(path)
        if mod.startswith("igym_marl.sim"):
            continue
        if any(n == "igym_marl.sim.layout" or n.startswith("igym_marl.sim.layout.") for n in _imports(path)):
            leaks.append(mod)
    assert leaks == []


def test_nothing_patches_sys_path():
    """Scripts and benchmarks import the installed package; none edits ``sys.path``."""
    offenders = [str(p.relative_to(ROOT)) for d in ("igym_marl", "scripts", "benchmarks", "tests", "examples")
                 for p in (ROOT / d).rglob("*.py")
                  if p != Path(__file__) and ("sys.path.insert" in p.read_text() or "sys.path.append" in p.read_text())]
    offenders += [f for f in ("train_marl.py", "evaluate.py") if "sys.path" in (ROOT / f).read_text()]
    assert offenders == []
