"""Where the data that ships with the repository lives (``data/``, described in data/README.md).

The package reads its measurements and sample traces from the repository's top-level ``data/``
folder and from nowhere else. A missing file is an error naming it, never a fallback.
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
# What the package produces and ships with its policies: the tuned baselines' parameters and the
# trained checkpoints (igym_marl/agents/data, igym_marl/agents/checkpoints).
TUNED_DIR = Path(__file__).resolve().parent / "agents" / "data"
CHECKPOINT_DIR = Path(__file__).resolve().parent / "agents" / "checkpoints"


def data_path(*parts: str) -> Path:
    """``data/<parts...>`` in the repository; FileNotFoundError naming the file if it is absent."""
    path = DATA_DIR.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: igym-marl reads its data from the repository's data/ folder "
            f"(data/README.md lists every file); install from a clone of the repository (pip install -e .)")
    return path
