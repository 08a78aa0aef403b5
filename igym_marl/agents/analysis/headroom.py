"""Where the oracle's headroom above the tuned heuristic comes from: a counterfactual probe.

The simulator is deterministic and cloneable, so the worth of any deviation from a policy can be
measured exactly instead of estimated. :func:`deviation_gains` plays the heuristic through a
training episode; at every ``every``-th window it tries each coordinate move from the heuristic's
decision (``igym_marl.agents.policies.oracle.neighbours``: one knob one level up or down, a tier, a toggle) on an env
clone: the move held for ``hold`` windows, then the heuristic again (its state copied) for
``tail`` windows. A move's gain is the score earned over those windows minus what the heuristic's
own decision earns on the same clone start.

Two selections of moves turn the gains into headroom:

* **clairvoyant**: at each decision the move that gains most, if any gains (one step of foresight:
  it knows each move's outcome on this episode's real traffic);
* **deployable** (:func:`predicted_selection`): a model fitted to predict each move's gain from what
  the agents see (``env.state()``) and the phase, cross-validated by episode; at each decision it
  takes the move predicted best if predicted to gain, and realizes that move's true gain (ridge
  regressions, or a small MLP).

If the deployable selection realizes nothing while the clairvoyant one realizes much, the gains
exist but are not predictable from the observations: the headroom is foresight. Numbers and the
command are in docs/training.md ("What the headroom is made of").
"""

from __future__ import annotations

import copy

import numpy as np

from igym_marl import serving_v0
from igym_marl.envs import joint_knobs, knobs_to_actions
from igym_marl.sim.types import nearest_level

from igym_marl.agents.policies.heuristic import HeuristicPolicy
from igym_marl.agents.policies.oracle import neighbours


def move_of(before, after) -> tuple[str, str]:
    """(knob, move) of a coordinate move: "up" / "down" for one level of a numeric knob ("up 3":
    three levels), "A->B" for a tier or a toggle."""
    a, b = before.as_dict(), after.as_dict()
    changed = [k for k in a if a[k] != b[k]]
    if len(changed) != 1:
        raise ValueError(f"not a coordinate move: {changed} changed")
    k = changed[0]
    if isinstance(a[k], (bool, str)):
        return k, f"{a[k]}->{b[k]}"
    steps = nearest_level(k, b[k]) - nearest_level(k, a[k])
    return k, ("up" if steps > 0 else "down") + (f" {abs(steps)}" if abs(steps) != 1 else "")


def _earn(env, heuristic, obs, infos, first_actions, hold: int, windows: int) -> float:
    """Score earned on a clone of `env` over `windows` windows: `first_actions` for the first
    `hold`, then a copy of `heuristic`. The copy watches every window, so its state is the one it
    would have had."""
    e, h = env.clone(), copy.deepcopy(heuristic)
    start = e.score
    for w in range(windows):
        if not e.agents:
            break
        own = h.act(obs, infos, e.state())
        obs, _, _, _, infos = e.step(first_actions if w < hold else own)
    return e.score - start


def deviation_gains(task_id: str, seed: int, hold: int = 3, tail: int = 12, every: int = 3,
                    episode_windows: int | None = None) -> list[dict]:
    """Every coordinate move's counterfactual gain at every `every`-th window of a heuristic
    episode (see the module docstring). Rows: seed, window, phase, knob, move, gain, state."""
    for name, v, lo in (("hold", hold, 1), ("tail", tail, 0), ("every", every, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name}={v!r} must be an integer >= {lo}")
    env = serving_v0.parallel_env(task=task_id, episode_windows=episode_windows)
    obs, infos = env.reset(seed=seed)
    h = HeuristicPolicy()
    h.reset(env.task, seed)
    labels = env.episode.phase_of_second
    rows = []
    while env.agents:
        decide = env.window % every == 0 and env.task.episode_windows - env.window >= hold + tail
        before = copy.deepcopy(h) if decide else None  # the heuristic as it is before deciding this window
        actions = h.act(obs, infos, env.state())
        if decide:
            decision = joint_knobs(actions)
            base = _earn(env, before, obs, infos, actions, hold, hold + tail)
            phase = int(labels[min(int(env.window * env.task.window_s), labels.shape[0] - 1)])
            state = env.state().tolist()
            for move in neighbours(decision):
                knob, direction = move_of(decision, move)
                gain = _earn(env, before, obs, infos, knobs_to_actions(move), hold, hold + tail) - base
                rows.append({"seed": seed, "window": env.window, "phase": phase, "knob": knob, "move": direction,
                             "gain": gain, "state": state})
        obs, _, _, _, infos = env.step(actions)
    return rows


def _features(rows: list[dict], n_phases: int) -> np.ndarray:
    return np.array([[*r["state"], *np.eye(n_phases)[r["phase"]], 1.0] for r in rows])


def _fit_ridge(train: list[dict], n_phases: int, ridge: float):
    """One ridge regression per (knob, move) -> predict(rows) for rows of any move."""
    models = {}
    for key in {(r["knob"], r["move"]) for r in train}:
        part = [r for r in train if (r["knob"], r["move"]) == key]
        x = _features(part, n_phases)
        y = np.array([r["gain"] for r in part])
        models[key] = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ y)

    def predict(rows):
        x = _features(rows, n_phases)
        return np.array([float(x[i] @ models[(r["knob"], r["move"])]) if (r["knob"], r["move"]) in models else -np.inf
                         for i, r in enumerate(rows)])
    return predict


def _fit_mlp(train: list[dict], n_phases: int, epochs: int = 200, seed: int = 0):
    """One 2 x 64 tanh MLP for every move (the move one-hot in its input), Huber loss on the gain
    in 1e-3 points, Adam 1e-3, weight decay 1e-3."""
    import torch

    keys = sorted({(r["knob"], r["move"]) for r in train})
    index = {k: i for i, k in enumerate(keys)}

    def inputs(rows):
        moves = np.zeros((len(rows), len(keys)))
        for i, r in enumerate(rows):
            if (r["knob"], r["move"]) in index:
                moves[i, index[(r["knob"], r["move"])]] = 1.0
        return torch.tensor(np.hstack([_features(rows, n_phases), moves]), dtype=torch.float32)

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x, y = inputs(train), torch.tensor([1e3 * r["gain"] for r in train], dtype=torch.float32)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
                              torch.nn.Linear(64, 1))
    opt = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), 256):
            b = perm[i:i + 256]
            loss = torch.nn.functional.huber_loss(net(x[b]).squeeze(-1), y[b], delta=5.0)
            opt.zero_grad()
            loss.backward()
            opt.step()

    def predict(rows):
        with torch.no_grad():
            p = net(inputs(rows)).squeeze(-1).numpy() / 1e3
        return np.where([(r["knob"], r["move"]) in index for r in rows], p, -np.inf)
    return predict


def predicted_selection(rows: list[dict], folds: int = 4, model: str = "ridge", ridge: float = 10.0,
                        threshold: float = 0.0, n_phases: int = 3) -> dict[int, float]:
    """Per episode (seed), the gain realized by taking, at each decision, the move a model
    predicts to gain most (if its prediction exceeds `threshold`), the model fitted on the other
    folds' episodes: "ridge" (one ridge regression per move, from the state and the phase) or
    "mlp" (one small network for all moves)."""
    if model not in ("ridge", "mlp"):
        raise ValueError(f"model={model!r} is unknown; allowed: ridge, mlp")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds={folds!r} must be an integer >= 2")
    seeds = sorted({r["seed"] for r in rows})
    if len(seeds) < folds:
        raise ValueError(f"{len(seeds)} episodes cannot make {folds} folds")
    realized = {s: 0.0 for s in seeds}
    for test in np.array_split(np.array(seeds), folds):
        test = set(test.tolist())
        train = [r for r in rows if r["seed"] not in test]
        predict = _fit_ridge(train, n_phases, ridge) if model == "ridge" else _fit_mlp(train, n_phases)
        decisions = {}
        for r in rows:
            if r["seed"] in test:
                decisions.setdefault((r["seed"], r["window"]), []).append(r)
        for (seed, _), cands in decisions.items():
            p = predict(cands)
            i = int(np.argmax(p))
            if p[i] > threshold:
                realized[seed] += cands[i]["gain"]
    return realized


def clairvoyant_selection(rows: list[dict]) -> dict[int, float]:
    """Per episode, the sum over decisions of the best move's gain where one gains."""
    best = {}
    for r in rows:
        k = (r["seed"], r["window"])
        best[k] = max(best.get(k, 0.0), r["gain"])
    out = {}
    for (seed, _), g in best.items():
        out[seed] = out.get(seed, 0.0) + g
    return out


__all__ = ["deviation_gains", "predicted_selection", "clairvoyant_selection", "move_of"]
