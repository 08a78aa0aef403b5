"""TorchRL's own multi-agent PPO (MAPPO: one actor shared by the four agents, a centralised critic)
on serving_v0, then one held-out episode with the greedy policy.

    pip install torchrl
    python examples/torchrl_mappo.py [--task bursty_workload] [--frames 24000]

Built from TorchRL's parts, as its multi-agent PPO tutorial builds it: ``PettingZooWrapper`` with
the four agents in one group (``igym_marl.agents.training.torchrl.make_env``), ``MultiAgentMLP``
actor and critic, a masked categorical policy (each agent draws only its own knob levels),
``Collector``, GAE and ``ClipPPOLoss``. CI runs it at --frames 64 --episode-windows 8;
docs/training.md reports what it reaches at a stated budget.
"""
from __future__ import annotations

import argparse

import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer, SamplerWithoutReplacement
from torchrl.modules import MaskedCategorical, MultiAgentMLP, ProbabilisticActor
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.objectives import ClipPPOLoss, ValueEstimators

from igym_marl.agents.training.torchrl import GROUP, make_env, play_episode

EVAL_SEED = 1_000_000  # evaluation seeds (1,000,000 and up) are disjoint from training seeds
OBS = (GROUP, "observation", "observations")


def build(env, hidden: int = 64):
    n_agents = len(env.group_map[GROUP])
    width = env.observation_spec[OBS].shape[-1]
    n_actions = env.full_action_spec[GROUP, "action"].space.n
    actor_net = MultiAgentMLP(n_agent_inputs=width, n_agent_outputs=n_actions, n_agents=n_agents,
                              centralised=False, share_params=True, depth=2, num_cells=hidden, activation_class=nn.Tanh)
    actor = ProbabilisticActor(
        TensorDictModule(actor_net, in_keys=[OBS], out_keys=[(GROUP, "logits")]),
        spec=env.full_action_spec[GROUP, "action"], in_keys={"logits": (GROUP, "logits"), "mask": (GROUP, "action_mask")},
        out_keys=[(GROUP, "action")], distribution_class=MaskedCategorical, return_log_prob=True,
        log_prob_key=(GROUP, "sample_log_prob"))
    critic_net = MultiAgentMLP(n_agent_inputs=width, n_agent_outputs=1, n_agents=n_agents, centralised=True,
                               share_params=True, depth=2, num_cells=hidden, activation_class=nn.Tanh)
    critic = TensorDictModule(critic_net, in_keys=[OBS], out_keys=[(GROUP, "state_value")])
    return actor, critic


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="bursty_workload")
    ap.add_argument("--frames", type=int, default=24_000, help="env steps (windows) of training")
    ap.add_argument("--frames-per-batch", type=int, default=600)
    ap.add_argument("--episode-windows", type=int, default=None, help="shorter episodes (default: the task's)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--minibatch", type=int, default=120)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--seed", type=int, default=0, help="training seed (0..999,999)")
    ap.add_argument("--eval-episodes", type=int, default=1, help="held-out episodes, seeds 1,000,000 and up")
    args = ap.parse_args(argv)
    options = {"episode_windows": args.episode_windows} if args.episode_windows else {}
    torch.manual_seed(args.seed)
    env = make_env(args.task, seed=args.seed, **options)
    actor, critic = build(env)

    per_batch = min(args.frames_per_batch, args.frames)
    collector = Collector(env, actor, frames_per_batch=per_batch, total_frames=args.frames)
    buffer = ReplayBuffer(storage=LazyTensorStorage(per_batch), sampler=SamplerWithoutReplacement(),
                          batch_size=min(args.minibatch, per_batch))
    loss = ClipPPOLoss(actor_network=actor, critic_network=critic, clip_epsilon=0.2, entropy_coeff=0.01,
                       normalize_advantage=False)
    loss.set_keys(reward=(GROUP, "reward"), action=(GROUP, "action"), sample_log_prob=(GROUP, "sample_log_prob"),
                  value=(GROUP, "state_value"), done=(GROUP, "done"), terminated=(GROUP, "terminated"))
    loss.make_value_estimator(ValueEstimators.GAE, gamma=0.99, lmbda=0.95)
    optim = torch.optim.Adam(loss.parameters(), args.lr)

    for batch in collector:
        with torch.no_grad():
            loss.value_estimator(batch, params=loss.critic_network_params, target_params=loss.target_critic_network_params)
        buffer.extend(batch.reshape(-1))
        for _ in range(args.epochs):
            for _ in range(max(1, per_batch // buffer._batch_size)):
                out = loss(buffer.sample())
                total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
                total.backward()
                nn.utils.clip_grad_norm_(loss.parameters(), 1.0)
                optim.step()
                optim.zero_grad()
        collector.update_policy_weights_()

    scores = []
    eval_env = make_env(args.task, **options)
    for k in range(args.eval_episodes):
        with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
            scores.append(play_episode(eval_env, actor, EVAL_SEED + k)["score"])
        print(f"{args.task}, seed {EVAL_SEED + k}: TorchRL MAPPO after {args.frames} frames {scores[-1]:.4f}",
              flush=True)
    if len(scores) > 1:
        print(f"mean over {len(scores)} held-out seeds: {sum(scores) / len(scores):.4f}")


if __name__ == "__main__":
    main()
