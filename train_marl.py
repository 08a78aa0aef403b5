"""Train policies for igym-marl: MAPPO, IPPO, single-agent PPO and ablations, single-replica or cluster.

A thin entry point: the training loop lives in ``igym_marl/agents/training/train.py``, whose
docstring and ``python train_marl.py --help`` describe every option. ``igym-marl train ...`` is
the same command.
"""

import sys

from igym_marl.agents.training.train import main

if __name__ == "__main__":
    sys.exit(main())
