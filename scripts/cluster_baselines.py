"""Cluster mode's bar: search the best constant, tune the HPA rule, and evaluate every baseline.

A thin entry point over ``igym_marl/agents/cluster/evaluate.py`` (its docstring and ``--help``
describe the options); ``igym-marl cluster-baselines ...`` is the same command.
"""

from igym_marl.agents.cluster.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
