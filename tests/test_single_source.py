"""Each fact lives in one place: these tests pin the copies to their source."""

import numpy as np
import pytest

from igym_marl.sim import KNOB_LEVELS, VLLM_DEFAULT, Knobs, Simulator, level_index
from igym_marl.sim.profiles import QUANT_TIERS
from igym_marl.sim.types import BATCH_CAP_RANGE, KV_BUDGET_RANGE, SPEC_DEPTH_RANGE


def test_vllm_default_is_the_knobs_defaults_everywhere():
    from igym_marl import demo
    from igym_marl.envs import DEFAULT_ACTIONS, joint_knobs
    from igym_marl.workloads import VLLM_DEFAULT as from_workloads
    from igym_marl.agents.policies.heuristic import UNTUNED, HeuristicPolicy  # noqa: F401
    assert VLLM_DEFAULT == Knobs() and from_workloads is VLLM_DEFAULT
    assert joint_knobs(DEFAULT_ACTIONS) == VLLM_DEFAULT
    assert demo.CONFIGS["A: vLLM default"] is VLLM_DEFAULT
    assert (UNTUNED.batch_start, UNTUNED.kv_calm, UNTUNED.tier) == (256, 0.9, "FP16")


def test_knob_levels_drive_actions_heuristic_llm_and_features():
    from igym_marl.agents.policies import heuristic, llm
    from igym_marl.envs import AGENT_KNOBS
    from igym_marl.envs.features import LAST_ACTION
    for owned in AGENT_KNOBS.values():
        for knob, levels in zip(owned.knobs, owned.levels):
            assert levels is KNOB_LEVELS[knob]
    assert {k: tuple(v) for k, v in llm.LEVELS.items()} == KNOB_LEVELS
    assert heuristic.BATCH_LEVELS is KNOB_LEVELS["batch_cap"] and heuristic.KV_LEVELS is KNOB_LEVELS["kv_budget_fraction"]
    assert heuristic.TIERS is KNOB_LEVELS["quantization_tier"] and KNOB_LEVELS["quantization_tier"] == tuple(QUANT_TIERS)
    for grid_name, knob in (("batch_min", "batch_cap"), ("batch_max", "batch_cap"), ("kv_calm", "kv_budget_fraction"),
                            ("kv_pressure", "kv_budget_fraction"), ("tier", "quantization_tier"),
                            ("spec_depth", "speculation_depth")):
        assert set(heuristic.HEURISTIC_GRID[grid_name]) <= set(KNOB_LEVELS[knob]), grid_name
    scales = {f.name: f.scale for f in LAST_ACTION}
    assert scales["batch_level"] == len(KNOB_LEVELS["batch_cap"]) - 1
    assert scales["kv_level"] == len(KNOB_LEVELS["kv_budget_fraction"]) - 1
    assert scales["tier"] == len(KNOB_LEVELS["quantization_tier"]) - 1
    assert scales["spec_depth"] == len(KNOB_LEVELS["speculation_depth"]) - 1


def test_levels_span_the_validated_ranges():
    for knob, (lo, hi) in (("batch_cap", BATCH_CAP_RANGE), ("kv_budget_fraction", KV_BUDGET_RANGE),
                           ("speculation_depth", SPEC_DEPTH_RANGE)):
        assert KNOB_LEVELS[knob][0] == lo and KNOB_LEVELS[knob][-1] == hi
    for knob, levels in KNOB_LEVELS.items():
        for v in levels:
            Knobs(**{**VLLM_DEFAULT.as_dict(), knob: v})  # every level is a valid knob value


@pytest.mark.parametrize("knob, value, index", [
    ("kv_budget_fraction", 0.5, 4), ("kv_budget_fraction", 1, 9), ("kv_budget_fraction", 0.55, None),
    ("kv_budget_fraction", 10 ** 400, None), ("batch_cap", 64, 6), ("batch_cap", 64.0, None),
    ("priority_routing", 1, None), ("priority_routing", True, 1), ("quantization_tier", "fp16", None)])
def test_one_level_matching_rule_for_env_and_llm(knob, value, index):
    import json
    from igym_marl.agents.policies.llm import LLMError, validate_reply
    from igym_marl.envs import AGENT_KNOBS, encode_action
    assert level_index(knob, value) == index
    agent = next(a for a, o in AGENT_KNOBS.items() if knob in o.knobs)
    others = {k: KNOB_LEVELS[k][0] for k in AGENT_KNOBS[agent].knobs if k != knob}
    reply = {**{k: v for k, v in VLLM_DEFAULT.as_dict().items()}, knob: value}
    if index is None:
        with pytest.raises(ValueError):
            encode_action(agent, **others, **{knob: value})
        with pytest.raises(LLMError):
            validate_reply(json.dumps(reply))
    else:
        encode_action(agent, **others, **{knob: value})
        assert getattr(validate_reply(json.dumps(reply)), knob) == KNOB_LEVELS[knob][index]


def test_seed_ranges_and_capacity_have_one_home():
    from igym_marl.agents.analysis import evaluate
    from igym_marl.agents.training import train as train_marl
    from igym_marl.workloads import EVAL_SEEDS, TASKS, TRAIN_SEEDS, probes
    assert probes.TRAIN_SEEDS is TRAIN_SEEDS and probes.EVAL_SEEDS is EVAL_SEEDS
    assert train_marl.EVAL_START == EVAL_SEEDS.start and TRAIN_SEEDS.stop <= EVAL_SEEDS.start
    assert probes.CAPACITY_RPS == TASKS["static_workload"].capacity_rps


def test_quality_and_cost_come_from_the_simulator():
    from igym_marl import serving_v0
    from igym_marl.envs import knobs_to_actions
    from igym_marl.sim.profiles import get_tier
    env = serving_v0.parallel_env(task="static_workload", episode_windows=6)
    env.reset(seed=0)
    int8 = Knobs(**{**VLLM_DEFAULT.as_dict(), "quantization_tier": "INT8"})
    for _ in range(6):
        _, _, _, _, infos = env.step(knobs_to_actions(int8))
        m = infos["batch_scheduler"]["metrics"]
        assert m.quality == get_tier("INT8").quality
        if m.cost_per_1k_tokens == m.cost_per_1k_tokens:
            assert infos["batch_scheduler"]["inferencegym"]["estimated_cost_per_1k"] == m.cost_per_1k_tokens
    ep = infos["batch_scheduler"]["episode"]
    assert ep["quality"] == pytest.approx(get_tier("INT8").quality)


def test_named_request_table_matches_the_episode():
    from igym_marl.workloads import get_task
    task = get_task("bursty_workload", episode_windows=12)
    sim = Simulator(task.config)
    w = task.workload(1)
    sim.reset(w, seed=1)
    for _ in range(12):
        sim.advance(task.window_s, VLLM_DEFAULT)
    req = sim.requests()
    e = sim.episode_metrics()
    assert np.array_equal(req.prompt_tokens, w.prompt_tokens) and np.array_equal(req.arrival_s, w.arrival_s)
    assert int((req.slo == 1).sum()) == e.slo_met and int((req.status == 3).sum()) == e.finished
    done = req.status == 3
    assert np.all(req.finish_s[done] >= req.first_token_s[done]) and np.all(req.ttft_s[done] >= 0)


def test_fidelity_doc_tables_match_the_profiles():
    """docs/fidelity.md's constants tables are copies of profiles.py: pin them."""
    import re
    from pathlib import Path
    from igym_marl.sim.profiles import ALL_REDUCE, ENGINES, GPU_EFFICIENCY
    doc = (Path(__file__).resolve().parents[1] / "docs" / "fidelity.md").read_text()
    for gpu, e in GPU_EFFICIENCY.items():
        row = f"| {gpu} | {e.linear_mfu:.3f} | {e.hbm_efficiency:.3f} | {e.knee_power} | " \
              f"{e.layer_overhead_s * 1e6:.1f} us | {e.attn_mfu:.3g} |"
        assert row in doc, row
    for gpu in ("a100-80gb", "h100-80gb"):
        for w, f in ALL_REDUCE[gpu].items():
            row = f"| {gpu} | {w} | {f.latency_s * 1e6:.1f} us | {f.bytes_per_s / 1e9:.0f} GB/s |"
            assert row in doc, row
    def ms(x):
        return "0" if x == 0 else f"{x * 1e3:.3g} ms"

    for name, e in ENGINES.items():
        m = re.search(rf"^\| `{re.escape(name)}`[^|]*\| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|",
                      doc, re.M)
        assert m, f"docs/fidelity.md has no engine row for {name}"
        cells = [c.replace(" (held)", "").strip() for c in m.groups()]
        car = "none (NCCL)" if e.custom_all_reduce_s is None else f"{e.custom_all_reduce_s * 1e6:.3g} us"
        assert cells == [ms(e.iter_overhead_s), ms(e.tp_overhead_s), ms(e.seq_overhead_s), ms(e.api_overhead_s),
                         car, f"{e.layer_overhead_scale:g}"], (name, cells)
