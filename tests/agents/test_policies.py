"""Policies: registry, constants, randomness, heuristic, checkpoints, and the LLM client."""

import json
import re
import time
import pickle
import threading

import numpy as np
import pytest
import torch

from igym_marl.agents import make_policy
from igym_marl.agents.evaluation import run_episode
from igym_marl.agents.policies.llm import LLMPolicy, validate_reply, LLMError
from igym_marl.agents.training.networks import SharedActor, load_checkpoint, save_checkpoint
from igym_marl.agents.policies.simple import parse_knobs
from igym_marl.envs import AGENT_KNOBS
from igym_marl.workloads import TASKS, get_task
from tests.fakellm import GOOD, FakeLLM


def test_registry_and_constant_specs():
    with pytest.raises(ValueError, match="policy='greedy' is unknown; allowed: random"):
        make_policy("greedy")
    with pytest.raises(ValueError, match="only 'constant' takes"):
        make_policy("random:3")
    k = parse_knobs("batch_cap=64,kv_budget_fraction=0.5,priority_routing=on,quantization_tier=int8")
    assert (k.batch_cap, k.kv_budget_fraction, k.priority_routing, k.quantization_tier) == (64, 0.5, True, "INT8")
    with pytest.raises(ValueError, match="unknown knob 'turbo'"):
        parse_knobs("turbo=1")
    with pytest.raises(ValueError, match="not a level"):
        make_policy("constant:batch_cap=100")  # the env's agents only have power-of-two levels
    assert make_policy("constant:batch_cap=64").name == "constant:batch_cap=64"


@pytest.mark.parametrize("name", ["random", "vllm-default", "heuristic", "best-constant"])
def test_policies_act_validly_and_deterministically(name):
    a = run_episode(make_policy(name), "adversarial_multitenant", 1_000_003, episode_windows=30)
    b = run_episode(make_policy(name), "adversarial_multitenant", 1_000_003, episode_windows=30)
    assert a == b and 0.0 <= a["score"] < 1.0 and a["agent"] == name


def test_random_differs_across_seeds():
    p = make_policy("random")
    p.reset(TASKS["static_workload"], 1)
    x = [p.act({}, {}) for _ in range(5)]
    p.reset(TASKS["static_workload"], 2)
    y = [p.act({}, {}) for _ in range(5)]
    assert x != y and all(0 <= v < AGENT_KNOBS[a].n for d in x for a, v in d.items())


# ---------------------------------------------------------------------------------- checkpoints
def test_checkpoint_roundtrip_and_refusals(tmp_path):
    actor = SharedActor()
    path = save_checkpoint(tmp_path / "c.pt", algo="mappo", task="bursty_workload", args={"hidden": 64},
                           modules={"actor": actor}, step=10)
    blob = load_checkpoint(path, algos=("mappo",), task="bursty_workload")
    assert blob["step"] == 10 and set(blob["state_dicts"]) == {"actor"}
    with pytest.raises(ValueError, match="trained on task 'bursty_workload', not 'static_workload'"):
        load_checkpoint(path, algos=("mappo",), task="static_workload")
    with pytest.raises(ValueError, match="holds a 'mappo' policy; expected one of \\['ppo-single'\\]"):
        load_checkpoint(path, algos=("ppo-single",))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt", algos=("mappo",))
    blob["layout"] = {**blob["layout"], "obs_dims": [1, 2, 3, 4]}
    torch.save(blob, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="another observation/action layout"):
        load_checkpoint(tmp_path / "old.pt", algos=("mappo",))
    torch.save({**blob, "env_version": "serving_v9"}, tmp_path / "v9.pt")
    with pytest.raises(ValueError, match="env version 'serving_v9'"):
        load_checkpoint(tmp_path / "v9.pt", algos=("mappo",))


class Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_checkpoint_with_code_is_refused(tmp_path, capsys):
    """A bare pickle is refused before anything reads it; a torch archive holding code is refused
    by the weights-only loader. Neither runs its code."""
    bare = tmp_path / "evil.pt"
    with open(bare, "wb") as f:
        pickle.dump({"format": "igym-marl-policy/1", "payload": Exploit()}, f)
    with pytest.raises(ValueError, match="is not a torch checkpoint: torch.save writes a zip archive"):
        load_checkpoint(bare, algos=("mappo",))
    archive = tmp_path / "evil_archive.pt"
    torch.save({"format": "igym-marl-policy/1", "payload": Exploit()}, archive)
    with pytest.raises(ValueError, match="cannot be loaded safely"):
        load_checkpoint(archive, algos=("mappo",))
    assert "must never run" not in capsys.readouterr().out


def test_mappo_policy_requires_a_checkpoint_for_its_task(tmp_path):
    p = make_policy("mappo", checkpoint=tmp_path)
    with pytest.raises(FileNotFoundError, match="bursty_workload.pt does not exist"):
        p.reset(get_task("bursty_workload"), 1_000_000)


# ---------------------------------------------------------------------------------- LLM


def test_llm_policy_uses_valid_replies_retries_once_then_falls_back(llm_server, monkeypatch):
    monkeypatch.setenv("IGYM_LLM_API_KEY", "k")
    FakeLLM.script = [json.dumps(GOOD),  # window 1: valid
                      "not json", "```json\n" + json.dumps({**GOOD, "batch_cap": 32}) + "\n```",  # 2: retry ok
                      json.dumps({**GOOD, "batch_cap": 100}), "HTTP500",  # window 3: invalid twice -> fallback
                      ] + [json.dumps(GOOD)] * 10
    policy = LLMPolicy(base_url=llm_server, model="test-model")
    rec = run_episode(policy, "adversarial_multitenant", 1_000_000, episode_windows=5)
    assert rec["policy.calls"] == 7 and rec["policy.retries"] == 2 and rec["policy.fallbacks"] == 1
    first = FakeLLM.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["body"]["model"] == "test-model"
    assert first["auth"] == "Bearer k" and "interactive (TTFT SLO 200 ms" in first["body"]["messages"][0]["content"]
    assert "Your previous answer was invalid" in FakeLLM.requests[2]["body"]["messages"][1]["content"]
    assert "p99_ttft_ms" in FakeLLM.requests[1]["body"]["messages"][1]["content"]


def test_llm_policy_unreachable_server_falls_back_every_window():
    policy = LLMPolicy(base_url="http://127.0.0.1:9", model="m", timeout_s=0.5)
    rec = run_episode(policy, "static_workload", 1_000_000, episode_windows=3)
    assert rec["policy.fallbacks"] == 3 and rec["policy.retries"] == 3


@pytest.mark.parametrize("reply,fragment", [
    ("[1, 2]", "not an object"), ("{}", "missing"), (json.dumps({**GOOD, "extra": 1}), "unexpected ['extra']"),
    (json.dumps({**GOOD, "batch_cap": 3}), "batch_cap=3 is not one of"),
    (json.dumps({**GOOD, "kv_budget_fraction": 0.55}), "kv_budget_fraction=0.55"),
    (json.dumps({**GOOD, "priority_routing": "yes"}), "priority_routing='yes'"),
    (json.dumps({**GOOD, "quantization_tier": "fp16"}), "quantization_tier='fp16'"),
])
def test_llm_reply_validation_is_strict(reply, fragment):
    with pytest.raises(LLMError) as e:
        validate_reply(reply)
    assert fragment in str(e.value)
    assert validate_reply(json.dumps(GOOD)).batch_cap == 64


def test_llm_configuration_errors(monkeypatch):
    for var in ("IGYM_LLM_BASE_URL", "OPENAI_BASE_URL", "IGYM_LLM_MODEL", "OPENAI_MODEL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="base URL"):
        LLMPolicy()
    monkeypatch.setenv("IGYM_LLM_BASE_URL", "http://x/v1")
    with pytest.raises(ValueError, match="model name"):
        LLMPolicy()
    monkeypatch.setenv("IGYM_LLM_MODEL", "m")
    assert LLMPolicy().base_url == "http://x/v1"


@pytest.mark.parametrize("task", list(TASKS))
def test_tuned_heuristic_at_least_the_best_constant_and_above_default_and_random(task):
    """The heuristic's tuning starts from the global best constant, so on its tuning seeds (training
    seeds 0-7) it is never below it on average. On held-out episodes it beats vLLM's default outright
    on the bursty and adversarial tasks and is level with it on the static task (light steady load);
    on the Mooncake task its rule does not carry over to held-out episodes (docs/baselines.md), so
    there it is only checked against random."""
    from igym_marl.agents.analysis.tuning import _seeds
    tuning = _seeds(8)
    tuned = {n: np.mean([run_episode(make_policy(n), task, s)["score"] for s in tuning])
             for n in ("heuristic", "best-constant")}
    assert tuned["heuristic"] >= tuned["best-constant"] - 1e-9
    held_out = [1_000_000 + i for i in range(3)]
    score = {n: np.array([run_episode(make_policy(n), task, s)["score"] for s in held_out])
             for n in ("heuristic", "vllm-default", "random")}
    assert score["vllm-default"].mean() > score["random"].mean()
    assert score["heuristic"].mean() > score["random"].mean()
    if task == "static_workload":
        assert score["heuristic"].mean() == pytest.approx(score["vllm-default"].mean(), abs=0.01)
    elif task != "mooncake_conversation":
        assert score["heuristic"].mean() > score["vllm-default"].mean()


@pytest.mark.parametrize("name", ["mappo", "ppo"])
def test_shipped_checkpoints_work_out_of_the_box(name):
    for task in TASKS:
        rec = run_episode(make_policy(name), task, 1_000_000, episode_windows=10)
        assert 0.0 <= rec["score"] < 1.0


# ---------------------------------------------------------------------------------- hostile LLM servers
def _raw_server(respond):
    """A TCP server that reads a request and answers with respond(conn) -- whatever bytes it likes."""
    import socket
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def loop():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            try:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
                while len(rest) < length:
                    rest += conn.recv(65536)
                respond(conn, head)
            except OSError:
                pass
            finally:
                conn.close()
    threading.Thread(target=loop, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.getsockname()[1]}/v1"


def _http(body: bytes, status=b"200 OK", length=None):
    n = len(body) if length is None else length
    return b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(n).encode() + \
        b"\r\n\r\n" + body


def _completion(content: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()


def _trickle(conn, head):
    for b in _http(_completion(json.dumps(GOOD))):
        conn.sendall(bytes([b]))
        time.sleep(0.25)


HOSTILE = {
    "400-digit knob": lambda c, h: c.sendall(_http(_completion(json.dumps(GOOD).replace('"kv_budget_fraction": 0.5',
                                                                                   '"kv_budget_fraction": ' + "9" * 400)))),
    "5000-digit knob": lambda c, h: c.sendall(_http(_completion(json.dumps(GOOD).replace('"batch_cap": 64',
                                                                                    '"batch_cap": ' + "7" * 5000)))),
    "5000-digit body": lambda c, h: c.sendall(_http(b'{"choices": ' + b"7" * 5000 + b"}")),
    "non-UTF-8 body": lambda c, h: c.sendall(_http(b'{"choices": "\xff\xfe\xfa"}')),
    "short body": lambda c, h: c.sendall(_http(_completion(json.dumps(GOOD)), length=100000)),
    "garbage status": lambda c, h: c.sendall(b"HELLO THERE\r\n\r\n"),
    "huge body": lambda c, h: c.sendall(_http(b" " * (2 << 20))),
    "trickle": _trickle,
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_llm_hostile_server_is_a_counted_fallback_within_the_deadline(case):
    srv, url = _raw_server(HOSTILE[case])
    try:
        policy = LLMPolicy(base_url=url, model="m", timeout_s=1.0)
        t0 = time.monotonic()
        rec = run_episode(policy, "static_workload", 1_000_000, episode_windows=2)
        took = time.monotonic() - t0
    finally:
        srv.close()
    assert rec["policy.fallbacks"] == 2, (case, policy.last_error)
    assert took < 2 * 1.0 + 1.5  # at most the deadline per window (plus the simulation)
    if case == "trickle":
        assert rec["policy.deadlines"] >= 2 and "deadline" in policy.last_error


def test_llm_api_key_only_from_env_or_file_and_never_echoed(tmp_path, monkeypatch):
    key = "sk-secret-0123456789"
    echo = lambda c, h: c.sendall(_http(b"denied: " + re.search(rb"Authorization: [^\r]*", h).group(0),  # noqa: E731
                                        status=b"401 Unauthorized"))
    srv, url = _raw_server(echo)
    keyfile = tmp_path / "key"
    keyfile.write_text(key + "\n")
    monkeypatch.delenv("IGYM_LLM_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    try:
        policy = LLMPolicy(base_url=url, model="m", api_key_file=str(keyfile), timeout_s=2.0)
        rec = run_episode(policy, "static_workload", 1_000_000, episode_windows=1)
    finally:
        srv.close()
    assert rec["policy.fallbacks"] == 1 and "401" in policy.last_error and "***" in policy.last_error
    assert key not in policy.last_error and key not in repr(policy) and key not in json.dumps(rec)
    with pytest.raises(TypeError):
        LLMPolicy(base_url=url, model="m", api_key=key)  # no way to pass the key itself
    with pytest.raises(ValueError, match="no such file"):
        LLMPolicy(base_url=url, model="m", api_key_file=str(tmp_path / "missing"))


def test_checkpoint_with_nan_weights_or_optimizer_state_is_refused_by_name(tmp_path):
    actor = SharedActor()
    path = save_checkpoint(tmp_path / "ok.pt", algo="mappo", task="bursty_workload", args={"hidden": 64},
                           modules={"actor": actor}, step=1)
    blob = load_checkpoint(path, algos=("mappo",))
    name = next(iter(blob["state_dicts"]["actor"]))
    bad = {**blob, "state_dicts": {"actor": {**blob["state_dicts"]["actor"],
                                             name: torch.full_like(blob["state_dicts"]["actor"][name], float("nan"))}}}
    torch.save(bad, tmp_path / "nan_weights.pt")
    with pytest.raises(ValueError, match=f"nan_weights.pt holds non-finite values .* in state_dicts.actor.{name}"):
        load_checkpoint(tmp_path / "nan_weights.pt", algos=("mappo",))
    torch.save({**blob, "optimizer": {"state": {0: {"exp_avg": torch.tensor([float("nan")])}}, "param_groups": []}},
               tmp_path / "nan_opt.pt")
    with pytest.raises(ValueError, match="nan_opt.pt holds non-finite values .* in optimizer"):
        load_checkpoint(tmp_path / "nan_opt.pt", algos=("mappo",))
