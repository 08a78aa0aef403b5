"""``mpc``: the oracle's search on a forecast instead of the real future; a probe, not a policy.

Every ``horizon`` windows (3) it takes the env's simulator, replaces every request that has not
arrived yet by a **persistence forecast** (the arrivals of the last ``lookback`` seconds, 12, with
their lengths and tenants, replayed again and again: ``Simulator.clone_with_future``), and scores
the oracle's candidates on it exactly as the oracle scores them on the real future
(``igym_marl/agents/policies/oracle.py``: the incumbent and its coordinate neighbours, the global best constant and
the heuristic's decision; ``horizon`` windows held, then ``tail`` (10) more windows of the better
of two continuations).

So it has no foresight of arrivals: a storm is seen only once it has started, a long document
only once it is queued. What it does see goes beyond the agents' observations: the engine's whole
state, including the output lengths of the requests already in it, which a real engine learns
only as they finish. It measures how much of the oracle's headroom a controller with a perfect
model of the engine, but no foresight of traffic, can take (docs/training.md, "What the headroom
is made of"). Its cost is about the oracle's: 4 s (bursty) to 10 s (adversarial) per episode on one core.
"""

from __future__ import annotations

import math

import numpy as np

from igym_marl.envs.reward import request_values
from igym_marl.sim.types import Workload

from igym_marl.agents.policies.oracle import OraclePolicy


def persistence_forecast(sim, lookback_s: float, ahead_s: float):
    """Arrivals of the last `lookback_s` seconds (up to the simulator's clock) replayed every
    `lookback_s` seconds until `ahead_s` past the clock: (arrival_s, prompt, output, tenant), sorted.
    Arrivals before the last request that arrived are dropped (``add_requests``' rule). The replayed
    requests carry no block keys: a copy of a request would find its own whole prompt cached, so
    the forecast counts no prefix-cache hits (it errs toward more prefill work, not less)."""
    arrived = sim.arrived
    t = sim.t_nominal
    req = sim.requests()
    arr = req.arrival_s[:arrived]
    rows = np.flatnonzero(arr >= t - lookback_s)
    reps = max(1, int(math.ceil(ahead_s / lookback_s)))
    times = (arr[rows][None, :] + lookback_s * np.arange(1, reps + 1)[:, None]).ravel()
    src = np.tile(rows, reps)
    floor = float(arr[-1]) if arrived else 0.0
    keep = (times < t + ahead_s) & (times >= max(floor, t))
    order = np.argsort(times[keep], kind="stable")
    times, src = times[keep][order], src[keep][order]
    return times, req.prompt_tokens[src], req.output_tokens[src], req.tenant[src]


class MPCPolicy(OraclePolicy):
    """See the module docstring. ``evaluation.run_episode`` hands it the env (``sees_env``)."""

    name = "mpc"

    def __init__(self, horizon: int = 3, tail: int = 10, lookback_s: float = 12.0):
        super().__init__(horizon, tail)
        if isinstance(lookback_s, bool) or not isinstance(lookback_s, (int, float)) or not lookback_s > 0:
            raise ValueError(f"lookback_s={lookback_s!r} must be a number > 0 (seconds)")
        self.lookback_s = float(lookback_s)

    def reset(self, task, seed):
        super().reset(task, seed)
        self._forecast = None  # ((window, seconds), simulator on the forecast, v(r) by row)

    def lookahead(self, seconds: float):
        """A clone of the env's simulator on the forecast; one forecast serves every candidate of a
        decision."""
        key = (self.env.window, seconds)
        if self._forecast is None or self._forecast[0] != key:
            sim = self.env.sim
            sim = sim.clone_with_future(*persistence_forecast(sim, self.lookback_s, seconds + self.env.task.window_s))
            r = sim.requests()
            w = Workload(arrival_s=r.arrival_s, prompt_tokens=r.prompt_tokens, output_tokens=r.output_tokens,
                         tenant=r.tenant, tenants=self.env.workload.tenants, name="forecast")
            self._forecast = (key, sim, request_values(w, self.env.value))
        return self._forecast[1].clone(), self._forecast[2]


__all__ = ["MPCPolicy", "persistence_forecast"]
