"""rliable's input, built from evaluate.py's records, in the main environment (rliable itself runs
in its own: tests/rliable)."""

import importlib.util

import numpy as np
import pytest

from igym_marl.agents.analysis import rliable_report as rr


def _records(agents=("a", "b"), tasks=("t1", "t2"), seeds=(10, 11, 12)):
    return [{"agent": a, "task": t, "seed": s, "score": i + 0.1 * j + 0.01 * k}
            for i, a in enumerate(agents) for j, t in enumerate(tasks) for k, s in enumerate(seeds)]


def test_matrix_rows_are_seeds_and_columns_tasks():
    recs = _records()
    m, tasks, seeds = rr.score_matrices(recs[::-1])  # order of the records does not matter
    assert list(m) == ["b", "a"] and tasks == ["t2", "t1"] and seeds == [10, 11, 12]
    assert m["a"].shape == (3, 2)
    np.testing.assert_allclose(m["a"][:, tasks.index("t1")], [0.0, 0.01, 0.02])
    np.testing.assert_allclose(m["b"][2, tasks.index("t2")], 1.12)


@pytest.mark.parametrize("drop, fragment", [
    (lambda r: r["agent"] == "b" and r["task"] == "t2" and r["seed"] == 11,
     "agent 'b' has no episode on task 't2' at seed 11"),
])
def test_a_missing_episode_is_named(drop, fragment):
    recs = [r for r in _records() if not drop(r)]
    with pytest.raises(ValueError, match=fragment):
        rr.score_matrices(recs)


def test_bad_records_are_refused():
    with pytest.raises(ValueError, match="no records"):
        rr.score_matrices([])
    with pytest.raises(ValueError, match="record 0 has no seed, score"):
        rr.score_matrices([{"agent": "a", "task": "t"}])
    extra = _records() + [{"agent": "b", "task": "t1", "seed": 99, "score": 0.5}]
    with pytest.raises(ValueError, match=r"agent 'b' has episodes at seeds \[99\]"):
        rr.score_matrices(extra)


@pytest.mark.skipif(importlib.util.find_spec("rliable") is not None, reason="rliable is installed here")
def test_without_the_extra_the_error_names_it():
    m, _, _ = rr.score_matrices(_records())
    with pytest.raises(ImportError, match="make test-rliable"):
        rr.aggregates(m)
