"""rliable's aggregates of the leaderboard (make test-rliable, in .venv-rliable): they agree with the
hand-written statistics where both exist, are reproducible under a seed, and the shipped report
is what the shipped episodes give."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rliable", reason="the rliable extra runs in its own environment: make test-rliable")

from igym_marl.agents.analysis import rliable_report as rr  # noqa: E402
from igym_marl.agents.analysis.stats import summarize  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EPISODES = ROOT / "docs" / "leaderboard_episodes.json"


@pytest.fixture(scope="module")
def records():
    return json.loads(EPISODES.read_text())


def test_point_estimates_equal_the_hand_written_ones_and_the_cis_agree(records):
    m, tasks, seeds = rr.score_matrices(records)
    assert len(tasks) == 4 and len(seeds) == 10
    agg = rr.aggregates(m, reps=2000, seed=0)
    rows = {r["agent"]: r for r in summarize(records) if r["task"] == "all"}
    for a, ms in agg.items():
        assert ms["IQM"][0] == pytest.approx(rows[a]["iqm"], abs=1e-12)
        assert ms["mean"][0] == pytest.approx(rows[a]["mean"], abs=1e-12)
        assert ms["optimality gap"][0] == pytest.approx(1.0 - rows[a]["mean"], abs=1e-12)  # every score is <= 1
        # two stratified bootstraps of 2,000 resamples, different draws: the same interval within noise
        assert abs(ms["mean"][1] - rows[a]["ci_low"]) < 0.005 and abs(ms["mean"][2] - rows[a]["ci_high"]) < 0.005
        for p, lo, hi in ms.values():
            assert lo <= p + 1e-12 and p <= hi + 1e-12


def test_probability_of_improvement_on_known_cases():
    rng = np.random.default_rng(1)
    x = rng.random((10, 3))
    m = {"x": x, "better": x + 1.0, "same": x.copy()}
    imp = rr.improvement(m, [("better", "x"), ("x", "better"), ("same", "x")], reps=300, seed=0)
    assert imp[("better", "x")] == (1.0, 1.0, 1.0)  # every resample: every episode of better is above
    assert imp[("x", "better")] == (0.0, 0.0, 0.0)
    assert imp[("same", "x")][0] == 0.5  # equal scores count level
    with pytest.raises(ValueError, match="agent 'nobody' has no scores"):
        rr.improvement(m, [("nobody", "x")])


def test_same_seed_same_report_and_another_seed_moves_only_the_intervals(records):
    m, _, _ = rr.score_matrices(records)
    a, b = rr.aggregates(m, reps=500, seed=3), rr.aggregates(m, reps=500, seed=3)
    assert a == b
    c = rr.aggregates(m, reps=500, seed=4)
    assert all(a[k][met][0] == c[k][met][0] for k in a for met in rr.METRICS)  # points do not resample
    assert any(a[k][met][1:] != c[k][met][1:] for k in a for met in rr.METRICS)


def test_the_shipped_report_is_what_the_shipped_episodes_give(tmp_path):
    md, png = tmp_path / "r.md", tmp_path / "p.png"
    assert rr.main([str(EPISODES), "--markdown", str(md), "--plot", str(png)]) == 0
    assert md.read_text() == (ROOT / "docs" / "leaderboard_rliable.md").read_text()
    assert png.stat().st_size > 10_000


def test_bad_options_are_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        rr.main([str(EPISODES), "--reference", "nobody"])
    assert "--reference 'nobody' has no scores" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        rr.main([str(EPISODES), "--reps", "10"])
    assert "--reps=10 must be >= 100" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        rr.main([str(tmp_path / "none.json")])
    assert "none.json" in capsys.readouterr().err
