"""Warm start: behaviour-clone a baseline into a learner before PPO (kickstarting).

``collect`` plays the teacher (the tuned heuristic, or the global best constant) for some training
episodes and records, every window, the learner's policy and value inputs and the teacher's four
actions, and the discounted team return from that window. ``clone`` fits the actor to the
teacher's actions (cross-entropy) and the critic to the returns (when the critic predicts team
returns), so PPO starts from the teacher's behaviour with a value function that knows it. The data
stays available for an optional behaviour-cloning term during PPO (``train_marl.py --bc-coef``),
which decays to zero.
"""

from __future__ import annotations

import numpy as np
import torch


from igym_marl.agents.training.vecenv import EnvSlot

TEACHERS = EnvSlot.TEACHERS  # serving_v0's teachers; a cluster env copy names its own
BC_SEED_BASE = 900_000  # warm-start episodes: seeds 900,000 + 1,000 x seed + k, below the evaluation range


def discounted_returns(rewards: list, gamma: float) -> list:
    """The discounted return from each step of an episode to its end."""
    g, out = 0.0, []
    for r in reversed(rewards):
        g = r + gamma * g
        out.append(g)
    return out[::-1]


def collect(env_kwargs: dict, teacher: str, episodes: int, seed: int, learner, gamma: float, slot_cls=None) -> dict:
    """Teacher episodes -> {"pol_in", "val_in", "actions", "returns", "score"} arrays (one row a
    window), played on one env copy (`slot_cls`: vecenv.EnvSlot for serving_v0, the cluster's
    ClusterSlot) whose teacher's labels are the actions applied."""
    slot_cls = slot_cls or EnvSlot
    if teacher not in slot_cls.TEACHERS:
        raise ValueError(f"teacher={teacher!r} is unknown; allowed: {', '.join(slot_cls.TEACHERS)}")
    slot = slot_cls(env_kwargs, 0, 1, BC_SEED_BASE + 1000 * seed, 0, {}, "team", "previous", teacher)
    pol, val, acts, rets, scores = [], [], [], [], []
    x, state = slot.reset()
    for k in range(episodes):
        slot.auto_reset = k < episodes - 1  # the next episode starts only if it is played
        rewards, done = [], False
        while not done:
            pol.append(learner.policy_input(x, state))
            val.append(learner.value_input(x, state))
            act = slot.teacher_actions
            acts.append(act)
            x, state, r, _, done, score, _, _ = slot.step(act)
            rewards.append(r)
        rets += discounted_returns(rewards, gamma)
        scores.append(score)
    return {"pol_in": torch.as_tensor(np.stack(pol)), "val_in": torch.as_tensor(np.stack(val)),
            "actions": torch.as_tensor(np.array(acts, dtype=np.int64)),
            "returns": torch.as_tensor(np.array(rets, dtype=np.float32)), "score": float(np.mean(scores))}


def bc_loss(learner, pol_in: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor,
            smoothing: float = 0.0) -> torch.Tensor:
    """Mean negative log-likelihood of the teacher's actions over the trainable policy rows; with
    `smoothing` e, of the mixture (1 - e) x teacher + e x uniform (the cloned policy keeps some
    probability on every action, so that PPO can still explore)."""
    logp, _ = learner.logp_entropy(pol_in, actions)
    if smoothing > 0:
        uniform = torch.stack([lg.log_softmax(-1).mean(-1) for lg in learner.logits(pol_in)], -1)
        if logp.shape[-1] == 1:  # one joint row (ppo-single)
            uniform = uniform.sum(-1, keepdim=True)
        logp = (1 - smoothing) * logp + smoothing * uniform
    m = mask[: logp.shape[-1]].to(logp.dtype) * learner.row_weights
    return -(logp * m).sum(-1).mean() / m.sum().clamp(min=1.0)


def clone(learner, data: dict, mask: torch.Tensor, epochs: int, lr: float, batch: int, seed: int,
          value_targets: bool, smoothing: float = 0.0) -> dict:
    """Fit the actor to the teacher's actions and (if value_targets) the critic to its returns."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(learner.parameters(), lr=lr, eps=1e-5)
    n = data["actions"].shape[0]
    if value_targets:
        learner.vnorm.update(data["returns"])
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for k in range(0, n, batch):
            idx = perm[k:k + batch]
            loss = bc_loss(learner, data["pol_in"][idx], data["actions"][idx], mask, smoothing)
            if value_targets:
                v = learner.value(data["val_in"][idx])
                target = learner.vnorm.normalize(data["returns"][idx]).unsqueeze(-1).expand_as(v)
                loss = loss + 0.5 * ((v - target) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(learner.parameters(), 0.5)
            opt.step()
    with torch.no_grad():
        greedy, _ = learner.act(data["pol_in"], greedy=True)
        agree = (greedy == data["actions"]).float().mean(0)
    return {"teacher_score": data["score"], "windows": n, "agreement": [round(float(x), 3) for x in agree]}


__all__ = ["collect", "clone", "bc_loss", "TEACHERS", "BC_SEED_BASE", "discounted_returns"]
