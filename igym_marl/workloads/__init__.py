"""igym_marl.workloads: where traffic comes from. Imports no RL library.

Trace loaders (BurstGPT, Azure, Mooncake), serving-run replay, generators (Poisson, Gamma, BurstGPT- and Azure-calibrated),
traffic statistics and the task catalog.
"""

from .generators import (AZURE_CONV_LENGTHS, SHAREGPT_LENGTHS, BurstGPTLengths, BurstGPTProfile, EmpiricalLengths,
                         LengthModel,
                         QuantileLengths, TenantStream, azure_conv_workload, burstgpt_workload, gamma_workload,
                         poisson_workload, streams_workload)
from .stats import traffic_stats
from .tasks import (ALIASES, EVAL_SEEDS, TASK_IDS, TASKS, TRAIN_SEEDS, VLLM_DEFAULT, TaskSpec, get_task,
                    measure_capacity_rps, trace_task)
from .traces import (LoadReport, ParsedTrace, TraceFormatError, detect_format, load_azure, load_burstgpt, load_mooncake,
                     parse_azure, parse_burstgpt, parse_mooncake, window)
from ..sim.toy import toy_workload

__all__ = ["poisson_workload", "gamma_workload", "burstgpt_workload", "azure_conv_workload", "streams_workload",
           "TenantStream", "LengthModel", "BurstGPTLengths", "QuantileLengths", "BurstGPTProfile", "SHAREGPT_LENGTHS",
           "AZURE_CONV_LENGTHS", "traffic_stats", "TaskSpec", "TASKS", "ALIASES", "TASK_IDS", "VLLM_DEFAULT",
           "get_task", "trace_task", "TRAIN_SEEDS", "EVAL_SEEDS", "measure_capacity_rps", "load_burstgpt", "load_azure", "LoadReport",
           "TraceFormatError", "toy_workload", "EmpiricalLengths", "ParsedTrace", "parse_burstgpt", "parse_azure",
           "window", "detect_format", "parse_mooncake", "load_mooncake"]
