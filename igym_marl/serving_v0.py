"""``igym_marl.serving_v0``: operate an LLM serving replica with four cooperating agents.

==================  ===========================================================================
Import              ``from igym_marl import serving_v0``; ``env = serving_v0.parallel_env(task=...)``
Actions             Discrete per agent (``action_format="multidiscrete"``: MultiDiscrete)
Parallel API        Yes (native); AEC through ``serving_v0.env()``
Agents              ``batch_scheduler``, ``kv_manager``, ``spec_controller``, ``tenant_router``
Action shapes       Discrete(20), Discrete(30), Discrete(9), Discrete(2)
Observation shapes  Box(0, 1, (48,)), Box(0, 1, (49,)), Box(0, 1, (47,)), Box(0, 1, (48,)), float32
State shape         Box(0, 1, (66,), float32): the shared part plus every agent's own part
==================  ===========================================================================

Description
-----------
One step is one window of a task (5 or 6 simulated seconds) on the serving simulator
(``igym_marl.sim``, docs/simulator.md): the four agents each set the knobs they own, the engine
serves the window's traffic with them (iteration-level batching, paged KV cache with preemption,
chunked prefill, speculative decoding, quantization, tenant priorities), and all agents receive
the same team reward: the share of the episode score earned in that window. The env is a thin
adapter: traffic comes from ``igym_marl.workloads`` tasks (docs/tasks.md), dynamics from the
simulator.

Action Space
------------
Each agent's action is one Discrete index over the product of its knob levels, the last knob
varying fastest; ``encode_action(agent, **knobs)`` and ``decode_action(agent, index)`` convert.

===================  =============  =======================================================================
agent                space          knobs (index = ...)
===================  =============  =======================================================================
``batch_scheduler``  Discrete(20)   batch_cap in {1, 2, 4, ..., 512} x prefill_decode_split {off, on}
                                    (2 x batch_level + split)
``kv_manager``       Discrete(30)   kv_budget_fraction in {0.1, ..., 1.0} x quantization_tier {FP16, INT8,
                                    INT4} (3 x budget_level + tier)
``spec_controller``  Discrete(9)    speculation_depth 0..8
``tenant_router``    Discrete(2)    priority_routing {off, on}
===================  =============  =======================================================================

With ``action_format="multidiscrete"`` the same levels come factored: MultiDiscrete([10, 2]),
([10, 3]), ([9]), ([2]). An action outside its space, of a non-integer type, NaN, for an unknown
agent, or missing for a live agent raises ValueError naming the agent and the field; nothing is
clamped. **Padding note:** SuperSuit's ``pad_action_space_v0`` pads every agent to Discrete(30)
and maps an out-of-range index to 0 *silently*; a parameter-shared policy over the padded space
must mask indices >= the agent's own ``action_space(agent).n`` (the masks are
``AGENT_KNOBS[agent].n``) instead of relying on the wrapper.

Observation Space
-----------------
Shared part (every agent's first 42 features; all in [0, 1], s(x) = x / (1 + x)):

    =====  ======================  ======================================================================
    index  feature                 definition
    =====  ======================  ======================================================================
    0      progress                window index / episode windows
    1      arrival_load            s(arrival rate / task capacity, in req/s)
    2      queue                   s(waiting requests / 64)
    3      running                 running requests / 512
    4      kv_occupancy            KV blocks used / capacity at the window's end
    5      memory                  min(1, GPU memory reserved / installed (weights + activations + KV pool))
    6      preemptions             s(preemptions in the window / 4)
    7      throughput              s(output tokens/s / 2,000)
    8      rejected                s(requests rejected in the window)
    9      busy                    min(1, share of the window the engine was computing)
    10     prefix_hit_rate         prompt tokens found in the prefix cache / prompt tokens of the window's first admissions; 0 if none admitted
    11     kv_cached_share         time-averaged share of the KV pool holding cached blocks no request uses
    12+8k  tenant[k].present       1 if this tenant slot is used by the task (k = 0, 1, 2; zeros for an unused slot)
    13+8k  tenant[k].arrival_share  the tenant's share of the window's arrivals (k = 0, 1, 2; zeros for an unused slot)
    14+8k  tenant[k].queue         s(the tenant's waiting requests / 32) (k = 0, 1, 2; zeros for an unused slot)
    15+8k  tenant[k].ttft_p99      s(p99 TTFT / TTFT SLO); without first tokens, the oldest wait stands in (k = 0, 1, 2; zeros for an unused slot)
    16+8k  tenant[k].tpot_p99      s(p99 TPOT / TPOT SLO); 0 without finished requests (k = 0, 1, 2; zeros for an unused slot)
    17+8k  tenant[k].attainment    SLO met / decided in the window; 0 if none decided (k = 0, 1, 2; zeros for an unused slot)
    18+8k  tenant[k].decided       1 if any of the tenant's requests was judged in the window (k = 0, 1, 2; zeros for an unused slot)
    19+8k  tenant[k].oldest_wait   s(age of the oldest waiting request / TTFT SLO) (k = 0, 1, 2; zeros for an unused slot)
    36     last.batch_level        batch_cap level / 9; levels 1, 2, 4, ..., 512
    37     last.split              prefill_decode_split (0/1)
    38     last.kv_level           kv_budget_fraction level / 9; levels 0.1 .. 1.0
    39     last.tier               quantization tier level / 2; FP16, INT8, INT4
    40     last.spec_depth         speculation_depth / 8
    41     last.priority           priority_routing (0/1)
    =====  ======================  ======================================================================

Own part of ``batch_scheduler`` (indices 42..47; Box(0, 1, (48,), float32)):

    42     mean_iteration          s(mean iteration time in s / 0.05)
    43     prefill_only_share      prefill-only iterations / iterations
    44     max_iteration           s(longest iteration in ms / 100)
    45     itl_p99                 s(p99 inter-token latency / tightest TPOT SLO)
    46     cap_use                 min(1, running / batch_cap)
    47     prefill_rate            s(prompt tokens/s / 10,000)

Own part of ``kv_manager`` (indices 42..48; Box(0, 1, (49,), float32)):

    42     kv_occupancy_mean       min(1, time-averaged KV occupancy in the window)
    43     pending_prompt          s(prompt tokens waiting / KV capacity in tokens)
    44     largest_waiting_prompt  s(largest waiting prompt / KV capacity in tokens)
    45     reloaded                1 if a quantization switch paused the engine in the window
    46     weights                 min(1, weight memory / installed GPU memory)
    47     kv_capacity             s(KV capacity in tokens / 100,000)
    48     kv_cached_end           cached blocks no request uses / KV capacity, at the window's end

Own part of ``spec_controller`` (indices 42..46; Box(0, 1, (47,), float32)):

    42     acceptance              accepted / proposed draft tokens; 0 when not speculating
    43     speculating             1 if drafts were proposed in the window
    44     batch                   s(running requests / 16)
    45     prompt_length           s(mean prompt of the window's arrivals in tokens / 1,024)
    46     tpot_p50                s(p50 TPOT / tightest TPOT SLO)

Own part of ``tenant_router`` (indices 42..47; Box(0, 1, (48,), float32)):

    42     top_queue               s(queue of the highest-priority tenant / 32)
    43     top_wait                s(its oldest wait / its TTFT SLO)
    44     top_attainment          its SLO attainment in the window; 0 if none decided
    45     bottom_queue            s(queue of the lowest-priority tenant / 32)
    46     bottom_wait             s(its oldest wait / its TTFT SLO)
    47     bottom_attainment       its SLO attainment in the window; 0 if none decided

Latencies are compared with the tenant's own SLOs; the last joint action is part of every
observation. ``state()`` returns the shared part followed by the four own parts, in agent order
(66 features), for centralized critics.

``infos[agent]`` (the same dict for every agent) holds ``metrics`` (the window's
``igym_marl.sim.WindowMetrics``: per-tenant TTFT/TPOT/ITL/end-to-end p50 and p99, goodput, SLO
attainment, queue, KV, memory, preemptions, speculation, cost), ``inferencegym`` (the 15 original
InferenceGym observation fields by name and unit: queue_depth, active_requests,
kv_cache_occupancy, mean_prompt_length, p50_ttft_ms, p99_ttft_ms, p50_itl_ms, throughput_tps,
slo_compliance_rate (cumulative met / decided, 1.0 before any request is judged),
gpu_memory_used_gb, estimated_cost_per_1k ($ per 1,000 output tokens of the window),
request_arrival_rate, spec_acceptance_rate (0 when not speculating), eviction_events,
step_index; when no first token came in a window the TTFT fields hold the oldest wait, a lower
bound, or 0 if nothing waits), ``knobs``, ``window_reward`` and ``score_so_far``; on the last
step also ``episode`` (the score, its components and the simulator's episode metrics).

Rewards
-------
The episode score (``igym_marl.envs.reward``) is the share of the episode's offered value served
within SLO::

    score = sum over requests that met all their SLOs of  v(request) x q(tier)
            -----------------------------------------------------------------
                    sum over all requests offered in the episode of  v(request)

    v(request) = w(tenant) x (prompt tokens + 4 x output tokens)

v is what the request is worth to an operator paid per token (output tokens at four times input
tokens, as public API prices go; w the tenant's price tier: adversarial interactive 2, standard 1,
batch 0.5); q is the quantization tier's quality factor (FP16 1, INT8 0.995, INT4 0.97) in the
window where the request finished. A request that misses an SLO, is rejected, is abandoned by its
client or is never served earns 0; serving nothing scores 0; the score is at most 1. The team
reward of a window is the score earned in it, times ``reward_scale`` (default 100), so an
episode's return is 100 x its score. ``value="requests"`` counts every request of a tenant alike
(v = w); ``memory_cost=c`` multiplies each request's worth by 1 - c x (GPU memory reserved /
installed) for a GPU shared with another workload (default 0: a replica owns its GPUs).
``shaping=True`` adds small per-agent terms in [-0.1, 0] (each AgentSpec's ``shaping`` in ``igym_marl/envs/team.py``);
off by default.

Starting State
--------------
``reset(seed)`` draws the task's episode traffic for that seed (``task.workload(seed)``; a
seed-less reset continues the env's generator) and starts the engine empty at clock 0 with FP16
weights loaded; the "last action" features show vLLM's default (batch_cap 256, chunked prefill,
KV budget 0.9, FP16, no speculation, FCFS).

Episode End
-----------
Termination: never (a server has no terminal state). Truncation: after the task's number of
windows (200 / 120 / 200); then ``agents`` is empty.

Arguments
---------
``parallel_env(task="static_workload", render_mode=None, action_format="discrete",
reward_scale=100.0, shaping=False, episode_windows=None, memory_cost=0.0, value="tokens",
**task_overrides)``

* ``task``: ``static_workload``, ``bursty_workload``, ``adversarial_multitenant`` (aliases
  ``static_uniform``, ``bursty_sharegpt``), ``trace`` (with ``path=``), or a ``TaskSpec``.
* ``render_mode``: ``"ansi"`` (text dashboard of the last window) or ``"rgb_array"`` (timeline
  of the episode so far); ``igym_marl.envs.save_timeline(env, "episode.png")`` writes the PNG.
* ``episode_windows``: shorter episodes (for tests and quick runs).
* ``memory_cost``, ``value``: see Rewards.
* ``task_overrides``: TaskSpec fields, e.g. ``config=SimConfig(gpu="h100-80gb")``.

Version History
---------------
* v0: initial release. Within v0 the score was redefined once: requests are valued per token (they
  were counted) and the memory term is off by default (it was 0.3); clients give up after their
  tenant's patience; the adversarial task became a compressed day. Scores from before that change
  are not comparable with later ones (docs/tasks.md says why it changed).
"""

from pettingzoo.utils import parallel_to_aec, wrappers

from .envs.actions import AGENTS, AGENT_KNOBS, decode_action, encode_action
from .envs.parallel import ServingParallelEnv
from .envs.render import save_timeline

__all__ = ["parallel_env", "raw_env", "env", "encode_action", "decode_action", "AGENTS", "AGENT_KNOBS", "save_timeline",
           "ServingParallelEnv"]


def parallel_env(**kwargs) -> ServingParallelEnv:
    """The native ParallelEnv (see the module docstring for arguments)."""
    return ServingParallelEnv(**kwargs)


def raw_env(**kwargs):
    """The AEC form, without PettingZoo's checking wrappers."""
    return parallel_to_aec(parallel_env(**kwargs))


def env(**kwargs):
    """The AEC form with PettingZoo's order-enforcing wrapper."""
    return wrappers.OrderEnforcingWrapper(raw_env(**kwargs))
