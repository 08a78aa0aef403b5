"""igym_marl/agents/analysis/headroom.py: counterfactual gains of deviations from the heuristic, and their selections."""

import numpy as np
import pytest

from igym_marl.agents.analysis.headroom import clairvoyant_selection, deviation_gains, move_of, predicted_selection
from igym_marl.agents.policies.heuristic import HeuristicPolicy
from igym_marl import serving_v0
from igym_marl.envs import knobs_to_actions
from igym_marl.sim import Knobs


def test_a_gain_measured_on_clones_is_what_replaying_the_episode_with_the_move_gives():
    """With the tail running to the episode's end, a move's gain is exactly the final score of the
    heuristic's episode with the move held at that decision, minus its score with the decision itself
    held as long, each played from scratch without clones."""
    task, seed, windows = "adversarial_multitenant", 11, 12
    rows = deviation_gains(task, seed, hold=3, tail=6, every=3, episode_windows=windows)
    at3 = [r for r in rows if r["window"] == 3]
    assert {r["window"] for r in rows} == {0, 3}  # window 6 leaves fewer than 9 windows
    assert len(at3) >= 8 and any(r["gain"] != 0 for r in at3)

    def replay(override):
        env = serving_v0.parallel_env(task=task, episode_windows=windows)
        obs, infos = env.reset(seed=seed)
        h = HeuristicPolicy()
        h.reset(env.task, seed)
        while env.agents:
            w = env.window
            actions = h.act(obs, infos, env.state())
            if override is not None and 3 <= w < 6:
                if w == 3:
                    decision = actions
                actions = override(decision)
            obs, _, _, _, infos = env.step(actions)
        return env.score

    from igym_marl.envs import joint_knobs
    from igym_marl.agents.policies.oracle import neighbours
    base = replay(lambda decision: decision)
    for r in at3[:4]:
        def apply(decision, r=r):
            move = next(m for m in neighbours(joint_knobs(decision)) if move_of(joint_knobs(decision), m) == (r["knob"], r["move"]))
            return knobs_to_actions(move)
        assert replay(apply) - base == pytest.approx(r["gain"], abs=1e-12)


def test_moves_are_named_and_bad_settings_refused():
    a = Knobs(batch_cap=128)
    assert move_of(a, Knobs(batch_cap=256)) == ("batch_cap", "up")
    assert move_of(Knobs(kv_budget_fraction=0.5), Knobs(kv_budget_fraction=0.2)) == ("kv_budget_fraction", "down 3")
    assert move_of(a, Knobs(batch_cap=128, priority_routing=True)) == ("priority_routing", "False->True")
    with pytest.raises(ValueError, match="not a coordinate move"):
        move_of(a, Knobs(batch_cap=256, priority_routing=True))
    with pytest.raises(ValueError, match="hold=0 must be an integer >= 1"):
        deviation_gains("static_workload", 1, hold=0)


def _synthetic(signal: bool, episodes: int = 8, decisions: int = 30):
    """Two moves per decision; move "a" gains +1 when state[0] > 0 and -1 otherwise (signal), or
    +1 / -1 at random independent of the state (no signal); move "b" always loses 0.5."""
    rng = np.random.default_rng(0)
    rows = []
    for s in range(episodes):
        for w in range(decisions):
            x = float(rng.normal())
            g = (1.0 if x > 0 else -1.0) if signal else float(rng.choice([-1.0, 1.0]))
            state = [x, float(rng.normal())]
            rows.append({"seed": s, "window": w, "phase": 0, "knob": "k", "move": "a", "gain": g, "state": state})
            rows.append({"seed": s, "window": w, "phase": 0, "knob": "k", "move": "b", "gain": -0.5, "state": state})
    return rows


def test_the_deployable_selection_realizes_predictable_gains_and_not_foresight():
    """Hand-made: when the gain follows the state, the cross-validated ridge takes the move almost
    exactly where it gains (close to the clairvoyant sum); when the gain is a coin toss, the
    clairvoyant selection still collects every +1, but the deployable one collects about nothing."""
    rows = _synthetic(signal=True)
    clair = clairvoyant_selection(rows)
    assert all(v == sum(r["gain"] > 0 for r in rows if r["seed"] == s and r["move"] == "a") for s, v in clair.items())
    real = predicted_selection(rows, folds=4)
    assert np.mean(list(real.values())) > 0.8 * np.mean(list(clair.values()))
    noise = _synthetic(signal=False)
    real = predicted_selection(noise, folds=4)
    assert np.mean(list(clairvoyant_selection(noise).values())) > 10
    assert abs(np.mean(list(real.values()))) < 3
    with pytest.raises(ValueError, match="model='tree' is unknown"):
        predicted_selection(rows, model="tree")
    with pytest.raises(ValueError, match="cannot make 4 folds"):
        predicted_selection([r for r in rows if r["seed"] < 2])
