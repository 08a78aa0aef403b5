"""An LLM agent that operates igym-marl's serving engine over the network.

    igym-marl serve &                                   # the environment (pip install -e '.[server]')
    python examples/llm_agent_remote.py --env-url http://127.0.0.1:8000 \\
        --llm-base-url http://localhost:8001/v1 --llm-model my-model [--task adversarial_multitenant]

One episode over igym-marl's HTTP sessions (plain HTTP, standard library only). Each window the
observation goes to an OpenAI-compatible chat-completions endpoint with the LLM policy's own
prompt (igym_marl/agents/policies/llm.py: the same system prompt and observation text as ``evaluate.py --agent
llm``); a reply that is still invalid after one retry falls back to the server's heuristic for
that window. The API key, if any, comes from IGYM_LLM_API_KEY or OPENAI_API_KEY, or
--llm-api-key-file, never the command line. Prints the episode's score, recomputed by the
server's grader from the episode log.
"""
from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request

from igym_marl.agents.policies.llm import LLMPolicy, observation_text
from igym_marl.envs.features import INFERENCEGYM_FIELDS
from igym_marl.workloads import get_task


def call(base: str, method: str, path: str, body: dict | None = None, timeout_s: float = 120.0) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base.rstrip("/") + path, data=data, method=method,
                                 headers={"content-type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            text = resp.read().decode()
            return json.loads(text) if text else {}
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {path}: HTTP {e.code}: {e.read().decode()[:500]}") from None


def play(env_url: str, policy: LLMPolicy, task_id: str, seed: int, verbose: bool = False) -> dict:
    policy.reset(get_task(task_id), seed)
    s = call(env_url, "POST", "/sessions", {"task_id": task_id, "seed": seed})
    sid, resp = s["session_id"], s
    used = {"llm": 0, "fallback": 0}
    try:
        while not resp["done"]:
            o = resp["observation"]
            if o["window"] == 0:
                text = observation_text(None, [], None, 0.0)
            else:
                ig = {k: o[k] for k in INFERENCEGYM_FIELDS}
                text = observation_text(ig, o["tenants"], o["knobs"], o["window_s"])
            knobs = policy.choose(text)
            if knobs is not None:
                used["llm"] += 1
                action = knobs.as_dict()
            else:
                used["fallback"] += 1
                action = {"policy": "heuristic"}
            resp = call(env_url, "POST", f"/sessions/{sid}/step", {"action": action})
            if verbose:
                print(f"window {resp['observation']['window']}: {action} -> reward {resp['reward']:.4f}")
        graded = call(env_url, "POST", "/grader", {"session_id": sid})
    finally:
        call(env_url, "DELETE", f"/sessions/{sid}")
    return {**graded, "windows_by_llm": used["llm"], "windows_by_fallback": used["fallback"],
            "llm_calls": policy.counts["calls"], "llm_retries": policy.counts["retries"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env-url", default="http://127.0.0.1:8000", help="the igym-marl server")
    ap.add_argument("--llm-base-url", help="OpenAI-compatible base URL, e.g. http://localhost:8001/v1 "
                                           "(default: IGYM_LLM_BASE_URL)")
    ap.add_argument("--llm-model", help="model name (default: IGYM_LLM_MODEL)")
    ap.add_argument("--llm-api-key-file", help="file whose first line is the API key")
    ap.add_argument("--llm-timeout", type=float, default=30.0, help="seconds per window for the model (default 30)")
    ap.add_argument("--task", default="adversarial_multitenant")
    ap.add_argument("--seed", type=int, default=1_000_000)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    try:
        policy = LLMPolicy(base_url=args.llm_base_url, model=args.llm_model, api_key_file=args.llm_api_key_file,
                           timeout_s=args.llm_timeout)
    except ValueError as e:
        raise SystemExit(f"llm_agent_remote.py: {e}") from None
    result = play(args.env_url, policy, args.task, args.seed, args.verbose)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
