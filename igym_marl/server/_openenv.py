"""openenv-core's server half, imported without its Gradio web interface.

``openenv.core.env_server`` imports its Gradio web interface in its package ``__init__`` (about 5 s
of the 7 s the package takes here), although this server never mounts it: its dashboard is its
own, at ``/web``. openenv-core treats that module as optional (its ``__init__`` sets
``create_web_interface_app`` to None when the module cannot be found). So while that ``__init__``
runs, and only then, the finder installed here reports that one module as absent. Afterwards it
imports as usual: a user who wants openenv's web interface in the same process can still
``import openenv.core.env_server.web_interface``.
"""
from __future__ import annotations

import importlib.abc
import sys

PACKAGE = "openenv.core.env_server"
SKIPPED = PACKAGE + ".web_interface"


def _initializing(name: str) -> bool:
    module = sys.modules.get(name)
    return module is not None and getattr(getattr(module, "__spec__", None), "_initializing", False)


class _SkipWebInterface(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == SKIPPED and _initializing(PACKAGE):
            raise ModuleNotFoundError(f"{SKIPPED} is not loaded by igym_marl.server", name=name)
        return None


def skip_openenv_web_interface() -> None:
    """Install the finder (once), unless openenv's server package is already imported."""
    if PACKAGE not in sys.modules and not any(isinstance(f, _SkipWebInterface) for f in sys.meta_path):
        sys.meta_path.insert(0, _SkipWebInterface())
