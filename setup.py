"""Build configuration beyond pyproject.toml: the repository's top-level ``data/`` folder, and the
leaderboard the server shows, ship inside the wheel as ``igym_marl/data`` and ``igym_marl/docs``.
In a checkout they stay where they are, and ``igym_marl.paths`` reads them there."""
from setuptools import find_namespace_packages, setup

setup(
    # namespace discovery: folders of data (agents/data, agents/checkpoints/*, server/web) are packages too
    packages=[*find_namespace_packages(include=["igym_marl", "igym_marl.*"], exclude=["*.__pycache__"]),
              "igym_marl.data", "igym_marl.data.calibration", "igym_marl.data.traces", "igym_marl.docs"],
    package_dir={"igym_marl.data": "data", "igym_marl.docs": "docs"},
    package_data={"igym_marl.data": ["README.md", "SHA256SUMS", "calibration/*", "traces/*"],
                  "igym_marl.docs": ["leaderboard.md"]},
)
