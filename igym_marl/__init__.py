"""igym-marl: a calibrated LLM-serving simulator and a cooperative multi-agent environment for
learning to operate inference servers (README.md; docs/architecture.md maps the package)."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("igym-marl")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
