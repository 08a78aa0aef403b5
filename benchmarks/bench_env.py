"""Env speed against the bare simulator on the same actions.

A thin entry point over ``igym_marl.tools.bench_env`` (its docstring and ``--help`` describe the options);
``igym-marl bench env ...`` is the same command.
"""

from igym_marl.tools.bench_env import main

if __name__ == "__main__":
    main()
