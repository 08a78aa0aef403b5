"""Cluster tasks: traffic for a fleet of replicas behind a router and an autoscaler.

==================  ========  =======  ============================================================
task                window    windows  traffic (rates relative to the fleet's capacity, N replicas)
==================  ========  =======  ============================================================
``cluster_diurnal`` 10 s      180      a day compressed into 30 minutes: interactive and standard
                                       tenants follow the two-peak daytime shape of conversation
                                       traffic (to ~100 % of the fleet at the peaks, 6 % at night),
                                       batch summarisation and long documents at night (35 %)
``cluster_bursty``  10 s      120      BurstGPT-shaped: quiet phases at ~20 % of the fleet with a
                                       slow wobble, 3 to 5 storms of 1 to 3 minutes reaching 60 to
                                       90 % of the fleet; conversation and API tenants, and a
                                       steady batch background (5 %)
``cluster_          10 s      90       the Mooncake conversation trace (Kimi): long-context chat,
conversation``                         turns resending their history; 60 % of the fleet, each
                                       episode a stretch of the trace at its own pace, thinned
                                       by whole conversations
==================  ========  =======  ============================================================

The conversation tenants of cluster_diurnal and cluster_bursty hold multi-turn conversations
behind shared system prompts, as in the single-replica tasks. All run N = 4 replicas of
Llama-3.1-8B on one A100-80GB by default, on vLLM 0.15's engine profile (``replicas=`` changes
N, up to 64; ``cluster=`` sets the whole ClusterConfig, e.g. heterogeneous replicas). The
fleet's capacity is N times one replica's measured capacity for the task's traffic
(``replica_capacity_rps``: the mean over seeds 0-9 of the probe the single-replica tasks use,
``tasks.episode_capacity`` or the Mooncake trace's; checked by a test).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from ..sim.cluster import MAX_REPLICAS, ClusterConfig
from ..sim.types import Tenant, Workload
from .generators import API, CONVERSATION, BurstGPTLengths, TenantStream, streams_workload
from .tasks import (ADV_LENGTHS, ADV_SHARES, ADV_TENANTS, MOONCAKE_TENANT, DayProfile, EpisodeTraffic, TaskSpec,
                    CHAT_SESSIONS, _adversarial, conversation_rate, _mooncake_capacity, episode_capacity,
                    measure_capacity_rps,
                    mooncake_episode, storm_rate)


@dataclass(frozen=True)
class ClusterTask(EpisodeTraffic):
    """One cluster task. ``capacity_rps`` (the fleet's) = replicas x ``replica_capacity_rps``."""

    id: str
    description: str
    window_s: float
    episode_windows: int
    tenants: tuple[Tenant, ...]
    replica_capacity_rps: float
    # as TaskSpec.traffic: a Workload, or (Workload, (phase names, phase of every second))
    traffic: Callable[["ClusterTask", np.random.Generator], Workload | tuple] = field(repr=False)
    length_mix: tuple = field(repr=False, default=())
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    # measures replica_capacity_rps afresh on one replica's task (default: measure_capacity_rps on length_mix)
    capacity_probe: Callable[[TaskSpec, int], float] | None = field(repr=False, default=None)

    def __post_init__(self):
        self._check_episode()
        if not isinstance(self.cluster, ClusterConfig):
            raise ValueError(f"cluster must be a ClusterConfig, got {type(self.cluster).__name__}")

    @property
    def replicas(self) -> int:
        return self.cluster.n

    @property
    def capacity_rps(self) -> float:
        return self.replica_capacity_rps * self.replicas

    def replica_task(self, i: int = 0) -> TaskSpec:
        """Replica i seen as a single-replica task (its tenants, window and capacity), for
        single-replica policies such as the heuristic."""
        return TaskSpec(f"{self.id}/r{i}", self.description, self.window_s, self.episode_windows, self.tenants,
                        self.replica_capacity_rps, traffic=self.traffic, length_mix=self.length_mix,
                        config=self.cluster.configs[i], ttft_slo_ms=min(t.ttft_slo_ms for t in self.tenants))

    def measure_replica_capacity(self, seed: int = 0) -> float:
        if self.capacity_probe is not None:
            return self.capacity_probe(self.replica_task(0), seed)
        return measure_capacity_rps(self.cluster.configs[0], list(self.length_mix), seed=seed)


# ---------------------------------------------------------------------------------- traffic
DIURNAL_DAY = DayProfile(interactive_peak=0.4, standard_peak=0.22, night_batch=0.05, storms=(0, 0))


def _diurnal(task: ClusterTask, rng) -> tuple[Workload, tuple]:
    return _adversarial(task, rng, DIURNAL_DAY)


BATCH = ADV_TENANTS[2]
CLUSTER_BURSTY_TENANTS = (CONVERSATION, API, BATCH)
BURSTY_SHARES = (0.6, 0.4)  # conversation / API share of the bursty traffic
BATCH_BACKGROUND = 0.05


CLUSTER_STORMS = (0.2, 0.2, (300, 600), (3, 5), (60.0, 180.0), (0.6, 0.9))


def _cluster_bursty(task: ClusterTask, rng) -> tuple[Workload, tuple]:
    """The traffic, and its phases: quiet, or storm where the bursty tenants offer more than half
    the fleet's capacity."""
    total, base = storm_rate(task, rng, *CLUSTER_STORMS, with_base=True)
    batch = np.full(total.shape, BATCH_BACKGROUND * task.capacity_rps)
    conv, api, batch_t = task.tenants
    w = streams_workload([TenantStream(conv, conversation_rate(BURSTY_SHARES[0], total, base, CHAT_SESSIONS), 0.529,
                                       None, sessions=CHAT_SESSIONS),
                          TenantStream(api, BURSTY_SHARES[1] * total, 1.416, BurstGPTLengths(chat=False)),
                          TenantStream(batch_t, batch, 1.4, ADV_LENGTHS[2])], 1.0, rng, name=task.id)
    return w, (("quiet", "storm"), (total > 0.5 * task.capacity_rps).astype(np.int64))


# ---------------------------------------------------------------------------------- catalog
CLUSTER_TASKS: dict[str, ClusterTask] = {
    "cluster_diurnal": ClusterTask(
        "cluster_diurnal", "A day compressed into 30 minutes on a fleet: interactive and standard tenants "
        "peak at 10:30 and 15:00, batch jobs and long documents at night.", window_s=10.0, episode_windows=180,
        tenants=ADV_TENANTS, replica_capacity_rps=7.75, traffic=_diurnal,
        capacity_probe=episode_capacity),
    "cluster_bursty": ClusterTask(
        "cluster_bursty", "BurstGPT-shaped storms at fleet scale: quiet at ~20 % of the fleet, storms of 1-3 "
        "minutes at 60-90 %, conversation and API tenants over a steady batch background.", window_s=10.0,
        episode_windows=120, tenants=CLUSTER_BURSTY_TENANTS, replica_capacity_rps=7.8, traffic=_cluster_bursty,
        capacity_probe=episode_capacity),
    "cluster_conversation": ClusterTask(
        "cluster_conversation", "Kimi's production conversation traffic (the Mooncake trace) across the fleet at 60 % "
        "of its capacity: long-context chat whose turns resend their history, where routing a turn to the "
        "replica that holds its conversation saves its prefill.", window_s=10.0, episode_windows=90,
        tenants=(MOONCAKE_TENANT,), replica_capacity_rps=0.47, traffic=mooncake_episode,
        capacity_probe=_mooncake_capacity),
}
CLUSTER_TASK_IDS = tuple(CLUSTER_TASKS)
CLUSTER_TASK_FIELDS = tuple(f.name for f in dataclasses.fields(ClusterTask) if f.name != "id")


def get_cluster_task(task_id: str, replicas: int | None = None, **overrides) -> ClusterTask:
    """A cluster task by id; ``replicas`` sets N (1..64) on the task's ClusterConfig; other
    ``overrides`` replace ClusterTask fields (e.g. episode_windows=30)."""
    if task_id not in CLUSTER_TASKS:
        raise ValueError(f"task={task_id!r} is unknown; allowed: {', '.join(CLUSTER_TASK_IDS)}")
    unknown = sorted(set(overrides) - set(CLUSTER_TASK_FIELDS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for task {task_id!r}; allowed: {', '.join(CLUSTER_TASK_FIELDS)}")
    task = CLUSTER_TASKS[task_id]
    if overrides:
        task = replace(task, **overrides)
    if replicas is not None:
        if isinstance(replicas, bool) or not isinstance(replicas, (int, np.integer)) or not 1 <= replicas <= MAX_REPLICAS:
            raise ValueError(f"replicas={replicas!r} must be an integer in 1..{MAX_REPLICAS}")
        if not isinstance(task.cluster.replicas, int):
            raise ValueError("replicas= sets N for identical replicas; this task's cluster lists its replicas")
        task = replace(task, cluster=replace(task.cluster, replicas=int(replicas), initial_active=None))
    return task


__all__ = ["ClusterTask", "CLUSTER_TASKS", "CLUSTER_TASK_IDS", "get_cluster_task"]
