"""Cluster tasks: their capacity, traffic shape and options."""

import numpy as np
import pytest

from igym_marl.sim import SimConfig
from igym_marl.sim.cluster import ClusterConfig
from igym_marl.workloads.cluster_tasks import CLUSTER_TASKS, get_cluster_task


@pytest.mark.parametrize("tid", list(CLUSTER_TASKS))
def test_recorded_replica_capacity_matches_a_fresh_measurement(tid):
    """The recorded capacity is the mean of the probe over seeds 0-9 (an episode's mix varies by seed)."""
    t = CLUSTER_TASKS[tid]
    fresh = np.mean([t.measure_replica_capacity(seed) for seed in range(10)])
    assert t.replica_capacity_rps == pytest.approx(fresh, rel=0.05)


def test_diurnal_day_has_a_daytime_peak_and_a_night_trough():
    t = get_cluster_task("cluster_diurnal")
    names, labels = t.phase_labels(4)
    w = t.workload(4)
    rate = np.bincount(w.arrival_s.astype(int), minlength=labels.size)[: labels.size] / t.capacity_rps
    day, night = rate[labels == 0].mean(), rate[labels == 2].mean()
    assert names == ("day", "evening", "night")
    assert 0.45 < day < 0.8 and night < 0.2 and day > 3 * night


def test_bursty_storms_reach_the_fleet_and_quiet_phases_do_not():
    t = get_cluster_task("cluster_bursty")
    names, labels = t.phase_labels(4)
    w = t.workload(4)
    rate = np.bincount(w.arrival_s.astype(int), minlength=labels.size)[: labels.size] / t.capacity_rps
    assert names == ("quiet", "storm") and 0.1 < labels.mean() < 0.6
    assert rate[labels == 0].mean() < 0.4 and rate[labels == 1].mean() > 0.7


def test_replicas_scale_the_fleet_and_its_traffic():
    small, big = get_cluster_task("cluster_bursty", replicas=2), get_cluster_task("cluster_bursty", replicas=16)
    assert big.capacity_rps == pytest.approx(8 * small.capacity_rps)
    assert len(big.workload(1)) > 6 * len(small.workload(1))


def test_options_are_checked():
    with pytest.raises(ValueError, match="replicas=0 must be an integer in 1..64"):
        get_cluster_task("cluster_diurnal", replicas=0)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['speed'\]"):
        get_cluster_task("cluster_diurnal", speed=2)
    with pytest.raises(ValueError, match="episode_windows=0"):
        get_cluster_task("cluster_diurnal", episode_windows=0)
    hetero = get_cluster_task("cluster_bursty", cluster=ClusterConfig(replicas=(SimConfig(), SimConfig(gpu="h100-80gb"))))
    assert hetero.replicas == 2
    with pytest.raises(ValueError, match="this task's cluster lists its replicas"):
        get_cluster_task("cluster_bursty", replicas=3, cluster=hetero.cluster)
