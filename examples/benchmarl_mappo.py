"""BenchMARL's learners on serving_v0, with BenchMARL's own configurations, then one held-out
episode with the greedy policy.

    pip install 'benchmarl==1.5.2' 'torch==2.13.0'   # its own environment: make test-benchmarl builds one
    python examples/benchmarl_mappo.py [--task bursty_workload] [--algorithm mappo] [--frames 24000]

The task is igym_marl.agents.training.benchmarl.ServingTask; the algorithm's and the MLP models'
settings are BenchMARL's defaults (its yaml files), the budget and batch sizes are set here. CI
runs --frames 64 --episode-windows 8 for mappo and qmix.
"""
from __future__ import annotations

import argparse
import tempfile

import torch
from benchmarl.algorithms import IppoConfig, MappoConfig, MasacConfig, QmixConfig
from benchmarl.experiment import Experiment, ExperimentConfig
from benchmarl.models.mlp import MlpConfig
from torchrl.envs.utils import ExplorationType, set_exploration_type

from igym_marl.agents.training.benchmarl import ServingTask
from igym_marl.agents.training.torchrl import make_env, play_episode

EVAL_SEED = 1_000_000  # evaluation seeds (1,000,000 and up) are disjoint from training seeds
ALGORITHMS = {"mappo": MappoConfig, "ippo": IppoConfig, "masac": MasacConfig, "qmix": QmixConfig}


def experiment_config(frames: int, batch: int, folder: str) -> ExperimentConfig:
    cfg = ExperimentConfig.get_from_yaml()
    cfg.sampling_device = cfg.train_device = cfg.buffer_device = "cpu"
    cfg.max_n_frames = frames
    cfg.on_policy_collected_frames_per_batch = cfg.off_policy_collected_frames_per_batch = batch
    cfg.on_policy_n_envs_per_worker = cfg.off_policy_n_envs_per_worker = 1
    cfg.on_policy_minibatch_size = cfg.off_policy_train_batch_size = min(batch, 120)
    cfg.on_policy_n_minibatch_iters = 4
    cfg.off_policy_n_optimizer_steps = max(1, batch // 120)
    cfg.off_policy_init_random_frames = 0
    cfg.loggers, cfg.create_json = [], False
    cfg.evaluation, cfg.render = False, False
    cfg.checkpoint_interval, cfg.checkpoint_at_end = 0, False
    cfg.save_folder = folder
    return cfg


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="bursty_workload", choices=[t.name.lower() for t in ServingTask])
    ap.add_argument("--algorithm", default="mappo", choices=sorted(ALGORITHMS))
    ap.add_argument("--frames", type=int, default=24_000, help="env steps (windows) of training")
    ap.add_argument("--frames-per-batch", type=int, default=600)
    ap.add_argument("--episode-windows", type=int, default=None, help="shorter episodes (default: the task's)")
    ap.add_argument("--seed", type=int, default=0, help="training seed (0..999,999)")
    ap.add_argument("--eval-episodes", type=int, default=1, help="held-out episodes, seeds 1,000,000 and up")
    args = ap.parse_args(argv)
    options = {"episode_windows": args.episode_windows} if args.episode_windows else {}
    task = ServingTask[args.task.upper()].get_task(config=options)
    experiment = Experiment(task=task, algorithm_config=ALGORITHMS[args.algorithm].get_from_yaml(),
                            model_config=MlpConfig.get_from_yaml(), critic_model_config=MlpConfig.get_from_yaml(),
                            seed=args.seed, config=experiment_config(args.frames, min(args.frames_per_batch, args.frames),
                                                                     tempfile.mkdtemp(prefix="benchmarl-")))
    experiment.run()

    env = make_env(args.task, **options)
    scores = []
    for k in range(args.eval_episodes):
        with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
            scores.append(play_episode(env, experiment.policy, EVAL_SEED + k)["score"])
        print(f"{args.task}, seed {EVAL_SEED + k}: BenchMARL {args.algorithm} after {experiment.total_frames} frames "
              f"{scores[-1]:.4f}", flush=True)
    if len(scores) > 1:
        print(f"mean over {len(scores)} held-out seeds: {sum(scores) / len(scores):.4f}")


if __name__ == "__main__":
    main()
