"""Cluster mode over HTTP: sessions with mode 'cluster', their observations (replicas, fleet,
tenants), validation of {knobs, rule, target}, the grader's replay of a cluster log, /baseline
and OpenEnv's routes under /cluster."""

import pytest

from .conftest import GOOD


def _open(client, **body):
    r = client.post("/sessions", json={"mode": "cluster", **body})
    assert r.status_code == 201, r.text
    return r.json()


def _step(client, sid, action, status=200):
    r = client.post(f"/sessions/{sid}/step", json={"action": action})
    assert r.status_code == status, r.text
    return r.json()


def _consistent(obs, n=4):
    """What every cluster observation must satisfy."""
    reps, fleet = obs["replicas"], obs["fleet"]
    assert len(reps) == fleet["replicas"] == n
    assert sum(fleet[s] for s in ("off", "starting", "active", "draining")) == n
    assert [r["state"] for r in reps].count("active") == fleet["active"]
    assert sum(r["routed"] for r in reps) == fleet["arrivals"]
    assert sum(sum(t["routed"]) for t in obs["tenants"]) == fleet["arrivals"]
    for r in reps:
        assert sum(r["routed_by_tenant"]) == r["routed"]
        assert 0.0 <= r["kv_occupancy"] <= 1.0 and 0.0 <= r["busy_fraction"] <= 1.0
        if r["state"] == "off":
            assert r["routed"] == 0  # nothing is sent to a replica that is off
    for t in obs["tenants"]:
        assert t["score_so_far"] is None or 0.0 <= t["score_so_far"] <= 1.0


def test_cluster_session_with_policies_and_manual_control(client):
    s = _open(client, task_id="cluster_bursty", seed=1_000_000)
    sid, obs = s["session_id"], s["observation"]
    assert s["mode"] == "cluster" and obs["task_id"] == "cluster_bursty" and obs["window"] == 0
    assert obs["fleet"]["active"] == 4 and obs["fleet"]["rule"] == "least_outstanding" and obs["fleet"]["target"] == 4
    _consistent(obs)
    obs = _step(client, sid, {"policy": "hpa"})["observation"]
    assert obs["window"] == 1 and obs["fleet"]["arrivals"] > 0
    _consistent(obs)
    obs = _step(client, sid, {"knobs": GOOD, "rule": "round_robin", "target": 2})["observation"]
    _consistent(obs)
    assert obs["fleet"]["rule"] == "round_robin" and obs["fleet"]["target"] == 2
    assert all(r["knobs"]["batch_cap"] == 64 for r in obs["replicas"])
    assert obs["replicas"][0]["agent_actions"]["batch_scheduler"] is not None
    # per-replica knobs, one of them between the agents' levels: applied as given, never rounded
    per = [dict(GOOD, batch_cap=100)] + [GOOD] * 3
    obs = _step(client, sid, {"knobs": per, "rule": "scored:0.43", "target": 2})["observation"]
    assert [r["knobs"]["batch_cap"] for r in obs["replicas"]] == [100, 64, 64, 64]
    assert obs["replicas"][0]["agent_actions"]["batch_scheduler"] is None
    assert obs["fleet"]["rule"] == "scored:0.43"
    # after scale-in to 2, traffic reaches only replicas that are active or draining
    for _ in range(6):
        obs = _step(client, sid, {"knobs": GOOD, "rule": "least_outstanding", "target": 2})["observation"]
        _consistent(obs)
    assert obs["fleet"]["active"] == 2
    log = client.get(f"/sessions/{sid}/log").json()
    assert len(log["actions"]) == 9 and log["actions"][1]["knobs"] == GOOD  # one object: every replica alike
    assert log["actions"][2]["knobs"][0]["batch_cap"] == 100 and log["actions"][2]["rule"] == "scored:0.43"
    client.delete(f"/sessions/{sid}")


@pytest.mark.parametrize("action, fragment", [
    ({"knobs": GOOD, "rule": "bogus", "target": 2}, "rule='bogus' is unknown; allowed: round_robin"),
    ({"knobs": GOOD, "rule": "round_robin", "target": 9}, "target=9 must be an integer in 1..4"),
    ({"knobs": GOOD, "rule": "round_robin", "target": 0}, "target=0 must be an integer >= 1"),
    ({"knobs": GOOD, "rule": "round_robin", "target": True}, "target=True must be an integer"),
    ({"knobs": GOOD, "rule": "round_robin"}, "target missing"),
    ({"knobs": [GOOD] * 3, "rule": "round_robin", "target": 2}, "knobs has 3 entries; cluster_diurnal runs 4"),
    ({"knobs": [GOOD, dict(GOOD, kv_budget_fraction=3)] + [GOOD] * 2, "rule": "round_robin", "target": 2},
     "knobs[1]: kv_budget_fraction=3"),
    ({"knobs": 5, "rule": "round_robin", "target": 2}, "knobs=5 must be an object of the six knob fields"),
    ({"policy": "oracle"}, "policy='oracle' is unknown; allowed: vllm-default, rule:round_robin"),
    ({"policy": "hpa", "target": 2}, "give knobs, rule and target or policy, not both"),
    ({"batch_cap": 64}, "\"loc\":[\"batch_cap\"],\"msg\":\"Extra inputs are not permitted\""),
])
def test_bad_cluster_actions_name_the_field_and_change_nothing(client, action, fragment):
    s = _open(client, seed=5)
    r = client.post(f"/sessions/{s['session_id']}/step", json={"action": action})
    assert r.status_code == 422 and fragment in r.text, r.text
    assert client.get(f"/sessions/{s['session_id']}/state").json()["window"] == 0
    client.delete(f"/sessions/{s['session_id']}")


def test_modes_and_tasks_must_match(client):
    r = client.post("/sessions", json={"mode": "cluster", "task_id": "bursty_workload"})
    assert r.status_code == 422 and "is a single-replica task" in r.text
    r = client.post("/sessions", json={"task_id": "cluster_diurnal"})
    assert r.status_code == 422 and "is a cluster task: play it in a cluster session (mode 'cluster'" in r.text
    r = client.post("/sessions", json={"mode": "fleet"})
    assert r.status_code == 422 and "allowed: single, multi, cluster" in r.text


def test_same_seed_same_cluster_episode(client):
    a, b = _open(client, task_id="cluster_conversation", seed=7), _open(client, task_id="cluster_conversation", seed=7)
    for act in ({"policy": "best-constant"}, {"knobs": GOOD, "rule": "prefix_affinity", "target": 3}, {"policy": "mappo"}):
        oa, ob = _step(client, a["session_id"], act), _step(client, b["session_id"], act)
        assert oa == ob
    for s in (a, b):
        client.delete(f"/sessions/{s['session_id']}")


def test_grader_replays_a_cluster_session_and_its_log(client):
    s = _open(client, task_id="cluster_conversation", seed=1_000_002)
    sid, last = s["session_id"], None
    w = 0
    while last is None or not last["done"]:  # a mix: every replica's own knobs, two rules, a policy
        action = ({"policy": "mappo"} if w % 3 == 0 else
                  {"knobs": [dict(GOOD, batch_cap=2 ** (4 + i)) for i in range(4)], "rule": "prefix_affinity",
                   "target": 3 + w % 2})
        last = _step(client, sid, action)
        w += 1
    ep = last["observation"]["episode"]
    assert set(ep) == {"score", "goodput", "quality", "gpu_share", "cost", "billed_usd", "ttft_attainment",
                       "ttft_p50_ms", "prefix_hit_rate"}
    graded = client.post("/grader", json={"session_id": sid}).json()
    assert graded["score"] == ep["score"] and graded["windows"] == 90
    log = client.get(f"/sessions/{sid}/log").json()
    assert client.post("/grader", json=log).json() == graded
    bad = dict(log, actions=[*log["actions"][:5], dict(log["actions"][5], target=5), *log["actions"][6:]])
    r = client.post("/grader", json=bad)
    assert r.status_code == 422 and "actions[5]: target=5 must be an integer in 1..4" in r.text
    r = client.post("/grader", json=dict(log, actions=log["actions"][:10]))
    assert r.status_code == 422 and "a cluster_conversation episode has 90: give one {knobs, rule, target}" in r.text
    client.delete(f"/sessions/{sid}")


def test_cluster_baseline_matches_the_evaluation_loop(client):
    from igym_marl.agents.cluster.evaluate import make_cluster_policy
    from igym_marl.agents.evaluation import run_episode
    r = client.get("/baseline", params={"policy": "hpa", "task_id": "cluster_conversation", "seed": 1_000_001})
    assert r.status_code == 200, r.text
    ref = run_episode(make_cluster_policy("hpa", "cluster_conversation"), "cluster_conversation", 1_000_001)
    assert r.json()["score"] == ref["score"] and r.json()["windows"] == 90
    r = client.get("/baseline", params={"policy": "heuristic", "task_id": "cluster_conversation"})
    assert r.status_code == 422 and "allowed: vllm-default, hpa, best-constant" in r.text


def test_catalog_and_openenv_routes_under_cluster(client):
    cat = client.get("/tasks").json()["cluster"]
    assert [t["id"] for t in cat["tasks"]] == ["cluster_diurnal", "cluster_bursty", "cluster_conversation"]
    assert all(t["replicas"] == 4 for t in cat["tasks"]) and "scored:0.43" in cat["rules"]
    assert set(cat["action_schema"]["properties"]) >= {"knobs", "rule", "target", "policy"}
    assert client.get("/cluster/metadata").json()["name"] == "igym-marl serving_cluster_v0 (replicas, router, autoscaler)"
    r = client.post("/cluster/reset", json={"task_id": "cluster_bursty", "seed": 3})
    assert r.status_code == 200 and r.json()["observation"]["seed"] == 3
    assert len(r.json()["observation"]["replicas"]) == 4
    assert client.post("/cluster/step", json={"action": {"policy": "hpa"}}).status_code == 409


def test_cli_and_app_share_the_body_default():
    from igym_marl import cli
    from igym_marl.server import app
    assert cli.DEFAULT_MAX_BODY_BYTES == app.DEFAULT_MAX_BODY_BYTES
    assert cli.MIN_BODY_BYTES == app.MIN_BODY_BYTES


def test_a_full_cluster_log_with_per_replica_knobs_fits_the_default_body_cap(client):
    import json

    from igym_marl.server.app import DEFAULT_MAX_BODY_BYTES
    from igym_marl.server.environment import ClusterEpisode
    from igym_marl.sim import Knobs
    ep = ClusterEpisode("cluster_diurnal")  # the longest cluster episode: 180 windows
    ep.reset(seed=1)
    knobs = [Knobs(batch_cap=2 ** (5 + i), kv_budget_fraction=0.55, quantization_tier="INT8") for i in range(4)]
    while not ep.done:
        ep.step_control(knobs, "scored:0.43", 4)
    log = ep.log_record()
    size = len(json.dumps(log))
    assert 100_000 < size < DEFAULT_MAX_BODY_BYTES  # about 120 kB
    r = client.post("/grader", json=log)
    assert r.status_code == 200 and r.json()["score"] == ep.episode_components()["score"]
