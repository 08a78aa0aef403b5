"""Stable-Baselines3's PPO on the single-agent InferenceGym env (the four agents' knobs as one
MultiDiscrete action), then one held-out episode against vLLM's default configuration.

    pip install stable-baselines3
    python examples/sb3_ppo.py [--task bursty_workload] [--timesteps 20000]

At a tiny budget (CI runs --timesteps 256 --episode-windows 20) this only shows the plumbing; what
PPO reaches at real budgets on these tasks is in docs/training.md.
"""
from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO

import igym_marl.envs  # noqa: F401  registers igym_marl/InferenceGym-v0
from igym_marl.envs import DEFAULT_ACTIONS, AGENTS

EVAL_SEED = 1_000_000  # evaluation seeds (1,000,000 and up) are disjoint from training seeds


def play(env: gym.Env, act, seed: int) -> float:
    """One whole episode; the episode's score from the last info."""
    obs, info = env.reset(seed=seed)
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(act(obs))
        done = terminated or truncated
    return float(info["episode"]["score"])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="bursty_workload")
    ap.add_argument("--timesteps", type=int, default=20_000, help="env steps (windows) of training")
    ap.add_argument("--episode-windows", type=int, default=None, help="shorter episodes (default: the task's)")
    ap.add_argument("--seed", type=int, default=0, help="training seed (0..999,999)")
    args = ap.parse_args(argv)
    kwargs = {"task": args.task, **({"episode_windows": args.episode_windows} if args.episode_windows else {})}
    env = gym.make("igym_marl/InferenceGym-v0", **kwargs)
    model = PPO("MlpPolicy", env, n_steps=min(256, args.timesteps), batch_size=64, seed=args.seed, verbose=0)
    model.learn(total_timesteps=args.timesteps)

    eval_env = gym.make("igym_marl/InferenceGym-v0", **kwargs)
    ppo = play(eval_env, lambda obs: model.predict(obs, deterministic=True)[0], EVAL_SEED)
    default = np.array([DEFAULT_ACTIONS[a] for a in AGENTS])
    base = play(eval_env, lambda obs: default, EVAL_SEED)
    print(f"{args.task}, seed {EVAL_SEED}: SB3 PPO after {args.timesteps} steps {ppo:.4f}, "
          f"vLLM's default {base:.4f}")


if __name__ == "__main__":
    main()
