"""The built package works anywhere: build the sdist and, from it, the wheel; install the wheel in a
clean venv in a folder far from the checkout; and check that scores there equal the checkout's to
the last digit.

    python scripts/check_wheel.py [--torch-index URL] [--keep]

1. ``python -m build`` writes the sdist, then builds the wheel from the unpacked sdist (what a user
   without the repository gets), into a temporary folder.
2. A fresh venv (no system site-packages) in that folder gets the torch pin (from --torch-index if
   given, as the Makefile's TORCH_INDEX) and the wheel with its dependencies, nothing else.
3. From inside that folder, the installed ``igym-marl evaluate`` plays heuristic, best-constant and
   mappo on adversarial_multitenant, seed 1,000,000; the checkout's interpreter plays the same. Every
   per-episode score and metric must be identical, and the installed package must read its data,
   parameters and checkpoints from its own site-packages.

`make test-wheel` runs it; CI runs `make test-wheel`. Exit status 1 on any difference.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AGENTS = "heuristic,best-constant,mappo"
TASK, SEED = "adversarial_multitenant", "1000000"  # where the three policies play differently
WHERE = ("import igym_marl, igym_marl.paths as p; print(igym_marl.__file__); print(p.DATA_DIR); "
         "print(p.TUNED_DIR); print(p.CHECKPOINT_DIR); print(p.LEADERBOARD_FILE)")


def run(cmd: list[str], cwd: Path, env: dict | None = None) -> str:
    print("$", " ".join(cmd), flush=True)
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.stdout


def evaluate(python: str, cwd: Path, out: Path, env: dict | None = None) -> list[dict]:
    run([python, "-m", "igym_marl.cli", "evaluate", "--task", TASK, "--agent", AGENTS, "--seeds", SEED,
         "--out", str(out), "--no-progress"], cwd, env)
    episodes = json.loads(out.read_text())  # one record per episode
    return sorted(episodes, key=lambda e: (e["agent"], e["task"], e["seed"]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--torch-index", default=os.environ.get("TORCH_INDEX", ""),
                    help="the index torch is installed from in the clean venv (default: pip's own)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder and say where it is")
    args = ap.parse_args(argv)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    work = Path(tempfile.mkdtemp(prefix="igym-wheel-"))
    try:
        dist = work / "dist"
        run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)], work)
        wheel = next(dist.glob("igym_marl-*.whl"))
        venv = work / "venv"
        run([sys.executable, "-m", "venv", str(venv)], work)
        py = str(venv / "bin" / "python")
        torch = os.environ.get("TORCH_PIN", "torch==2.13.0")
        run([py, "-m", "pip", "install", "-q", *(["--index-url", args.torch_index] if args.torch_index else []),
             torch], work)
        run([py, "-m", "pip", "install", "-q", str(wheel)], work)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        where = run([py, "-c", WHERE], work, env).split()
        site = Path(where[0]).parent
        if ROOT in site.parents or site == ROOT or not all(Path(w).is_relative_to(site) for w in where[1:]):
            raise SystemExit(f"the installed package reads outside its own folder {site}: {where}")
        installed = evaluate(py, work, work / "installed.json", env)
        checkout = evaluate(sys.executable, ROOT, work / "checkout.json")
        if installed != checkout:
            for a, b in zip(installed, checkout):
                if a != b:
                    diff = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
                    print(f"{a['agent']} seed {a['seed']}: installed vs checkout {diff}")
            print(f"FAIL: the installed wheel's scores differ from the checkout's ({project['name']} {project['version']})")
            return 1
        print(f"ok: {wheel.name} installed in a clean venv at {venv} reads everything from {site}; "
              f"{len(installed)} episodes identical to the checkout's: "
              + ", ".join(f"{e['agent']} {e['score']!r}" for e in installed))
        return 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
