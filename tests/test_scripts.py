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
    (["--agent", "clairvoyant"], "policy='clairvoyant' is unknown"),
    (["--agent", "heuristic", "--task", "chess"], "task='chess' is unknown"),
    (["--agent", "heuristic", "--seeds", "5,6"], "evaluation seeds must lie in 1000000..1999999"),
    (["--agent", "mappo", "--task", "bursty_workload", "--checkpoint", "/nonexistent/ck.pt"], "does not exist"),
    (["--compare", "--agent", "random"], "drop --agent"),
    ([], "give --agent"),
    (["--agent", "heuristic", "--llm-api-key", "sk-1"], "process list"),
    (["--agent", "heuristic", "--trace", "/nonexistent.csv"], "no such trace file"),
    (["--agent", "heuristic", "--trace-load", "0.8"], "apply to --trace PATH"),
    (["--agent", "heuristic", "--task", "static_workload,chess"], "task='chess' is unknown"),
    (["--agent", "constant:batch_cap=64,kv_budget_fraction=0.25"], "kv_budget_fraction"),
    (["--agent", "heuristic", "--seeds", "1000000,1000000"], "1000000 given more than once"),
    (["--agent", "heuristic", "--seeds", ""], "--seeds '': expected comma-separated integers"),
    (["--agent", "heuristic", "--out", "/proc/x.json"], "--out /proc/x.json: cannot be written"),
    (["--agent", "heuristic", "--markdown", "/proc/version/t.md"], "--markdown /proc/version/t.md: cannot create"),
    (["--agent", "mappo", "--task", "bursty_workload", "--checkpoint", "/etc/passwd"],
     "is not a torch checkpoint: torch.save writes a zip archive, and this file begins b'root:"),
])
def test_evaluate_bad_input(args, fragment):
    r = run("evaluate.py", *args, "--no-progress")
    assert r.returncode == 2 and fragment in r.stderr, r.stderr


@pytest.mark.parametrize("content, fragment", [(b"", "is empty"), (b"hello, not a checkpoint\n",
                                                                   "begins b'hello, not a che'")])
def test_evaluate_names_what_a_bad_checkpoint_is_not(tmp_path, content, fragment):
    ck = tmp_path / "ck.pt"
    ck.write_bytes(content)
    r = run("evaluate.py", "--agent", "mappo", "--task", "bursty_workload", "--checkpoint", str(ck), "--no-progress")
    assert r.returncode == 2 and fragment in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_evaluate_ctrl_c_keeps_what_finished_quietly(tmp_path):
    """SIGINT mid-run: no traceback, the finished episodes are written (JSON and CSV) and summed up."""
    import signal
    import time
    out = tmp_path / "r.json"
    for workers in ("1", "2"):
        out.unlink(missing_ok=True)  # wait for this run's own first episode, not the last run's file
        proc = subprocess.Popen([sys.executable, "evaluate.py", "--agent", "vllm-default,heuristic", "--task",
                                 "static_workload", "--episodes", "6", "--workers", workers, "--out", str(out),
                                 "--no-progress"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                # a run started in the background (`cmd &`) inherits SIGINT ignored; Ctrl-C is what is tested
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (out.exists() and json.loads(out.read_text() or "[]")):
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
        assert "interrupted:" in stderr and "of 12 episodes finished" in stderr
        recs = json.loads(out.read_text())
        assert 1 <= len(recs) < 12 and all("score" in x for x in recs)
        assert out.with_suffix(".csv").read_text().count("\n") == len(recs) + 1
        assert "| vllm-default |" in stdout or "| heuristic |" in stdout
        out.unlink()
        out.with_suffix(".csv").unlink()


def test_evaluate_help_shows_defaults():
    r = run("evaluate.py", "--help")
    assert r.returncode == 0 and "(default: 10)" in r.stdout and "--trace-load" in r.stdout


def test_evaluate_task_list_constant_with_knobs_and_new_output_folder(tmp_path):
    out = tmp_path / "new" / "deeper" / "r.json"
    r = run("evaluate.py", "--agent", "constant:batch_cap=64,kv_budget_fraction=0.2,vllm-default",
            "--task", "static_workload,bursty_workload", "--episodes", "1", "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    recs = json.loads(out.read_text())
    assert {(x["agent"], x["task"]) for x in recs} == {
        (a, t) for a in ("constant:batch_cap=64+kv_budget_fraction=0.2", "vllm-default")
        for t in ("static_workload", "bursty_workload")}
    assert f"wrote {out}" in r.stdout


def test_evaluate_on_a_trace_states_its_fallbacks(tmp_path):
    trace = ROOT / "data" / "traces" / "azure_conv_2023_1h.csv"
    r = run("evaluate.py", "--agent", "heuristic,best-constant", "--trace", str(trace), "--trace-load", "0.8",
            "--trace-windows", "12", "--episodes", "2", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "| best-constant |" in r.stdout and "best-constant on trace: no best constant was searched" in r.stdout
    assert "heuristic on trace: no parameters were tuned" in r.stdout


def test_evaluate_keeps_finished_episodes_when_an_agent_raises(tmp_path, monkeypatch, capsys):
    from igym_marl import agents
    from igym_marl.agents.analysis import evaluate
    from igym_marl.agents.policies.simple import ConstantPolicy

    class Boom(ConstantPolicy):
        def reset(self, task, seed):
            super().reset(task, seed)
            self.calls = 0

        def act_knobs(self, observations, infos, state=None):  # a knob-level policy: the loop asks for knobs
            self.calls += 1
            if self.calls > 2:
                raise RuntimeError("the policy broke")
            return super().act_knobs(observations, infos, state)

    monkeypatch.setitem(agents.POLICIES, "boom", lambda arg, **kw: Boom("vllm-default"))
    out = tmp_path / "r.json"
    rc = evaluate.main(["--agent", "heuristic,boom", "--task", "static_workload", "--episodes", "2", "--out", str(out),
                        "--no-progress"])
    assert rc == 1
    recs = json.loads(out.read_text())
    ok = [x for x in recs if "error" not in x]
    assert [x["agent"] for x in ok] == ["heuristic", "heuristic"]
    assert [x["error"] for x in recs if "error" in x] == ["RuntimeError: the policy broke"] * 2
    assert "2 of 4 episodes failed" in capsys.readouterr().err


def test_calibrate_check_and_fit_engine(tmp_path):
    r = run("scripts/calibrate_cost_model.py", "--check")
    assert r.returncode == 0, r.stderr
    for fragment in ("| h100-80gb | 4 | 33.0 us | 518 GB/s |", "| Vidur linear ops | h100-80gb | llama-2-70b | 8 | linear |",
                     "| SplitwiseSim vLLM end to end | a100-80gb | llama-2-70b | 4 | decode |", "Engine `vllm-0.2`"):
        assert fragment in r.stdout, fragment
    r = run("scripts/calibrate_cost_model.py", "--fit-engine", "data/calibration/a100_llama-2-70b_vllm_end_to_end.csv",
            "--fields", "tp_overhead_s", "--engine-name", "refit")
    assert r.returncode == 0, r.stderr
    assert "EngineProfile('refit', iter_overhead_s=0.003, tp_overhead_s=0.00" in r.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("model,hardware\nx,y\n")
    r = run("scripts/calibrate_cost_model.py", "--fit-engine", str(bad))
    assert r.returncode != 0 and "columns ['prompt_size'" in r.stderr


def test_train_all_report_only_rewrites_the_tables_from_the_records(tmp_path):
    """Hand-made records: mappo beats the heuristic by 0.02 on every seed, and the ablation variant
    loses 0.05 against mappo; the report shows both, paired, with zero-width CIs."""
    recs = []
    for seed in (1_000_000, 1_000_001, 1_000_002):
        base = 0.5 + 0.1 * (seed - 1_000_000)
        for agent, score in (("heuristic", base), ("best-constant", base - 0.1), ("oracle", base + 0.1),
                             ("mappo", base + 0.02), ("mappo, kv_manager = heuristic", base - 0.03)):
            recs.append({"agent": agent, "task": "adversarial_multitenant", "seed": seed, "score": score})
    (tmp_path / "results.json").write_text(json.dumps(recs))
    r = run("scripts/train_all.py", "--report-only", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "results.md").read_text()
    assert "Paired difference against heuristic" in md and "| mappo | +0.020 [+0.020, +0.020] |" in md
    assert "| adversarial_multitenant | kv_manager = heuristic | 0.570 | +0.050 [+0.050, +0.050] |" in md
    assert "| mappo | 60 % [60, 60] |" in md  # 0.12 of the 0.2 between best constant and oracle
    r = run("scripts/train_all.py", "--report-only", "--out", str(tmp_path / "none"))
    assert r.returncode == 2 and "results.json does not exist" in r.stderr


def test_replay_serving_runs_and_fit_engine_on_a_runs_file(tmp_path):
    """Runs made by the simulator with the shipped vllm-0.15 profile replay at 0 % error with it;
    calibrate_cost_model.py --fit-engine knows a runs file by its columns and fits by replaying it:
    on runs made with 3x vllm-0.15's per-iteration time, it finds that time, starting from vllm-0.15."""
    import dataclasses

    from igym_marl.sim.profiles import ENGINES
    from igym_marl.workloads.replay import load_runs, synthetic_runs
    from tests.workloads.test_replay import small_runs
    stages = load_runs(small_runs(tmp_path))
    runs, slow = tmp_path / "made.csv", tmp_path / "slow.csv"
    synthetic_runs(stages, "vllm-0.15", seed=0).to_csv(runs, index=False)
    known = dataclasses.replace(ENGINES["vllm-0.15"], name="slow", iter_overhead_s=3 * ENGINES["vllm-0.15"].iter_overhead_s)
    synthetic_runs(stages, known, seed=0).to_csv(slow, index=False)
    r = run("scripts/replay_serving_runs.py", str(runs), "--engine", "vllm-0.15", "--markdown", str(tmp_path / "t.md"))
    assert r.returncode == 0, r.stderr
    assert "| r-tp1 | 0 (3) | TTFT |" in r.stdout and "+0.0 % / +0.0 % / +0.0 % / +0.0 %" in r.stdout
    assert "4 stages: median absolute error of the TTFT and E2E means 0.0 %" in r.stdout
    assert (tmp_path / "t.md").read_text().startswith("Engine `vllm-0.15`")
    r = run("scripts/calibrate_cost_model.py", "--fit-engine", str(slow), "--fields", "iter_overhead_s",
            "--engine-name", "mine")
    assert r.returncode == 0, r.stderr
    assert "## Engine profile fitted on 4 stages" in r.stdout and "EngineProfile(name='mine'" in r.stdout
    fitted = float(r.stdout.split("iter_overhead_s=")[1].split(",")[0])
    assert fitted == pytest.approx(known.iter_overhead_s, rel=0.05)
    r = run("scripts/replay_serving_runs.py", str(tmp_path / "missing.csv"))
    assert r.returncode == 2 and "missing.csv" in r.stderr and "Traceback" not in r.stderr


def test_small_pool_regime_prints_its_three_variants():
    """The docs' account of the adversarial day's regime (docs/simulator.md) reruns: on one seed the
    full pool beats the small one as the task is, and the 2023 per-sequence cost turns it round."""
    r = run("scripts/analysis/small_pool_regime.py", "--seeds", "1")
    assert r.returncode == 0, r.stderr
    rows = {line.split(" | ")[0].strip("| "): [float(x) for x in line.strip(" |").split(" | ")[1:]]
            for line in r.stdout.splitlines() if line.startswith("| ") and "---" not in line and "variant" not in line}
    assert set(rows) == {"as the task is", "no prefix keys (nothing cached)", "V1 + the 2023 per-sequence cost"}
    assert rows["as the task is"][1] > rows["as the task is"][0]
    assert rows["V1 + the 2023 per-sequence cost"][0] > rows["V1 + the 2023 per-sequence cost"][1]
