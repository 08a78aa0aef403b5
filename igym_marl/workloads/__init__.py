"""igym_marl.workloads: where traffic comes from. Imports no RL library."""

from .generators import SHAREGPT_LENGTHS, LengthModel, poisson_workload

__all__ = ["poisson_workload", "LengthModel", "SHAREGPT_LENGTHS"]
