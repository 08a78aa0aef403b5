"""The HTTP API in-process: sessions, validation, the body cap, the catalog, grader and baseline."""

import time

import pytest
from fastapi.testclient import TestClient

from igym_marl.server import create_app
from igym_marl.server.sessions import SessionLimit, SessionStore, UnknownSession

from .conftest import GOOD


def _session(client, **body):
    r = client.post("/sessions", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_session_lifecycle(client):
    s = _session(client, task_id="static_workload", seed=11)
    sid, obs = s["session_id"], s["observation"]
    assert obs["task_id"] == "static_workload" and obs["seed"] == 11 and obs["window"] == 0 and not s["done"]
    assert len(obs) >= 15 + 1
    r = client.post(f"/sessions/{sid}/step", json={"action": GOOD})
    assert r.status_code == 200, r.text
    step = r.json()
    assert step["observation"]["window"] == 1 and step["observation"]["knobs"] == GOOD
    assert step["reward"] > 0 and step["observation"]["throughput_tps"] > 0
    from igym_marl.envs.actions import knobs_to_actions
    from igym_marl.sim import Knobs
    assert step["observation"]["agent_actions"] == knobs_to_actions(Knobs(**GOOD))  # each agent's index
    st = client.get(f"/sessions/{sid}/state").json()
    assert st["window"] == 1 and st["step_count"] == 1 and st["seed"] == 11 and not st["done"]
    assert client.get(f"/sessions/{sid}/log").json() == {"task_id": "static_workload", "seed": 11, "actions": [GOOD]}
    off_level = client.post(f"/sessions/{sid}/step", json={"action": dict(GOOD, kv_budget_fraction=0.35)}).json()
    assert off_level["observation"]["agent_actions"]["kv_manager"] is None  # between the KV manager's levels
    assert client.delete(f"/sessions/{sid}").status_code == 204
    for method, path in (("get", f"/sessions/{sid}/state"), ("post", f"/sessions/{sid}/step"),
                         ("delete", f"/sessions/{sid}")):
        r = getattr(client, method)(path, **({"json": {"action": GOOD}} if method == "post" else {}))
        assert r.status_code == 404 and "does not exist" in r.json()["detail"]


def test_each_session_is_its_own_env_and_seeded(client):
    a, b = _session(client, seed=5), _session(client, seed=5)
    c = _session(client, seed=6)
    steps = {}
    for s in (a, b, c):
        steps[s["session_id"]] = [client.post(f"/sessions/{s['session_id']}/step", json={"action": GOOD}).json()
                                  for _ in range(3)]
    assert steps[a["session_id"]] == steps[b["session_id"]]  # same seed, same actions: same trajectory
    assert steps[a["session_id"]] != steps[c["session_id"]]
    for s in (a, b, c):
        client.delete(f"/sessions/{s['session_id']}")


@pytest.mark.parametrize("field, value, fragment", [
    ("batch_cap", 9999, "batch_cap=9999 is out of range; allowed: an integer in 1..512"),
    ("batch_cap", "64", "batch_cap='64' has type str"),
    ("kv_budget_fraction", 0.01, "kv_budget_fraction=0.01 is out of range; allowed: a number in 0.1..1.0"),
    ("quantization_tier", "FP8", "quantization_tier='FP8' is not allowed; allowed: FP16, INT8, INT4"),
    ("prefill_decode_split", "yes", "prefill_decode_split='yes' is not allowed"),
])
def test_bad_actions_are_refused_with_the_field_value_and_range_never_clamped(client, field, value, fragment):
    s = _session(client)
    for path, body in ((f"/sessions/{s['session_id']}/step", {"action": {**GOOD, field: value}}),
                       ("/step", {"action": {**GOOD, field: value}})):
        r = client.post(path, json=body)
        assert r.status_code == 422, (path, r.text)
        assert fragment in str(r.json()["detail"]), (path, r.text)
    # the refused step left the episode where it was
    assert client.get(f"/sessions/{s['session_id']}/state").json()["window"] == 0
    client.delete(f"/sessions/{s['session_id']}")


def test_action_shape_errors(client):
    sid = _session(client)["session_id"]
    cases = [({"action": {"batch_cap": 64}}, "missing ["),
             ({"action": {**GOOD, "temperature": 1}}, "Extra inputs are not permitted"),
             ({"action": {**GOOD, "policy": "heuristic"}}, "not both"),
             ({"action": {"policy": "oracle"}}, "policy='oracle' is unknown"),
             ({"knobs": GOOD}, "the body must be")]
    for body, fragment in cases:
        r = client.post(f"/sessions/{sid}/step", json=body)
        assert r.status_code == 422 and fragment in r.text, (body, r.text)
    r = client.post(f"/sessions/{sid}/step", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "json" in r.text.lower()
    r = client.post("/sessions", json={"task_id": "chess"})
    assert r.status_code == 422 and "task_id='chess' is unknown; allowed: static_workload" in r.text
    r = client.post("/sessions", json={"seed": -1})
    assert r.status_code == 422 and "seed=-1" in r.text
    r = client.post("/sessions", json={"mode": "team"})
    assert r.status_code == 422 and "mode='team' is unknown; allowed: single, multi" in r.text
    client.delete(f"/sessions/{sid}")


def test_openenv_plain_http_step_says_where_episodes_live(client):
    r = client.post("/step", json={"action": GOOD})
    assert r.status_code == 409 and "/ws or /sessions" in r.json()["detail"]
    r = client.post("/reset", json={"task_id": "static_workload", "seed": 3})
    assert r.status_code == 200 and r.json()["observation"]["seed"] == 3


def test_multi_agent_sessions(client):
    s = _session(client, mode="multi", task_id="adversarial_multitenant", seed=2)
    assert set(s["observation"]["observations"]) == {"batch_scheduler", "kv_manager", "spec_controller", "tenant_router"}
    r = client.post(f"/sessions/{s['session_id']}/step",
                    json={"action": {"batch_scheduler": 5, "kv_manager": 3, "spec_controller": 0, "tenant_router": 1}})
    assert r.status_code == 200, r.text
    assert r.json()["observation"]["knobs"]["priority_routing"] is True
    r = client.post(f"/sessions/{s['session_id']}/step",
                    json={"action": {"batch_scheduler": 99, "kv_manager": 3, "spec_controller": 0, "tenant_router": 1}})
    assert r.status_code == 422 and "batch_scheduler" in r.text and "99" in r.text
    r = client.post(f"/sessions/{s['session_id']}/step", json={"action": {"policy": "heuristic"}})
    assert r.status_code == 200 and r.json()["observation"]["window"] == 2
    client.delete(f"/sessions/{s['session_id']}")


def test_grader_recomputes_a_finished_session_and_a_log(client):
    s = _session(client, task_id="static_workload", seed=1_000_003)
    sid = s["session_id"]
    assert client.post("/grader", json={"session_id": sid}).status_code == 409  # not finished
    done, last = False, None
    while not done:
        last = client.post(f"/sessions/{sid}/step", json={"action": {"policy": "heuristic"}}).json()
        done = last["done"]
    graded = client.post("/grader", json={"session_id": sid}).json()
    assert graded["score"] == pytest.approx(last["observation"]["episode"]["score"], rel=1e-12)
    assert set(graded) >= {"score", "goodput", "quality", "memory", "windows"}
    log = client.get(f"/sessions/{sid}/log").json()
    assert client.post("/grader", json=log).json() == graded
    # a tampered log scores differently; a short or bad log is refused, naming what is wrong
    tampered = dict(log, actions=[dict(a, batch_cap=1) for a in log["actions"]])
    assert client.post("/grader", json=tampered).json()["score"] < graded["score"]
    r = client.post("/grader", json=dict(log, actions=log["actions"][:10]))
    assert r.status_code == 422 and "actions has 10 windows; a static_workload episode has 200" in r.text
    bad = dict(log, actions=[*log["actions"][:-1], dict(log["actions"][0], batch_cap=0)])
    r = client.post("/grader", json=bad)
    assert r.status_code == 422 and "actions[199]: batch_cap=0 is out of range" in r.text
    assert client.post("/grader", json={"log": 1}).status_code == 422
    client.delete(f"/sessions/{sid}")


def test_baseline_matches_the_evaluation_loop(client):
    from igym_marl.agents import make_policy
    from igym_marl.agents.evaluation import run_episode
    r = client.get("/baseline", params={"policy": "heuristic", "task_id": "adversarial_multitenant",
                                        "seed": 1_000_001})
    assert r.status_code == 200, r.text
    ref = run_episode(make_policy("heuristic"), "adversarial_multitenant", 1_000_001)
    assert r.json()["score"] == pytest.approx(ref["score"], rel=1e-12) and r.json()["windows"] == 200
    r = client.get("/baseline", params={"policy": "oracle"})
    assert r.status_code == 422 and "allowed: heuristic, vllm-default" in r.text


def test_tasks_catalog_and_leaderboard(client):
    cat = client.get("/tasks").json()
    assert [t["id"] for t in cat["tasks"]] == ["static_workload", "bursty_workload", "adversarial_multitenant",
                                                 "mooncake_conversation"]
    adv = cat["tasks"][2]
    assert adv["episode_windows"] == 200 and len(adv["tenants"]) == 3 and adv["capacity_rps"] > 0
    assert set(cat["action_schema"]["properties"]) >= {"batch_cap", "kv_budget_fraction", "policy"}
    assert cat["multi_agent"]["agents"]["spec_controller"]["n"] == 9
    assert client.get("/metadata").json()["name"] == "igym-marl serving_v0, single agent (InferenceGym fields)"
    assert client.get("/multi/metadata").json()["name"] == "igym-marl serving_v0, four agents"
    assert "batch_cap" in client.get("/schema").json()["action"]["properties"]
    lb = client.get("/leaderboard").json()
    assert lb["columns"][0] == "agent" and any(r[0] == "heuristic" for r in lb["rows"])


def test_body_cap_refuses_oversized_requests():
    with TestClient(create_app(max_body_bytes=2048)) as c:
        big = {"action": dict(GOOD, padding="x" * 5000)}
        r = c.post("/sessions", json=big)
        assert r.status_code == 413 and "exceeds the limit of 2048 bytes" in r.json()["detail"]

        def chunks():  # no content-length: the cap applies to the streamed body
            for _ in range(10):
                yield b"x" * 500
        r = c.post("/grader", content=chunks())
        assert r.status_code == 413
        assert c.get("/health").status_code == 200


def test_session_limit_gives_a_clear_503_and_frees_on_close():
    with TestClient(create_app(max_sessions=2)) as c:
        ids = [c.post("/sessions", json={}).json()["session_id"] for _ in range(2)]
        r = c.post("/sessions", json={})
        assert r.status_code == 503 and "session limit reached: 2 of 2 in use" in r.json()["detail"]
        assert r.headers["retry-after"] == "5"
        c.delete(f"/sessions/{ids[0]}")
        assert c.post("/sessions", json={}).status_code == 201


def test_sessions_expire_when_idle():
    now = [0.0]
    store = SessionStore(max_sessions=2, idle_timeout_s=10.0, clock=lambda: now[0])
    a = store.create()
    now[0] = 6.0
    b = store.create()
    now[0] = 12.0
    store.get(b.id)  # b was used 6 s ago: kept; a was idle 12 s: gone
    with pytest.raises(UnknownSession, match="idle for more than 10 s"):
        store.get(a.id)
    assert len(store) == 1 and store.expired == 1
    store.create()
    with pytest.raises(SessionLimit):
        store.create()
    with pytest.raises(ValueError, match="max_sessions=0"):
        SessionStore(max_sessions=0)


def test_idle_expiry_in_the_app():
    with TestClient(create_app(idle_timeout_s=0.3)) as c:
        sid = c.post("/sessions", json={}).json()["session_id"]
        time.sleep(0.5)
        assert c.get(f"/sessions/{sid}/state").status_code == 404
        assert c.get("/server/status").json()["expired_http_sessions"] == 1


@pytest.mark.parametrize("policy", ["heuristic", "vllm-default", "best-constant", "mappo"])
def test_every_dashboard_policy_acts_on_every_task(client, policy):
    for task in ("static_workload", "bursty_workload", "adversarial_multitenant"):
        sid = _session(client, task_id=task, seed=1_000_001)["session_id"]
        r = client.post(f"/sessions/{sid}/step", json={"action": {"policy": policy}})
        assert r.status_code == 200, (task, policy, r.text)
        assert r.json()["observation"]["window"] == 1 and set(r.json()["observation"]["knobs"]) == set(GOOD)
        client.delete(f"/sessions/{sid}")
