"""Simulator speed against the reference implementation (the recorded baseline).

A thin entry point over ``igym_marl.tools.bench_sim`` (its docstring and ``--help`` describe the options);
``igym-marl bench sim ...`` is the same command.
"""

from igym_marl.tools.bench_sim import main

if __name__ == "__main__":
    main()
