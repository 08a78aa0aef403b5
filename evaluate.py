"""Evaluate policies on igym-marl tasks over held-out seeds, with honest statistics.

A thin entry point: the evaluation lives in ``igym_marl/agents/analysis/evaluate.py``, whose
docstring and ``python evaluate.py --help`` describe every option. ``igym-marl evaluate ...`` is
the same command.
"""

import sys

from igym_marl.agents.analysis.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
