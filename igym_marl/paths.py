"""Where the files the package reads live, in a checkout and in an installed wheel.

* ``DATA_DIR``: the measurements and sample traces, described in data/README.md. In a checkout they
  are the repository's top-level ``data/`` folder; a wheel carries the same folder as
  ``igym_marl/data`` (setup.py maps it).
* ``LEADERBOARD_FILE``: docs/leaderboard.md (``make leaderboard`` writes it; the server shows it),
  carried by a wheel as ``igym_marl/docs/leaderboard.md``.
* ``TUNED_DIR``, ``CHECKPOINT_DIR``: what the package produces and ships with its policies, the
  tuned baselines' parameters and the trained checkpoints (igym_marl/agents/data,
  igym_marl/agents/checkpoints).

A missing file is an error naming it, never a fallback.
"""

from __future__ import annotations

import json
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _shipped(folder: str) -> Path:
    installed = PACKAGE_DIR / folder  # a wheel's copy
    return installed if installed.is_dir() else PACKAGE_DIR.parent / folder  # else the checkout's


DATA_DIR = _shipped("data")
LEADERBOARD_FILE = _shipped("docs") / "leaderboard.md"
TUNED_DIR = PACKAGE_DIR / "agents" / "data"
CHECKPOINT_DIR = PACKAGE_DIR / "agents" / "checkpoints"


def data_path(*parts: str) -> Path:
    """``data/<parts...>``; FileNotFoundError naming the file if it is absent."""
    path = DATA_DIR.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: igym-marl reads its data from {DATA_DIR} (data/README.md lists every file); "
            f"reinstall the package, or restore the file in a clone of the repository")
    return path


def shipped_json(path: Path, made_by: str, for_update: bool = False) -> dict:
    """A parameter file that ships with the package (tuned baselines); FileNotFoundError naming it and
    the command that writes it if it is absent, never an empty fallback. ``for_update``: the command
    itself, about to add its result, starts from nothing when the file is absent."""
    if for_update and not path.exists():
        return {}
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it ships with igym-marl (reinstall the package) and "
                                f"`{made_by}` writes it")
    return json.loads(path.read_text())
