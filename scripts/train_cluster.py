"""Train parameter-shared MAPPO on serving_cluster_v0 (igym_marl/agents/cluster/learner.py).

    python scripts/train_cluster.py --task cluster_diurnal --replicas 4 --steps 20000 --seed 0
    python scripts/train_cluster.py --task cluster_bursty --replicas 16 --steps 8000 --out runs/cluster-mappo/b16

The recipe is the single-replica one: warm start by behaviour cloning the tuned HPA baseline
(its knobs on every replica, least-outstanding routing, its autoscaling decisions) on
``--warm-episodes`` training episodes and ``--dagger-rounds`` rounds of DAgger, then PPO with the
team reward (``--warm-start none``:
from a uniform policy). A step is one window of ``--envs`` env copies stepped in this process;
``--steps`` counts windows over all copies. Every ``--eval-every`` steps the greedy policy plays
two validation episodes (training seeds 500,000+, never trained on); at the end it plays
``--episodes`` held-out episodes (EVAL_SEEDS). Writes ``<out>/checkpoint.pt``, ``metrics.csv``
(the curve) and ``summary.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

from igym_marl.agents.cluster.baselines import ClusterOracle, cluster_baseline, run_cluster_episode
from igym_marl.agents.cluster.learner import AGENT_TYPES, ClusterActorCritic, ClusterLearned, actor_input, agent_types
from igym_marl.agents.training.warmstart import discounted_returns
from igym_marl import serving_cluster_v0
from igym_marl.sim.cluster import ACTIVE, STARTING
from igym_marl.workloads.cluster_tasks import CLUSTER_TASK_IDS
from igym_marl.workloads.tasks import EVAL_SEEDS, TRAIN_SEEDS

VALIDATION_SEEDS = TRAIN_SEEDS[500_000:500_002]


def evaluate(model, args, seeds, path) -> list[float]:
    torch.save(checkpoint(model, args.task, args.replicas), path)
    return [run_cluster_episode(ClusterLearned(path), args.task, s, **env_kwargs(args))["score"] for s in seeds]


def env_kwargs(args) -> dict:
    kw = {"replicas": args.replicas}
    if args.episode_windows:
        kw["episode_windows"] = args.episode_windows
    return kw


def checkpoint(model, task, replicas) -> dict:
    return {"kind": "cluster-mappo", "task": task, "replicas": replicas, "hidden": model.heads[0].in_features,
            "model": model.state_dict()}


def warm_start(model, args, log) -> dict:
    """Behaviour-clone the teacher (the tuned HPA baseline, or the oracle), then DAgger: rounds of
    the learner's own greedy episodes labelled by the teacher (its memory synced to the replicas
    the learner keeps up), so that the clone learns to leave the last target, not only to repeat it."""
    if args.warm_start == "oracle":  # privileged: it sees the future traffic the learner cannot
        best = cluster_baseline(args.task, "best-constant")
        teacher = ClusterOracle(best.knobs, best.rule, best.target)
    else:
        teacher = cluster_baseline(args.task, "hpa")
    xs, ts, acts, states, rets = [], [], [], [], []
    agree = {}

    def play(k: int, learner_drives: bool):
        env = serving_cluster_v0.parallel_env(args.task, **env_kwargs(args))
        obs, _ = env.reset(seed=int(TRAIN_SEEDS[100_000 * (args.seed + 1) + k]))
        teacher.reset(env, 0)
        agents = list(env.possible_agents)
        types = agent_types(agents)
        types_t = torch.as_tensor(types)
        rewards = []
        while env.agents:
            x = actor_input(obs, agents, types)
            if learner_drives:
                up = int(np.isin(env.cluster.state, (STARTING, ACTIVE)).sum())
                if args.warm_start == "oracle":
                    teacher.cur_target = up
                else:
                    teacher.target = up
            label = teacher.act(env)
            if learner_drives:
                with torch.no_grad():
                    act = dict(zip(agents, model.greedy(torch.as_tensor(x), types_t).tolist()))
            else:
                act = label
            xs.append(x)
            ts.append(types)
            acts.append(np.array([label[a] for a in agents]))
            states.append(env.state())
            obs, rew, _, _, _ = env.step(act)
            rewards.append(rew[agents[-1]] / 100.0)
        rets.extend(discounted_returns(rewards, args.gamma))

    def fit():
        x, t = torch.as_tensor(np.concatenate(xs)), torch.as_tensor(np.concatenate(ts))
        a = torch.as_tensor(np.concatenate(acts))
        s, ret = torch.as_tensor(np.stack(states)), torch.as_tensor(np.array(rets, dtype=np.float32))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(args.warm_epochs):
            for idx in torch.randperm(x.shape[0]).split(2048):
                _, logp, _ = model.logp_entropy(x[idx], t[idx], a[idx])
                # every agent type counts the same (the one autoscaler row per window would
                # otherwise weigh 1 / (4N + 2) of the loss)
                loss = -torch.stack([logp[t[idx] == k].mean() for k in torch.unique(t[idx])]).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            for idx in torch.randperm(s.shape[0]).split(256):
                vloss = ((model.value(s[idx]) - ret[idx]) ** 2).mean()
                opt.zero_grad()
                vloss.backward()
                opt.step()
        with torch.no_grad():
            same = model.greedy(x, t) == a
        agree.update({name: float(same[t == k].float().mean()) for k, name in enumerate(AGENT_TYPES)
                      if (t == k).any()})

    n = args.warm_episodes
    for k in range(n):
        play(k, False)
    fit()
    for r in range(args.dagger_rounds):
        for k in range(max(1, n // 2)):
            play(n + r * n + k, True)
        fit()
    log(f"warm start: {n} {args.warm_start} episodes + {args.dagger_rounds} DAgger rounds, {len(states)} windows, greedy "
        "agreement " + ", ".join(f"{k} {v:.3f}" for k, v in agree.items()))
    return {"episodes": n, "dagger_rounds": args.dagger_rounds, "windows": len(states), "agreement": agree}


def train(args, log=lambda *a: print(*a, flush=True)) -> dict:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    envs = [serving_cluster_v0.parallel_env(args.task, **env_kwargs(args)) for _ in range(args.envs)]
    agents = list(envs[0].possible_agents)
    types = agent_types(agents)
    types_t = torch.as_tensor(types)
    A = len(agents)
    model = ClusterActorCritic(args.replicas, args.hidden)
    t_start = time.time()
    warm = warm_start(model, args, log) if args.warm_start != "none" and args.warm_episodes else None
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    episode = [0]

    def reset(e):
        episode[0] += 1
        return e.reset(seed=int(TRAIN_SEEDS[100_000 * args.seed + episode[0]]))[0]

    obs = [reset(e) for e in envs]
    ck = args.out / "checkpoint.pt"
    curve, steps, scores = [], 0, []
    ev = evaluate(model, args, VALIDATION_SEEDS, ck)
    curve.append({"steps": 0, "seconds": time.time() - t_start, "validation": float(np.mean(ev)), "train_score": ""})
    log(f"step 0: validation {np.mean(ev):.3f}")
    next_eval = args.eval_every
    E, T = args.envs, args.rollout
    while steps < args.steps:
        X = np.zeros((T, E, A, len(actor_input(obs[0], agents, types)[0])), dtype=np.float32)
        S = np.zeros((T + 1, E, envs[0].state_space.shape[0]), dtype=np.float32)
        ACT = np.zeros((T, E, A), dtype=np.int64)
        LOGP = np.zeros((T, E, A), dtype=np.float32)
        R = np.zeros((T, E), dtype=np.float32)
        D = np.zeros((T, E), dtype=np.float32)
        for t in range(T):
            for e, env in enumerate(envs):
                X[t, e] = actor_input(obs[e], agents, types)
                S[t, e] = env.state()
            with torch.no_grad():
                a, lp, _ = model.logp_entropy(torch.as_tensor(X[t].reshape(E * A, -1)), types_t.repeat(E))
            a, lp = a.view(E, A).numpy(), lp.view(E, A).numpy()
            ACT[t], LOGP[t] = a, lp
            for e, env in enumerate(envs):
                o, rew, _, trunc, _ = env.step(dict(zip(agents, a[e].tolist())))
                R[t, e] = rew[agents[-1]] / 100.0
                if trunc[agents[-1]]:
                    D[t, e] = 1.0
                    scores.append(env.score)
                    o = reset(env)
                obs[e] = o
        for e, env in enumerate(envs):
            S[T, e] = env.state()
        steps += T * E
        with torch.no_grad():
            V = model.value(torch.as_tensor(S)).numpy()
        adv = np.zeros((T, E), dtype=np.float32)
        last = np.zeros(E, dtype=np.float32)
        for t in reversed(range(T)):
            nonterm = 1.0 - D[t]
            delta = R[t] + args.gamma * V[t + 1] * nonterm - V[t]
            last = delta + args.gamma * args.lam * nonterm * last
            adv[t] = last
        ret = adv + V[:T]
        adv_n = (adv - adv.mean()) / (adv.std() + 1e-8)
        x = torch.as_tensor(X.reshape(T * E, A, -1))
        act_t, lp_t = torch.as_tensor(ACT.reshape(T * E, A)), torch.as_tensor(LOGP.reshape(T * E, A))
        adv_t, ret_t = torch.as_tensor(adv_n.reshape(T * E)), torch.as_tensor(ret.reshape(T * E))
        s_t = torch.as_tensor(S[:T].reshape(T * E, -1))
        for _ in range(args.epochs):
            for idx in torch.as_tensor(rng.permutation(T * E)).split(args.minibatch):
                n = idx.numel()
                _, lp, ent = model.logp_entropy(x[idx].reshape(n * A, -1), types_t.repeat(n), act_t[idx].reshape(-1))
                ratio = torch.exp(lp - lp_t[idx].reshape(-1))
                a_rows = adv_t[idx].repeat_interleave(A)
                pg = -torch.min(ratio * a_rows, ratio.clamp(1 - args.clip, 1 + args.clip) * a_rows).mean()
                vloss = ((model.value(s_t[idx]) - ret_t[idx]) ** 2).mean()
                loss = pg + 0.5 * vloss - args.ent_coef * ent.mean()
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
                opt.step()
        if steps >= next_eval or steps >= args.steps:
            next_eval += args.eval_every
            ev = evaluate(model, args, VALIDATION_SEEDS, ck)
            tr = float(np.mean(scores[-8:])) if scores else float("nan")
            curve.append({"steps": steps, "seconds": time.time() - t_start, "validation": float(np.mean(ev)),
                          "train_score": tr})
            log(f"step {steps}: validation {np.mean(ev):.3f}, training episodes {tr:.3f}, "
                f"{time.time() - t_start:.0f} s")
            with open(args.out / "metrics.csv", "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(curve[0]))
                w.writeheader()
                w.writerows(curve)
    torch.save(checkpoint(model, args.task, args.replicas), ck)
    seconds = time.time() - t_start
    held = [run_cluster_episode(ClusterLearned(ck), args.task, int(s), **env_kwargs(args))
            for s in EVAL_SEEDS[: args.episodes]]
    summary = {"task": args.task, "replicas": args.replicas, "seed": args.seed, "steps": steps,
               "train_seconds": seconds, "steps_per_s": steps / seconds, "warm_start": warm,
               "held_out": [{"seed": r["seed"], "score": r["score"], "goodput": r["goodput"], "gpu_share": r["gpu_share"]}
                            for r in held],
               "held_out_mean": float(np.mean([r["score"] for r in held])) if held else None}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    log(f"held-out mean {summary['held_out_mean']}; wrote {args.out}")
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="cluster_diurnal")
    p.add_argument("--replicas", type=int, default=4)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--envs", type=int, default=4)
    p.add_argument("--rollout", type=int, default=60)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--ent-coef", type=float, default=0.001)
    p.add_argument("--clip", type=float, default=0.2)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--minibatch", type=int, default=60)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--lam", type=float, default=0.95)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--warm-start", default="hpa",
                   help="hpa, oracle (the clairvoyant reference as a privileged teacher; slow) or none")
    p.add_argument("--warm-episodes", type=int, default=8)
    p.add_argument("--warm-epochs", type=int, default=30)
    p.add_argument("--dagger-rounds", type=int, default=3)
    p.add_argument("--eval-every", type=int, default=2_000)
    p.add_argument("--episodes", type=int, default=10, help="held-out episodes at the end")
    p.add_argument("--episode-windows", type=int, default=0, help="shorter episodes (0: the task's own)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.task not in CLUSTER_TASK_IDS:
        p.error(f"--task {args.task!r}: allowed {', '.join(CLUSTER_TASK_IDS)}")
    if not 1 <= args.replicas <= 64:
        p.error(f"--replicas {args.replicas}: allowed 1..64")
    if args.warm_start not in ("hpa", "oracle", "none"):
        p.error(f"--warm-start {args.warm_start!r}: allowed hpa, oracle, none")
    for name in ("steps", "envs", "rollout", "epochs", "minibatch", "hidden", "eval_every"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} {getattr(args, name)}: must be >= 1")
    for name in ("warm_episodes", "episodes", "dagger_rounds"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} {getattr(args, name)}: must be >= 0")
    if args.out is None:
        args.out = ROOT / "runs" / "cluster-mappo" / f"{args.task}-n{args.replicas}-s{args.seed}"
    train(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
