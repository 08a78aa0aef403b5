"""The agent set is data: an env with another team is built from a table, without editing any env
module, and serves exactly what the standard team would serve with the same knobs."""

import dataclasses

import numpy as np
import pytest

from igym_marl import serving_v0
from igym_marl.envs import AGENTS, knobs_to_actions
from igym_marl.envs.featurespec import Feature
from igym_marl.envs.features import N_SHARED
from igym_marl.envs.team import STANDARD, AgentSpec, Team
from igym_marl.sim import VLLM_DEFAULT, Knobs

EPISODE = dict(task="bursty_workload", episode_windows=5)


def _chunk_queue(builder, m, snap, knobs):
    """The new agent's one own feature: the window's prefill-only share of iterations."""
    return [m.prefill_only_iterations / m.iterations if m.iterations else 0.0]


def _five() -> Team:
    """The standard four, with prefill_decode_split handed from the batch scheduler to a fifth agent."""
    chunker = AgentSpec("chunk_controller", ("prefill_decode_split",),
                        own=(Feature("prefill_share", "prefill-only iterations / iterations"),), measure=_chunk_queue,
                        role="whether prompts are chunked into decode iterations")
    return Team((STANDARD.spec("batch_scheduler").owning("batch_cap"), chunker, *STANDARD.agents[1:]))


def _knobs_sequence():
    return [Knobs(batch_cap=b, kv_budget_fraction=kv, speculation_depth=d, prefill_decode_split=s, priority_routing=p)
            for b, kv, d, s, p in ((64, 0.5, 0, False, True), (256, 1.0, 2, True, False), (16, 0.3, 1, True, True),
                                   (512, 0.9, 0, False, False), (128, 0.7, 3, True, True))]


def test_a_fifth_agent_owning_a_knob_serves_what_the_four_would():
    five = serving_v0.parallel_env(team=_five(), **EPISODE)
    four = serving_v0.parallel_env(**EPISODE)
    assert five.possible_agents == ["batch_scheduler", "chunk_controller", "kv_manager", "spec_controller",
                                    "tenant_router"]
    assert five.action_space("batch_scheduler").n == 10 and five.action_space("chunk_controller").n == 2
    assert five.observation_space("chunk_controller").shape == (N_SHARED + 1,)
    assert five.state_space.shape == (four.state_space.shape[0] + 1,)
    o5, _ = five.reset(seed=3)
    o4, _ = four.reset(seed=3)
    assert np.array_equal(o5["kv_manager"], o4["kv_manager"])
    for k in _knobs_sequence():
        a5 = {"batch_scheduler": five.team.encode("batch_scheduler", batch_cap=k.batch_cap),
              "chunk_controller": int(k.prefill_decode_split),
              **{a: v for a, v in knobs_to_actions(k).items() if a not in ("batch_scheduler",)}}
        o5, r5, _, _, i5 = five.step(a5)
        o4, r4, _, _, i4 = four.step(knobs_to_actions(k))
        assert five.knobs == k == four.knobs
        assert r5["chunk_controller"] == r4["batch_scheduler"]  # the team reward, window by window
        for a in AGENTS[1:]:  # the shared part and the unchanged agents' own parts are identical
            assert np.array_equal(o5[a], o4[a])
        m = i5["chunk_controller"]["metrics"]
        share = m.prefill_only_iterations / m.iterations if m.iterations else 0.0
        assert o5["chunk_controller"][-1] == pytest.approx(share)
    assert five.keeper.score == four.keeper.score


def test_a_subset_of_the_agents_leaves_the_others_frozen_at_the_base():
    base = dataclasses.replace(VLLM_DEFAULT, batch_cap=128, speculation_depth=1)
    team = Team((STANDARD.spec("kv_manager"), STANDARD.spec("tenant_router")), base=base)
    env = serving_v0.parallel_env(team=team, **EPISODE)
    env.reset(seed=0)
    assert env.possible_agents == ["kv_manager", "tenant_router"]
    assert team.frozen_knobs == ("batch_cap", "prefill_decode_split", "speculation_depth")
    env.step({"kv_manager": team.encode("kv_manager", kv_budget_fraction=0.4, quantization_tier="FP16"),
              "tenant_router": 1})
    assert env.knobs == dataclasses.replace(base, kv_budget_fraction=0.4, priority_routing=True)
    with pytest.raises(ValueError, match="knobs.batch_cap=64: no agent of this team owns 'batch_cap', so it stays "
                                         "at the team's base value 128"):
        env.step_knobs(dataclasses.replace(base, batch_cap=64))
    env.step_knobs(dataclasses.replace(base, kv_budget_fraction=0.45))  # between levels: allowed, as ever
    assert env.knobs.kv_budget_fraction == 0.45


@pytest.mark.parametrize("make, match", [
    (lambda: Team(()), "non-empty tuple of AgentSpec"),
    (lambda: Team((STANDARD.agents[0], STANDARD.agents[0])), "repeat a name"),
    (lambda: Team((STANDARD.agents[0], AgentSpec("other", ("batch_cap",)))),
     "knob 'batch_cap' is owned by both 'batch_scheduler' and 'other'"),
    (lambda: AgentSpec("x", ("max_tokens",)), "knob 'max_tokens' is unknown"),
    (lambda: AgentSpec("x y", ("batch_cap",)), "must be an identifier"),
    (lambda: AgentSpec("x", ("batch_cap",), own=(Feature("f", "q"),)), "own features need a measure"),
])
def test_bad_teams_are_refused_by_name(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_checkpoint_is_refused_by_another_teams_names():
    from igym_marl.agents.training.networks import check_team
    five = _five().signature()
    with pytest.raises(ValueError, match=r"agents \['chunk_controller'\] are not in this team; batch_scheduler owns "
                                         r"\['batch_cap'\] there, \['batch_cap', 'prefill_decode_split'\] here"):
        check_team(five, STANDARD.signature(), "checkpoint x.pt")
    check_team(STANDARD.signature(), STANDARD.signature(), "checkpoint x.pt")


def test_no_env_or_server_module_but_the_team_names_an_agent():
    """The agents are enumerated in team.py alone: no other module of the env or the server holds an
    agent's name as a string of its own (a dict key, a comparison), as the hard-coded shaping and
    nearest-action tables once did. Docstrings and labels that mention them in passing are text."""
    import ast
    from pathlib import Path

    import igym_marl
    root = Path(igym_marl.__file__).parent
    names = set(STANDARD.names)
    found = []
    for path in sorted((root / "envs").glob("*.py")) + sorted((root / "server").glob("*.py")):
        if path.name == "team.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.value!r}")
    assert found == []
