"""examples/llm_agent_remote.py against a live server and a fake chat-completions endpoint: the
remote agent sends the very prompts the local LLM policy sends, and scores what it scores."""

import json
import subprocess
import sys

import pytest

from igym_marl.agents.evaluation import run_episode
from igym_marl.agents.policies.llm import LLMPolicy
from tests.fakellm import GOOD, FakeLLM

from .conftest import ROOT


def test_remote_llm_agent_plays_an_episode_like_the_local_policy(live_server, llm_server, monkeypatch):
    task, seed = "static_workload", 1_000_004
    replies = [json.dumps(dict(GOOD, batch_cap=b)) for b in (32, 64, 128, 256)] * 60
    FakeLLM.script = list(replies)
    env = {"IGYM_LLM_API_KEY": "k", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "examples/llm_agent_remote.py", "--env-url", live_server.url,
                        "--llm-base-url", llm_server, "--llm-model", "m", "--task", task, "--seed", str(seed)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["windows_by_llm"] == 200 and out["windows_by_fallback"] == 0 and out["windows"] == 200
    remote = [q["body"]["messages"] for q in FakeLLM.requests]
    assert remote[0][0]["content"].startswith("You operate an LLM inference server")
    assert all(q["auth"] == "Bearer k" for q in FakeLLM.requests)

    FakeLLM.script, FakeLLM.requests = list(replies), []
    monkeypatch.setenv("IGYM_LLM_API_KEY", "k")
    local = run_episode(LLMPolicy(base_url=llm_server, model="m"), task, seed)
    assert [q["body"]["messages"] for q in FakeLLM.requests] == remote  # the same prompts, window by window
    assert out["score"] == pytest.approx(local["score"], rel=1e-12)


def test_remote_llm_agent_falls_back_to_the_servers_heuristic(live_server, llm_server):
    FakeLLM.script = ["not json", "still not json"] + [json.dumps(GOOD)] * 300
    env = {"IGYM_LLM_API_KEY": "k", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "examples/llm_agent_remote.py", "--env-url", live_server.url,
                        "--llm-base-url", llm_server, "--llm-model", "m", "--task", "bursty_workload"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["windows_by_fallback"] == 1 and out["windows_by_llm"] == 119 and out["llm_retries"] == 1
    r = subprocess.run([sys.executable, "examples/llm_agent_remote.py", "--env-url", live_server.url],
                       cwd=ROOT, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin",
                                                                                 "PYTHONPATH": str(ROOT)})
    assert r.returncode != 0 and "needs a base URL" in r.stderr
