"""igym_marl.sim: a steppable simulator of one vLLM-class LLM serving replica.

Imports no RL library. Public API: :class:`Simulator` (``reset``/``advance``/``snapshot``),
:class:`Knobs`, :class:`SimConfig`, :class:`Workload`, :class:`Tenant`, :class:`EngineProfile`
(``SimConfig(engine=...)``), the metrics dataclasses, and :func:`igym_marl.sim.cost_model.predict_ms`.
"""

from .layout import ABANDONED, FINISHED, FUTURE, REJECTED, RUNNING, SLO_MET, SLO_MISSED, SLO_OPEN, WAITING
from .metrics import EpisodeMetrics, LatencyStats, TenantEpisode, TenantWindow, WindowMetrics
from .profiles import EngineProfile
from .simulator import RequestTable, Simulator, Snapshot
from .toy import TOY_TENANTS, toy_workload
from .types import KNOB_LEVELS, VLLM_DEFAULT, Knobs, SimConfig, Tenant, Workload, level_index, nearest_level

__all__ = ["Simulator", "Snapshot", "RequestTable", "Knobs", "VLLM_DEFAULT", "KNOB_LEVELS", "level_index", "nearest_level", "SimConfig", "Tenant", "Workload", "WindowMetrics",
           "TenantWindow", "EpisodeMetrics", "TenantEpisode", "LatencyStats", "toy_workload", "TOY_TENANTS", "EngineProfile",
           # request status and SLO outcome codes of RequestTable.status / .slo
           "FUTURE", "WAITING", "RUNNING", "FINISHED", "REJECTED", "ABANDONED", "SLO_OPEN", "SLO_MET", "SLO_MISSED"]
