"""``igym_marl.serving_cluster_v0``: operate a fleet of LLM serving replicas as a team of agents.

==================  ===========================================================================
Import              ``from igym_marl import serving_cluster_v0``;
                    ``env = serving_cluster_v0.parallel_env(task="cluster_diurnal", replicas=4)``
Agents              per replica i: ``r{i}/batch_scheduler``, ``r{i}/kv_manager``,
                    ``r{i}/spec_controller``, ``r{i}/tenant_router`` (serving_v0's four), then
                    ``router`` and ``autoscaler``: 4 N + 2 agents
Actions             Discrete per agent
Observations        Box(0, 1) per agent; ``state()``: Box(0, 1, (30 + 66,))
Tasks               ``cluster_diurnal``, ``cluster_bursty``, ``cluster_conversation``
                    (igym_marl.workloads.cluster_tasks)
Replicas            N = 4 by default, 1..64 (``replicas=``); heterogeneous fleets through a
                    ClusterTask whose ClusterConfig lists one SimConfig per replica
Episode             every replica and the router and autoscaler act once per window (10 s);
                    truncation after the task's windows
==================  ===========================================================================

The engine is :class:`igym_marl.sim.cluster.Cluster`: N ordinary replicas of the simulator, a
router that hands every window's arrivals to active replicas, and replica states off / starting /
active / draining (its docstring gives the rules). Every request lives on exactly one replica
from its arrival on; a replica scaled down drains what it holds before it turns off.

Actions
-------
===================  ==============  ====================================================================
agent                space           meaning
===================  ==============  ====================================================================
``r{i}/<agent>``     as serving_v0   replica i's knobs, the same levels as serving_v0's four agents
``router``           Discrete(8)     the window's routing rule: 0 round_robin, 1 least_outstanding,
                                     2 tenant_pinning (replica i serves tenant i mod T),
                                     3 prefix_affinity (cache-aware, vLLM router / SGLang defaults),
                                     4-7 scored at prefix weight 0.2, 0.43 (llm-d's 3/7), 0.6, 0.8
                                     (igym_marl.sim.cluster's docstring gives each rule)
``autoscaler``       Discrete(N)     target number of replicas up (starting or active) - 1
===================  ==============  ====================================================================

A cold start takes ``engine_start_s`` (20 s) + weights / ``storage_gb_per_s`` (2 GB/s): 28 s for
Llama-3.1-8B in FP16, so a replica ordered up serves from the third window boundary on. Actions
outside their space raise ValueError naming the agent and what is allowed; nothing is clamped.
``env.step_cluster(knobs, Routing(...), target)`` drives the cluster with any control, including
``Routing("weighted", weights[tenant, replica])`` (weights must be finite, >= 0 and not all
zero for a tenant: ValueError otherwise).

Observations
------------
``router`` and ``autoscaler`` see the cluster part (30 features, all in [0, 1]):

    index  feature                  definition
    0      time                     windows elapsed / episode windows
    1      load                     window arrivals / (fleet capacity x window), capped at 2, halved
    2      load_trend               0.5 + 0.5 tanh(4 x change of that load since the previous window)
    3-5    active/starting/draining replicas in each state / N
    6      target                   last target / N
    7      cost                     GPU cost billed in the window / the whole fleet's
    8-9    kv, busy                 mean KV occupancy and busy fraction of the active replicas
    10-17  rule.*                   one-hot of the last routing rule
    18+4k  tenant[k].share          tenant k's share of the window's arrivals (k = 0, 1, 2)
    19+4k  tenant[k].queue          s(its waiting requests over the cluster / (8 N))
    20+4k  tenant[k].attainment     its SLO attainment in the window (0 if none decided)
    21+4k  tenant[k].decided        1 if any of its requests was decided

``r{i}/<agent>`` sees serving_v0's observation of that agent for replica i (its replica's
metrics; the load feature relative to one replica's capacity), followed by 7 replica features:
its state one-hot (off, starting, active, draining), i / max(1, N - 1), its share of the
window's arrivals, and active replicas / N. With one network for every replica (parameter
sharing), the replica index and the agent's identity are the inputs that tell them apart.

``state()`` = the cluster part followed by the mean over replicas of serving_v0's global state:
a fixed size whatever N.

Reward and score
----------------
One team reward for all agents: the window's value served within SLO (v(r) x q(r) summed over
requests that met their SLOs, over the offered value, as in serving_v0) minus the window's GPU
cost, cost_weight x (GPU cost billed in the window / the fleet's GPU cost over the whole
episode), billed for starting, active and draining replicas. The score, the sum over the
episode, is goodput x quality - cost_weight x GPU share: serving everything within SLO on the
whole fleet all the time scores 1 - cost_weight (0.5 by default); on half the fleet's GPU-hours,
0.75; serving nothing on the whole fleet, -0.5. ``reward_scale`` (100) scales rewards; rewards
sum to 100 x score. docs/cluster.md explains the choice of cost_weight and the tasks.
"""

from __future__ import annotations

from .envs.cluster import ServingClusterEnv


def parallel_env(task="cluster_diurnal", **kwargs) -> ServingClusterEnv:
    """The cluster ParallelEnv (see the module docstring for arguments)."""
    return ServingClusterEnv(task, **kwargs)


env = parallel_env

__all__ = ["parallel_env", "env", "ServingClusterEnv"]
