"""Trace loading speed against pandas' read_csv of the same file.

A thin entry point over ``igym_marl.tools.bench_loaders`` (its docstring and ``--help`` describe the options);
``igym-marl bench loaders ...`` is the same command.
"""

from igym_marl.tools.bench_loaders import main

if __name__ == "__main__":
    main()
