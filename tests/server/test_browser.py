"""The dashboard in a real headless browser (Debian's chromium, driven by Playwright)."""

import json
import os
import shutil
from pathlib import Path

import pytest

from igym_marl.workloads import TASKS
from igym_marl.workloads.cluster_tasks import CLUSTER_TASK_IDS

from .conftest import CHROMIUM, ROOT, browser_required

# The README's screenshot is written only on request (it changes every run):
# IGYM_DASHBOARD_SCREENSHOT=docs/img/dashboard.png make test
SCREENSHOT_ENV = "IGYM_DASHBOARD_SCREENSHOT"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) and shutil.which(CHROMIUM)):
        if browser_required():
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium): the dashboard test needs a real browser")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (CI installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def _drawn(page, canvas_id: str) -> int:
    """How many pixels of a canvas are drawn (not blank, not near-white)."""
    return page.evaluate(f"""() => {{ const c = document.getElementById('{canvas_id}'); const d = c.getContext('2d')
        .getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 0; i < d.length; i += 4)
        if (d[i + 3] > 0 && (d[i] < 200 || d[i + 2] < 200)) n++; return n; }}""")


def _run_then_pause(page, windows: int) -> None:
    """Run live with no delay past `windows` windows, then pause: the loop stops, and a step
    already sent still lands."""
    page.fill("#delay", "0")
    page.click("#run")
    page.wait_for_function(f"window.dashboard.points().windows > {windows}", timeout=60_000)
    page.click("#pause")
    page.wait_for_function("document.querySelector('#pause').disabled && !window.dashboard.busy()")


def test_dashboard_plays_an_episode_live_and_steps_by_hand(live_server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1366, "height": 768})  # a laptop screen
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))

    page.goto(live_server.url + "/")  # redirects to /web/
    assert page.url.endswith("/web/")
    page.wait_for_function(f"document.querySelector('#task').options.length === {len(TASKS) + len(CLUSTER_TASK_IDS)}")
    page.wait_for_function("document.querySelectorAll('#leaderboard tbody tr').length >= 5")

    # a heuristic episode, run live
    page.select_option("#task", "adversarial_multitenant")
    page.fill("#seed", "1000002")
    page.select_option("#policy", "heuristic")
    page.click("#start")
    page.wait_for_function("window.dashboard.session() !== null")
    assert page.evaluate("window.dashboard.points().windows") == 1  # the reset observation
    _run_then_pause(page, 25)
    pts = page.evaluate("window.dashboard.points()")
    assert pts["renders"] >= pts["windows"] > 25  # every window redrew the charts
    score = float(page.inner_text("#score"))
    assert score > 0 and page.inner_text("#window").startswith(str(pts["windows"] - 1))
    # each chart redraw after a step took well under 100 ms
    assert page.evaluate("window.dashboard.stepToRenderMs()") < 100
    # the charts hold points: sample the TTFT canvas for drawn (non-white) pixels
    assert _drawn(page, "c-ttft") > 500
    page.screenshot(path=str(tmp_path / "heuristic.png"))
    # the score is explained, and the baselines on this seed arrive as reference lines
    assert "share of the episode's offered value served within its SLO" in page.inner_text("#explain")
    page.wait_for_function("typeof window.dashboard.refs().heuristic === 'number' && "
                           "typeof window.dashboard.refs()['vllm-default'] === 'number'", timeout=60_000)
    refs = page.evaluate("window.dashboard.refs()")
    import httpx
    for policy in ("heuristic", "vllm-default"):
        direct = httpx.get(live_server.url + "/baseline", params={"policy": policy, "task_id": "adversarial_multitenant",
                                                                  "seed": 1000002}, timeout=120).json()
        assert refs[policy] == direct["score"]
    # per-tenant scores: one row per tenant, each a share in [0, 1]
    last = page.evaluate("window.dashboard.last()")
    for t in last["tenants"]:
        cell = page.inner_text(f"#tenants [data-tenant='{t['name']}']")
        assert 0.0 <= float(cell) <= 1.0 and abs(float(cell) - t["score_so_far"]) < 1e-3
    # the per-agent panel: each agent's knobs in real units and the index that encodes them
    from igym_marl.envs.actions import knobs_to_actions
    from igym_marl.sim import Knobs
    indices = knobs_to_actions(Knobs(**last["knobs"]))
    agents_text = page.inner_text("#agents")
    for agent, i in indices.items():
        assert f"{i} of " in page.inner_text(f"#agents tr:has([data-agent='{agent}'])"), agents_text
    assert f"batch_cap = {last['knobs']['batch_cap']}" in agents_text
    # export: the log is the grader's input, the CSV one row a window
    assert page.is_visible("#export-json") and page.is_visible("#export-csv")
    with page.expect_download() as dl:
        page.click("#export-json")
    log = json.loads(Path(dl.value.path()).read_text())
    assert set(log) == {"task_id", "seed", "actions"} and log["seed"] == 1000002
    assert len(log["actions"]) == page.evaluate("window.dashboard.points().windows") - 1
    with page.expect_download() as dl:
        page.click("#export-csv")
    rows = Path(dl.value.path()).read_text().strip().splitlines()
    assert len(rows) == 1 + page.evaluate("window.dashboard.points().windows") and "interactive.slo_met" in rows[0]
    assert page.is_disabled("#grade")  # only a finished episode is graded

    # manual: change the knobs and step; the engine applies them
    page.select_option("#policy", "manual")
    assert page.is_visible("#manual")
    assert page.inner_text("#status").endswith(", manual")  # the header names the policy now stepping
    running = page.evaluate("window.dashboard.last().knobs")  # the form starts from the engine's knobs
    assert int(page.input_value("#k-batch_cap")) == running["batch_cap"]
    assert page.is_checked("#k-priority_routing") == running["priority_routing"]
    page.fill("#k-batch_cap", "8")
    page.fill("#k-kv_budget_fraction", "0.3")
    page.fill("#k-speculation_depth", "2")
    page.select_option("#k-quantization_tier", "INT4")
    page.set_checked("#k-prefill_decode_split", False)
    page.set_checked("#k-priority_routing", True)
    before = page.evaluate("window.dashboard.points().windows")
    for _ in range(3):
        page.click("#step")
        page.wait_for_function(f"window.dashboard.points().windows > {before}")
        before = page.evaluate("window.dashboard.points().windows")
    last = page.evaluate("window.dashboard.last()")
    assert last["knobs"] == {"batch_cap": 8, "kv_budget_fraction": 0.3, "speculation_depth": 2,
                             "quantization_tier": "INT4", "prefill_decode_split": False, "priority_routing": True}
    assert last["active_requests"] <= 8  # the batch cap holds in the engine
    assert "8 seqs" in page.inner_text("#knobs") and "INT4" in page.inner_text("#knobs")
    assert "2 tokens" in page.inner_text("#knobs")
    # an empty field is refused in the page, never sent as 0
    page.fill("#k-batch_cap", "")
    page.click("#step")
    page.wait_for_function("document.querySelector('#manual-error').textContent.includes('batch_cap is empty')")
    assert page.evaluate("window.dashboard.points().windows") == before
    page.fill("#k-batch_cap", "8")
    # a bad manual value is refused with the server's message, not clamped
    page.fill("#k-batch_cap", "9999")
    page.click("#step")
    page.wait_for_function("document.querySelector('#manual-error').textContent.length > 0")
    assert "batch_cap=9999 is out of range; allowed: an integer in 1..512" in page.inner_text("#manual-error")
    assert page.evaluate("window.dashboard.points().windows") == before

    page.fill("#k-batch_cap", "64")
    page.select_option("#policy", "heuristic")
    page.click("#run")
    page.wait_for_function(f"window.dashboard.points().windows > {before + 15}", timeout=60_000)
    page.click("#pause")
    page.wait_for_function("document.querySelector('#pause').disabled && !window.dashboard.busy()")
    # to the end, then grade: the server replays the log and finds the episode's own score
    page.click("#run")
    page.wait_for_function("window.dashboard.last().done === true", timeout=120_000)
    page.click("#grade")
    page.wait_for_function("document.querySelector('#grade-result').textContent.includes('score')")
    final = page.evaluate("window.dashboard.last().episode.score")
    assert f"score {final:.4f}" in page.inner_text("#grade-result")
    assert page.inner_text("#status").startswith("episode over")
    shot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "dashboard.png")
    if not shot.is_absolute():
        shot = ROOT / shot
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    http_errors = [p for p in problems if "422" in p]  # the refused manual step logs one failed request
    assert [p for p in problems if p not in http_errors] == [], problems
    assert len(http_errors) <= 1
    page.close()
    assert shot.stat().st_size > 20_000


CLUSTER_SCREENSHOT_ENV = "IGYM_CLUSTER_SCREENSHOT"  # docs/img/dashboard-cluster.png, written on request


def test_dashboard_watches_a_cluster(live_server, browser, tmp_path):
    import httpx
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(live_server.url + "/web/")
    page.wait_for_function("document.querySelector('#task').options.length > 4")
    # a cluster task offers the cluster controllers, and the manual form its rule and target
    page.select_option("#task", "cluster_bursty")
    options = page.eval_on_selector_all("#policy option", "os => os.map(o => o.value)")
    assert options == ["vllm-default", "rule:round_robin", "rule:prefix_affinity", "rule:scored:0.43", "best-constant",
                       "hpa", "mappo", "manual"]
    page.fill("#seed", "1000003")
    page.select_option("#policy", "hpa")
    page.click("#start")
    page.wait_for_function("window.dashboard.session() !== null")
    assert page.evaluate("window.dashboard.kind()") == "cluster"
    assert page.is_visible("#replicas") and page.is_visible("#c-fleet") and not page.is_visible("#c-ttft")
    assert "GPU-hours billed" in page.inner_text("#explain-cluster") and not page.is_visible("#explain")
    _run_then_pause(page, 30)
    last = page.evaluate("window.dashboard.last()")
    # the replicas table: one row each, its state and the arrivals routed to it, as the server sent them
    rows = page.query_selector_all("#replicas tr[data-replica]")
    assert len(rows) == 4
    for r in last["replicas"]:
        row = page.inner_text(f"#replicas tr[data-replica='{r['index']}']")
        assert r["state"] in row and str(r["routed"]) in row
    assert page.inner_text("#fleet") == f"{last['fleet']['active']} / {last['fleet']['target']}"
    assert page.inner_text("#rule") == last["fleet"]["rule"]
    for cid in ("c-fleet", "c-routed", "c-ckv", "c-cost", "c-cscore"):
        assert _drawn(page, cid) > 300, cid
    for t in last["tenants"]:
        assert abs(float(page.inner_text(f"#tenants [data-tenant='{t['name']}']")) - t["score_so_far"]) < 1e-3
    # the baselines on this seed arrive as reference lines: every replica at vLLM's default, and HPA
    page.wait_for_function("typeof window.dashboard.refs().hpa === 'number' && "
                           "typeof window.dashboard.refs()['vllm-default'] === 'number'", timeout=60_000)
    refs = page.evaluate("window.dashboard.refs()")
    direct = httpx.get(live_server.url + "/baseline", params={"policy": "hpa", "task_id": "cluster_bursty",
                                                              "seed": 1000003}, timeout=120).json()
    assert refs["hpa"] == direct["score"]
    # manual: the knobs on every replica, a rule and a target
    page.select_option("#policy", "manual")
    assert page.is_visible("#k-rule") and page.is_visible("#k-target")
    assert page.input_value("#k-rule") == last["fleet"]["rule"]  # the form starts from what runs
    page.select_option("#k-rule", "round_robin")
    page.fill("#k-target", "2")
    page.fill("#k-batch_cap", "32")
    before = page.evaluate("window.dashboard.points().windows")
    page.click("#step")
    page.wait_for_function(f"window.dashboard.points().windows > {before}")
    last = page.evaluate("window.dashboard.last()")
    assert last["fleet"]["rule"] == "round_robin" and last["fleet"]["target"] == 2
    assert all(r["knobs"]["batch_cap"] == 32 for r in last["replicas"])
    page.fill("#k-target", "7")  # refused by the server, naming the range
    page.click("#step")
    page.wait_for_function("document.querySelector('#manual-error').textContent.length > 0")
    assert "target=7 must be an integer in 1..4" in page.inner_text("#manual-error")
    # export: the cluster log and one CSV row a window, with every replica's columns
    with page.expect_download() as dl:
        page.click("#export-csv")
    rows = Path(dl.value.path()).read_text().strip().splitlines()
    assert len(rows) == 1 + page.evaluate("window.dashboard.points().windows")
    assert "fleet.target" in rows[0] and "r3.routed" in rows[0] and "r0.batch_cap" in rows[0]
    # to the end with mappo, then grade: the replayed log scores what the episode scored
    page.select_option("#policy", "mappo")
    page.click("#run")
    page.wait_for_function("window.dashboard.last().done === true", timeout=120_000)
    with page.expect_download() as dl:
        page.click("#export-json")
    log = json.loads(Path(dl.value.path()).read_text())
    assert len(log["actions"]) == 120 and set(log["actions"][0]) == {"knobs", "rule", "target"}
    page.click("#grade")
    page.wait_for_function("document.querySelector('#grade-result').textContent.includes('score')")
    final = page.evaluate("window.dashboard.last().episode.score")
    assert f"score {final:.4f}" in page.inner_text("#grade-result")
    shot = os.environ.get(CLUSTER_SCREENSHOT_ENV)
    path = (ROOT / shot) if shot and not Path(shot).is_absolute() else Path(shot or tmp_path / "cluster.png")
    page.screenshot(path=str(path), full_page=True)
    assert [p for p in problems if "422" not in p] == [], problems
    page.close()
