"""Conformance with PettingZoo, Gymnasium and SuperSuit, over a table of env settings."""

import pickle

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test

from igym_marl import serving_v0
from igym_marl.envs import ENV_ID, InferenceGymEnv

TASKS = ["static_workload", "bursty_workload", "adversarial_multitenant"]
SHORT = 12  # windows per episode in conformance runs


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("action_format", ["discrete", "multidiscrete"])
def test_parallel_api(task, action_format):
    env = serving_v0.parallel_env(task=task, action_format=action_format, episode_windows=SHORT)
    parallel_api_test(env, num_cycles=3 * SHORT)


@pytest.mark.parametrize("task", TASKS)
def test_parallel_seed(task):
    parallel_seed_test(lambda: serving_v0.parallel_env(task=task, episode_windows=SHORT), num_cycles=SHORT)


@pytest.mark.parametrize("task", TASKS)
def test_aec_api(task):
    api_test(serving_v0.env(task=task, episode_windows=SHORT), num_cycles=2 * SHORT)


def _episode(env, seed, policy_seed):
    rng = np.random.default_rng(policy_seed)
    obs, _ = env.reset(seed=seed)
    trace = [np.concatenate([obs[a] for a in env.possible_agents])]
    rewards = []
    while env.agents:
        acts = {a: int(rng.integers(env.action_space(a).n)) for a in env.agents}
        obs, rew, _, _, _ = env.step(acts)
        trace.append(np.concatenate([obs[a] for a in env.possible_agents]))
        rewards.append(rew["batch_scheduler"])
    return np.array(trace), np.array(rewards), env.state()


@pytest.mark.parametrize("task", TASKS)
def test_whole_episode_determinism(task):
    """Same seed, same actions: identical observations, rewards and state over a whole episode
    (PettingZoo 1.27's seed test compares only one step), in fresh env instances."""
    a = _episode(serving_v0.parallel_env(task=task, episode_windows=40), 5, 9)
    b = _episode(serving_v0.parallel_env(task=task, episode_windows=40), 5, 9)
    c = _episode(serving_v0.parallel_env(task=task, episode_windows=40), 6, 9)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_seedless_resets_continue_the_generator():
    env = serving_v0.parallel_env(task="bursty_workload", episode_windows=3)
    env.reset(seed=1)
    s1 = env.episode_seed
    env.reset()
    s2 = env.episode_seed
    env.reset(seed=1)
    env.reset()
    assert s1 == 1 and env.episode_seed == s2 != s1


@pytest.mark.parametrize("obs_mode", ["state", "original"])
@pytest.mark.parametrize("action_mode", ["multidiscrete", "original"])
def test_gymnasium_check_env(obs_mode, action_mode):
    env = InferenceGymEnv("bursty_workload", action_mode=action_mode, obs_mode=obs_mode, episode_windows=SHORT)
    check_env(env, skip_render_check=True)


def test_registered_with_gymnasium():
    env = gymnasium.make(ENV_ID, task="adversarial_multitenant", episode_windows=5)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    done = False
    steps = 0
    while not done:
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        done = term or trunc
        steps += 1
    assert steps == 5 and not term


def test_supersuit_chain_and_action_masking():
    import supersuit as ss
    env = serving_v0.parallel_env(task="adversarial_multitenant", episode_windows=50)
    env = ss.pad_observations_v0(env)
    env = ss.pad_action_space_v0(env)
    env = ss.agent_indicator_v0(env)
    assert all(env.action_space(a).n == 30 for a in env.possible_agents)
    for num_cpus in (0, 2):
        venv = ss.pettingzoo_env_to_vec_env_v1(env)
        venv = ss.concat_vec_envs_v1(venv, 2, num_cpus=num_cpus, base_class="gymnasium")
        obs, _ = venv.reset(seed=3)
        assert obs.shape[0] == 8  # 2 copies x 4 agents
        rng = np.random.default_rng(0)
        n_valid = np.array([serving_v0.AGENT_KNOBS[a].n for a in serving_v0.AGENTS] * 2)
        steps = 0
        for _ in range(150):  # three episodes: auto-reset on truncation
            acts = (rng.random(8) * n_valid).astype(np.int64)  # masked: only each agent's own valid indices
            obs, rew, term, trunc, infos = venv.step(acts)
            assert np.all(np.isfinite(obs)) and np.allclose(rew[:4], rew[0]) and np.allclose(rew[4:], rew[4])
            steps += 1
        venv.close()
        assert steps == 150


def test_pickling_mid_episode():
    env = serving_v0.parallel_env(task="bursty_workload", episode_windows=20)
    env.reset(seed=2)
    acts = {a: 0 for a in env.agents}
    for _ in range(5):
        env.step(acts)
    clone = pickle.loads(pickle.dumps(env))
    o1 = env.step(acts)
    o2 = clone.step(acts)
    for a in env.possible_agents:
        np.testing.assert_array_equal(o1[0][a], o2[0][a])
        assert o1[1][a] == o2[1][a]
    single = pickle.loads(pickle.dumps(InferenceGymEnv("static_workload", episode_windows=3)))
    single.reset(seed=0)


def test_gymnasiums_module_form_registers_and_makes_the_wrapper_in_one_step():
    """gym.make("igym_marl.envs:igym_marl/InferenceGym-v0") imports the module that registers the id
    (the README documents it), in a fresh interpreter where nothing imported igym_marl before."""
    import subprocess
    import sys
    code = ("import gymnasium as gym; env = gym.make('igym_marl.envs:igym_marl/InferenceGym-v0', "
            "task='static_workload', episode_windows=2); obs, _ = env.reset(seed=0); "
            "print(type(env.unwrapped).__name__, obs.shape)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "InferenceGymEnv"
