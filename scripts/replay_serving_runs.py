"""Replay measured serving runs through the simulator, or fit an engine profile to them.

A thin entry point over ``igym_marl.tools.replay`` (its docstring and ``--help`` describe the options);
``igym-marl replay ...`` is the same command.
"""

from igym_marl.tools.replay import main

if __name__ == "__main__":
    raise SystemExit(main())
