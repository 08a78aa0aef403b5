"""BenchMARL's learners train on serving_v0 with BenchMARL's own configurations (its own
environment: make test-benchmarl)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("benchmarl", reason="the benchmarl extra is not installed (make test-benchmarl)")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("algorithm", ["mappo", "ippo", "masac", "qmix"])
def test_benchmarl_learners_train_and_score_a_held_out_episode(algorithm):
    r = subprocess.run([sys.executable, "-W", "ignore", str(ROOT / "examples" / "benchmarl_mappo.py"), "--algorithm",
                        algorithm, "--frames", "64", "--frames-per-batch", "32", "--episode-windows", "8"], cwd=ROOT,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    m = re.search(rf"seed 1000000: BenchMARL {algorithm} after 64 frames (\d\.\d{{4}})$", r.stdout.strip())
    assert m and 0.0 <= float(m.group(1)) <= 1.0, r.stdout


def test_the_task_hands_benchmarl_one_group_its_observations_and_masks():
    from igym_marl.agents.training.benchmarl import ServingTask
    from igym_marl.envs import AGENTS
    task = ServingTask.ADVERSARIAL_MULTITENANT.get_task(config={"episode_windows": 5})
    env = task.get_env_fun(num_envs=1, continuous_actions=False, seed=0, device="cpu")()
    assert task.group_map(env) == {"agents": list(AGENTS)} and task.max_steps(env) == 5
    assert list(task.observation_spec(env)["agents"].keys()) == ["observation"]
    assert list(task.action_mask_spec(env)["agents"].keys()) == ["action_mask"]
    assert task.supports_discrete_actions() and not task.supports_continuous_actions()
    assert task.info_spec(env) is None and task.state_spec(env) is None
