"""The examples in examples/ run as documented, at tiny budgets, and print a held-out score."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_example(name: str, *args: str) -> str:
    r = subprocess.run([sys.executable, "-W", "ignore", str(ROOT / "examples" / name), *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def score(text: str) -> float:
    m = re.search(r"seed 1000000: .* (\d\.\d{4})", text)
    assert m, text
    return float(m.group(1))


@pytest.mark.parametrize("name, args", [
    ("sb3_ppo.py", ["--timesteps", "256", "--episode-windows", "20"]),
    ("pettingzoo_supersuit.py", ["--timesteps", "256", "--episode-windows", "20"]),
    ("torchrl_mappo.py", ["--frames", "64", "--episode-windows", "8"]),
])
def test_library_examples_train_and_score_a_held_out_episode(name, args):
    if name == "torchrl_mappo.py":
        pytest.importorskip("torchrl", reason="pip install torchrl (the torchrl extra)")
    assert 0.0 <= score(run_example(name, *args)) <= 1.0


def test_torchrl_env_is_one_group_of_four_with_masks_and_refuses_a_masked_action():
    pytest.importorskip("torchrl")
    import torch

    from igym_marl.agents.training.torchrl import GROUP, make_env
    from igym_marl.envs import AGENT_KNOBS, AGENTS
    env = make_env("static_workload", seed=0, episode_windows=3)
    assert env.group_map == {GROUP: list(AGENTS)}
    td = env.reset()
    mask = td[GROUP, "action_mask"]
    assert mask.shape == (4, 30) and [int(m.sum()) for m in mask] == [AGENT_KNOBS[a].n for a in AGENTS]
    td[GROUP, "action"] = torch.zeros(4, dtype=torch.long)
    td = env.step(td)
    assert torch.allclose(td["next", GROUP, "reward"], td["next", GROUP, "reward"][0])  # the team reward
    td = td["next"]
    td[GROUP, "action"] = torch.tensor([0, 0, 0, 5])  # tenant_router has 2 levels
    with pytest.raises(ValueError, match="agent 'tenant_router': action=5 is masked; allowed: 0..1"):
        env.step(td)


def test_a_torchrl_episode_on_a_seed_is_the_envs_own_episode_on_that_seed():
    pytest.importorskip("torchrl")
    import torch

    from igym_marl import serving_v0
    from igym_marl.agents.training.torchrl import GROUP, make_env, play_episode

    def zeros(td):
        td[GROUP, "action"] = torch.zeros(4, dtype=torch.long)
        return td
    env = make_env("bursty_workload", episode_windows=10)
    via_torchrl = [play_episode(env, zeros, 1_000_000)["score"] for _ in range(2)]
    penv = serving_v0.parallel_env(task="bursty_workload", episode_windows=10)
    penv.reset(seed=1_000_000)
    while penv.agents:
        *_, infos = penv.step({a: 0 for a in penv.agents})
    assert via_torchrl == [infos["batch_scheduler"]["episode"]["score"]] * 2
