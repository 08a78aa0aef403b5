"""Subprocess smoke runs of the entry points, and their errors on bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args, timeout=600):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_evaluate_writes_records_summary_and_plots(tmp_path):
    out = tmp_path / "r.json"
    r = run("evaluate.py", "--agent", "vllm-default,heuristic", "--task", "bursty_workload", "--episodes", "2",
            "--workers", "2", "--out", str(out), "--markdown", str(tmp_path / "t.md"), "--plot", str(tmp_path / "p.png"),
            "--timeline", str(tmp_path / "tl.png"), "--no-progress")
    assert r.returncode == 0, r.stderr
    recs = json.loads(out.read_text())
    assert len(recs) == 4 and {x["seed"] for x in recs} == {1_000_000, 1_000_001}
    assert all({"agent", "task", "seed", "score", "goodput", "slo_attainment", "throughput_tps", "preemptions",
                "gpu_memory_gb_mean", "quality_factor_mean", "ttft_p99_ms.conversation"} <= set(x) for x in recs)
    assert out.with_suffix(".csv").read_text().startswith("agent,task,seed,score")
    assert "| heuristic |" in (tmp_path / "t.md").read_text() and "[" in r.stdout
    for png in ("p.png", "tl.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args,fragment", [
    (["--agent", "clairvoyant"], "agent='clairvoyant' is unknown"),
    (["--agent", "heuristic", "--task", "chess"], "task='chess' is unknown"),
    (["--agent", "heuristic", "--seeds", "5,6"], "evaluation seeds must lie in 1000000..1999999"),
    (["--agent", "mappo", "--task", "bursty_workload", "--checkpoint", "/nonexistent/ck.pt"], "does not exist"),
    (["--compare", "--agent", "random"], "drop --agent"),
    ([], "give --agent"),
])
def test_evaluate_bad_input(args, fragment):
    r = run("evaluate.py", *args, "--no-progress")
    assert r.returncode == 2 and fragment in r.stderr, r.stderr
