"""The four-agent ParallelEnv through SuperSuit into one Stable-Baselines3 PPO policy that all four
agents share (parameter sharing, as in PettingZoo's SB3 tutorials), then one held-out episode.

    pip install stable-baselines3 supersuit
    python examples/pettingzoo_supersuit.py [--task bursty_workload] [--timesteps 20000]

SuperSuit makes the agents look alike: ``pad_observations_v0`` pads each agent's observation to the
longest (49), ``pad_action_space_v0`` pads each Discrete action space to the largest (30), and
``agent_indicator_v0`` appends a one-hot of the agent so the shared policy knows whose turn it is.
An index past an agent's own levels is sent to that agent's level 0: that is SuperSuit's rule for
padded Discrete spaces, not the env's (the env itself refuses out-of-range indices). igym-marl's own
MAPPO masks them instead (docs/training.md). CI runs this at --timesteps 256 --episode-windows 20.
"""
from __future__ import annotations

import argparse

import supersuit as ss
from supersuit.vector.sb3_vector_wrapper import SB3VecEnvWrapper
from stable_baselines3 import PPO
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecMonitor

from igym_marl import serving_v0

EVAL_SEED = 1_000_000  # evaluation seeds (1,000,000 and up) are disjoint from training seeds


def padded(**kwargs):
    env = serving_v0.parallel_env(**kwargs)
    return ss.agent_indicator_v0(ss.pad_action_space_v0(ss.pad_observations_v0(env)))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="bursty_workload")
    ap.add_argument("--timesteps", type=int, default=20_000, help="agent steps of training (4 per window)")
    ap.add_argument("--episode-windows", type=int, default=None, help="shorter episodes (default: the task's)")
    ap.add_argument("--copies", type=int, default=2, help="env copies stepped together")
    ap.add_argument("--seed", type=int, default=0, help="training seed (0..999,999)")
    args = ap.parse_args(argv)
    kwargs = {"task": args.task, **({"episode_windows": args.episode_windows} if args.episode_windows else {})}

    venv = ss.pettingzoo_env_to_vec_env_v1(padded(**kwargs))
    venv = ss.concat_vec_envs_v1(venv, args.copies, num_cpus=0, base_class="gymnasium")
    venv.reset(seed=args.seed)  # seeds the copies; later resets continue from there
    # VecMonitor writes SB3's episode record {r, l, t} into info["episode"], where SB3 looks for it (it
    # replaces the env's own record there, the score; the evaluation below reads that one)
    venv = VecMonitor(SB3VecEnvWrapper(venv))
    set_random_seed(args.seed)  # not PPO(seed=...): SB3 would call seed() on SuperSuit's vec env, which has none
    model = PPO("MlpPolicy", venv, n_steps=max(8, min(256, args.timesteps // (4 * args.copies))), batch_size=64,
                verbose=0)
    model.learn(total_timesteps=args.timesteps)

    env = padded(**kwargs)
    obs, infos = env.reset(seed=EVAL_SEED)
    while env.agents:
        actions = {a: int(model.predict(obs[a], deterministic=True)[0]) for a in env.agents}
        obs, rewards, terms, truncs, infos = env.step(actions)
    score = infos[serving_v0.AGENTS[0]]["episode"]["score"]
    print(f"{args.task}, seed {EVAL_SEED}: shared SB3 PPO through SuperSuit after {args.timesteps} agent steps "
          f"{score:.4f}")


if __name__ == "__main__":
    main()
