"""``oracle``: a clairvoyant reference, not a policy. It sees the episode's future traffic.

Every ``horizon`` windows (3) it clones the environment's simulator and score keeper
(``Simulator.clone()``: copied state arrays, so a clone's future is exactly the original's), plays
each candidate joint configuration on the *real* future traffic, and applies the one that earned
the most, holding it until the next decision (ties keep the incumbent). A candidate's worth is
the score it earns over the next ``horizon`` windows plus, over ``tail`` (10) more windows, the
better of two continuations: the candidate held on, or the task's global best constant. The
second makes the oracle a rollout of the best constant, which it can only improve on (up to the
truncated tail); the first lets it see what moving to another regime is worth. Deciding every
window instead makes it flip back and forth, paying a quantization reload or a pool shrink each
time. The candidates are

* the incumbent (the configuration applied last) and its coordinate neighbours: batch_cap one
  level up or down, the KV budget one or three levels up or down, every other quantization tier,
  speculation depth one up or down, chunked prefill and priority routing toggled;
* the task's global best constant (``igym_marl/agents/data/best_constant.json``);
* the tuned heuristic's decision for this window (the heuristic runs alongside on the real
  trajectory).

So the oracle starts from both the global best constant and the heuristic and keeps, decision
by decision, whichever continuation does better. No deployable controller can match it: it knows
when storms start and what every request will ask for. Its score bounds (from below) what
adapting the knobs can earn on a task, which is what the leaderboard's headroom column and
docs/tasks.md's adaptivity gap measure. Its cost is about 15 candidates x (``horizon`` + 2
``tail``) simulated windows per decision: 5 to 15 s per episode on one core.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from igym_marl.envs import AGENT_KNOBS
from igym_marl.envs.reward import request_values
from igym_marl.sim.profiles import get_tier
from igym_marl.sim import RUNNING, SLO_MET, SLO_OPEN, Knobs, nearest_level

from igym_marl.agents.policies.base import KnobPolicy
from igym_marl.agents.policies.heuristic import HeuristicPolicy
from igym_marl.agents.analysis.tuning import best_constant_or_default

BATCH_LEVELS = AGENT_KNOBS["batch_scheduler"].levels[0]
KV_LEVELS = AGENT_KNOBS["kv_manager"].levels[0]
TIERS = AGENT_KNOBS["kv_manager"].levels[1]
DEPTHS = AGENT_KNOBS["spec_controller"].levels[0]


def neighbours(k: Knobs) -> list[Knobs]:
    """Coordinate moves around `k` over the agents' action levels (see the module docstring)."""
    out = []
    b = BATCH_LEVELS.index(k.batch_cap)
    for j in (b - 1, b + 1):
        if 0 <= j < len(BATCH_LEVELS):
            out.append(dataclasses.replace(k, batch_cap=BATCH_LEVELS[j]))
    v = nearest_level("kv_budget_fraction", k.kv_budget_fraction)
    for j in (v - 3, v - 1, v + 1, v + 3):
        if 0 <= j < len(KV_LEVELS):
            out.append(dataclasses.replace(k, kv_budget_fraction=KV_LEVELS[j]))
    out += [dataclasses.replace(k, quantization_tier=t) for t in TIERS if t != k.quantization_tier]
    for d in (k.speculation_depth - 1, k.speculation_depth + 1):
        if d in DEPTHS:
            out.append(dataclasses.replace(k, speculation_depth=d))
    out.append(dataclasses.replace(k, prefill_decode_split=not k.prefill_decode_split))
    out.append(dataclasses.replace(k, priority_routing=not k.priority_routing))
    return out


class OraclePolicy(KnobPolicy):
    """See the module docstring. ``evaluation.run_episode`` hands it the env (``sees_env``)."""

    name = "oracle"
    sees_env = True

    def __init__(self, horizon: int = 3, tail: int = 10):
        for name, v, lo in (("horizon", horizon, 1), ("tail", tail, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name}={v!r} must be an integer >= {lo}")
        self.horizon = horizon
        self.tail = tail
        self.env = None

    def attach(self, env) -> None:
        self.env = env
        self.values = request_values(env.workload, env.value)  # v(r) as the score counts it
        self.tpot_s = np.array([t.tpot_slo_ms / 1e3 for t in env.workload.tenants])

    def reset(self, task, seed):
        super().reset(task, seed)
        self.anchor, self.searched = best_constant_or_default(task.id)  # vLLM's default on a trace
        self.heuristic = HeuristicPolicy()
        self.heuristic.reset(task, seed)
        self.incumbent = self.anchor
        self.counts = {"rollouts": 0, "switches": 0}

    def stats(self) -> dict:
        return dict(self.counts, **({} if self.searched else {"anchor_vllm_default": 1}))

    def value(self, knobs: Knobs, windows: int, tail: int) -> float:
        """What holding `knobs` for the next `windows` windows earns, then for `tail` more windows
        the better of two continuations: `knobs` held on, or the global best constant.

        Earned value counts the requests that meet their SLOs during the look-ahead and arrived
        before its middle of the tail (so each has had at least tail / 2 windows to finish): a
        faster configuration gets no credit for finishing late arrivals inside the look-ahead that
        any configuration would finish just after it. Each request is worth v x q x m, as in the
        score. A constant needs no window boundaries, so each phase is one simulator call."""
        w_s = self.env.task.window_s
        sim, values = self.lookahead((windows + tail) * w_s)
        t0 = sim.t_nominal
        first = sim.advance(windows * w_s, knobs)
        if not tail:
            return self._earned(sim, values, t0, t0 + windows * w_s, t0 + windows * w_s, (knobs, first), (knobs, first))
        best = None
        for cont in ((knobs, self.anchor) if knobs != self.anchor else (knobs,)):
            s2 = sim.clone()
            m2 = s2.advance(tail * w_s, cont)
            v = self._earned(s2, values, t0, t0 + windows * w_s, t0 + (windows + tail / 2) * w_s, (knobs, first),
                             (cont, m2))
            best = v if best is None else max(best, v)
        self.counts["rollouts"] += 1
        return best

    def lookahead(self, seconds: float):
        """The simulator a look-ahead of `seconds` plays on, and v(r) of its requests by row: a
        clone of the env's, whose future is the real one."""
        return self.env.sim.clone(), self.values

    def _earned(self, sim, values, t0, t_switch, cutoff, head, tail) -> float:
        """Value of the requests that arrived before `cutoff` and met their SLOs since `t0`, plus,
        projected, those still streaming within SLO at the end (first token in time, decoding at a
        pace within the TPOT SLO so far): a configuration that merely finishes them sooner earns
        nothing more for it."""
        r = sim.requests()
        n = len(values)
        arr, first, finish, slo = r.arrival_s[:n], r.first_token_s[:n], r.finish_s[:n], r.slo[:n]
        cohort = arr < cutoff
        met = (slo == SLO_MET) & (finish >= t0) & cohort
        open_ = (slo == SLO_OPEN) & cohort & ~np.isnan(first) & (r.status[:n] == RUNNING)
        gen = r.generated_tokens[:n]
        pace = np.where(gen > 1, (r.last_token_s[:n] - first) / np.maximum(gen - 1, 1), 0.0)
        on_track = open_ & (pace <= self.tpot_s[r.tenant[:n]])
        factor = [get_tier(k.quantization_tier).quality * self.env.keeper.memory_factor(m) for k, m in (head, tail)]
        per = np.where(finish < t_switch, factor[0], factor[1])
        return float((values[met] * per[met]).sum() + values[on_track].sum() * factor[1])

    def act_knobs(self, observations, infos, state=None) -> Knobs:
        if self.env is None:
            raise RuntimeError("the oracle needs the env: run it through igym_marl.agents.evaluation.run_episode")
        proposal = self.heuristic.act_knobs(observations, infos, state)  # it watches every window
        left = self.env.task.episode_windows - self.env.window
        if self.env.window % self.horizon == 0:  # decide every `horizon` windows, hold in between
            windows = min(self.horizon, left)
            tail = min(self.tail, left - windows)
            best, best_v = self.incumbent, None
            seen = set()
            for c in [self.incumbent, *neighbours(self.incumbent), self.anchor, proposal]:
                if c in seen:
                    continue
                seen.add(c)
                v = self.value(c, windows, tail)
                if best_v is None or v > best_v + 1e-12:
                    best, best_v = c, v
            if best != self.incumbent:
                self.counts["switches"] += 1
            self.incumbent = best
        return self.incumbent


__all__ = ["OraclePolicy", "neighbours"]
