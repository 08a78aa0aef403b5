"""Train policies for igym-marl: parameter-shared MAPPO, IPPO, single-agent PPO, and ablations.

    python train_marl.py --task adversarial_multitenant --steps 120000 --seed 0            # MAPPO
    python train_marl.py --algo ippo --task bursty_workload --steps 80000
    python train_marl.py --algo ppo-single --task static_workload --steps 50000
    python train_marl.py --task bursty_workload --freeze kv_manager=heuristic --freeze spec_controller=constant:0
    python train_marl.py --ablation --task adversarial_multitenant --steps 60000         # the ablation table
    python train_marl.py --quick                                                         # a few minutes
    python train_marl.py --resume --out runs/adversarial_multitenant-mappo-s0             # continue a run

A "step" is one environment window (all four agents act once). One PPO core serves three uses:

* ``mappo``: one actor shared by the four agents (padded observation + one-hot agent id, one
  action head per agent), a centralized critic on ``env.state()``, team advantages;
* ``ippo``: the same actor, decentralized critics on each agent's own observation (+ id);
* ``ppo-single``: PPO on the single-agent wrapper's view (global state -> the four actions).

Training episodes use seeds 0..999,999 (distinct for every env copy and episode); periodic
evaluation uses held-out seeds from 1,000,000. Outputs in the run folder: ``checkpoint.pt``
(atomic, every --checkpoint-every steps and at the end; carries the env version, task, layout and
arguments), ``metrics.csv`` and TensorBoard events with stable metric names
(``train/episode_score``, ``train/episode_return``, ``eval/score``, ``loss/policy``,
``loss/value``, ``loss/entropy``, ``time/steps_per_s``, ...), and ``eval.csv``.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from agents import make_policy
from agents.networks import (MAX_OBS, N_AGENTS, Critic, SharedActor, SingleActorCritic, actor_inputs, greedy_multi,
                             greedy_single, load_checkpoint, save_checkpoint)
from igym_marl import serving_v0
from igym_marl.envs import AGENTS, DEFAULT_ACTIONS, SPECS, encode_action
from igym_marl.envs.features import STATE_DIM
from igym_marl.workloads import get_task

ALGOS = ("mappo", "ippo", "ppo-single")
EVAL_START = 1_000_000


@dataclass
class Args:
    task: str = "adversarial_multitenant"
    """task id (static_workload, bursty_workload, adversarial_multitenant or an alias)"""
    algo: str = "mappo"
    """mappo (shared actor, centralized critic), ippo (decentralized critics), ppo-single"""
    steps: int = 120_000
    """environment steps (windows) to train for, summed over env copies (rounded up to whole rollouts)"""
    seed: int = 0
    """training seed: network init, sampling, and the block of training episode seeds"""
    num_envs: int = 8
    """env copies stepped together (each its own episode seeds)"""
    rollout: int = 100
    """steps per env copy between updates"""
    lr: float = 1e-3
    """Adam learning rate (linearly annealed to 0)"""
    gamma: float = 0.99
    """discount"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    epochs: int = 5
    """PPO epochs per update"""
    minibatches: int = 4
    """minibatches per epoch"""
    clip: float = 0.2
    """PPO clip range"""
    ent_coef: float = 0.01
    """entropy bonus"""
    vf_coef: float = 0.5
    """value loss weight"""
    max_grad_norm: float = 0.5
    """gradient clipping"""
    hidden: int = 64
    """hidden units of the MLPs"""
    value_norm: bool = True
    """normalize value targets with running statistics (MAPPO's value normalization)"""
    default_bias: float = 3.0
    """initial logit bonus of each agent's vLLM-default action (0 = uniform initial policy)"""
    freeze: list = field(default_factory=list)
    """AGENT=POLICY: hold an agent fixed (heuristic, vllm-default, constant:INDEX or constant:KNOB=V,...)"""
    checkpoint_every: int = 20_000
    """steps between checkpoints"""
    eval_every: int = 20_000
    """steps between evaluations on held-out seeds (0 = only at the end)"""
    eval_episodes: int = 5
    """held-out episodes per evaluation"""
    out: str = ""
    """run folder (default runs/<task>-<algo>-s<seed>)"""
    resume: bool = False
    """continue the run in --out from its checkpoint"""
    threads: int = 1
    """torch threads"""
    progress: bool = True
    """show a progress bar"""
    tensorboard: bool = True
    """write TensorBoard events"""


def parse_args(argv=None) -> Args:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    docs = _field_docs()
    for f in dataclasses.fields(Args):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        name = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            ap.add_argument(name, action=argparse.BooleanOptionalAction, default=default, help=docs.get(f.name, ""))
        elif f.name == "freeze":
            ap.add_argument(name, action="append", default=[], metavar="AGENT=POLICY", help=docs.get(f.name, ""))
        else:
            typ = {"int": int, "float": float, "str": str}.get(str(f.type), type(default))
            ap.add_argument(name, type=typ, default=default, help=f"{docs.get(f.name, '')} (default {default})")
    ap.add_argument("--ablation", action="store_true", help="run the per-component ablation study and write its table")
    ap.add_argument("--ablation-seeds", type=int, default=1, help="training seeds per ablation variant")
    ap.add_argument("--quick", action="store_true", help="a short MAPPO run on bursty_workload compared with the "
                                                         "baselines (what `make demo` runs)")
    ns = ap.parse_args(argv)
    extra = {k: getattr(ns, k) for k in ("ablation", "ablation_seeds", "quick")}
    args = Args(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(Args)})
    validate(args, ap)
    return args, extra


def _field_docs() -> dict:
    """The docstring under each Args field (the --help text)."""
    import ast
    import inspect
    tree = ast.parse(inspect.getsource(Args))
    body = tree.body[0].body
    out = {}
    for a, b in zip(body, body[1:]):
        if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant):
            out[a.target.id] = b.value.value
    return out


def validate(args: Args, ap) -> None:
    if args.algo not in ALGOS:
        ap.error(f"--algo {args.algo!r}: allowed {', '.join(ALGOS)}")
    try:
        args.task = get_task(args.task).id
    except ValueError as e:
        ap.error(str(e))
    for name, lo in (("steps", 1), ("num_envs", 1), ("rollout", 2), ("epochs", 1), ("minibatches", 1), ("hidden", 4),
                     ("checkpoint_every", 1), ("eval_episodes", 1), ("threads", 1)):
        if getattr(args, name) < lo:
            ap.error(f"--{name.replace('_', '-')} {getattr(args, name)}: must be >= {lo}")
    for name in ("lr", "gamma", "gae_lambda", "clip", "max_grad_norm"):
        if not getattr(args, name) > 0:
            ap.error(f"--{name.replace('_', '-')} {getattr(args, name)}: must be > 0")
    if args.algo == "ppo-single" and args.freeze:
        ap.error("--freeze applies to the multi-agent algorithms (mappo, ippo)")
    try:
        parse_freeze(args.freeze)
    except ValueError as e:
        ap.error(str(e))
    if not args.out:
        args.out = f"runs/{args.task}-{args.algo}-s{args.seed}"


# ---------------------------------------------------------------------------------- frozen agents
class FrozenAgent:
    """Supplies one agent's action from a fixed rule (the heuristic's component, or a constant)."""

    def __init__(self, agent: str, spec: str, task):
        self.agent, self.spec = agent, spec
        if spec == "heuristic":
            self.policy = make_policy("heuristic")
        elif spec == "vllm-default":
            self.index = DEFAULT_ACTIONS[agent]
            self.policy = None
        elif spec.startswith("constant:"):
            arg = spec.split(":", 1)[1]
            if "=" in arg:
                values = {}
                for part in arg.split(","):
                    k, v = part.split("=", 1)
                    values[k.strip()] = _parse_value(v.strip())
                self.index = encode_action(agent, **values)
            else:
                self.index = int(arg)
                if not 0 <= self.index < SPECS[agent].n:
                    raise ValueError(f"--freeze {agent}={spec}: index {self.index} out of range 0..{SPECS[agent].n - 1}")
            self.policy = None
        else:
            raise ValueError(f"--freeze {agent}={spec}: allowed policies heuristic, vllm-default, constant:INDEX, "
                             f"constant:KNOB=VALUE,...")
        self.task = task

    def reset(self, seed):
        if self.policy is not None:
            self.policy.reset(self.task, seed)

    def act(self, obs, infos, state):
        if self.policy is None:
            return self.index
        return self.policy.act(obs, infos, state)[self.agent]


def _parse_value(v: str):
    low = v.lower()
    if low in ("true", "on"):
        return True
    if low in ("false", "off"):
        return False
    if v.upper() in ("FP16", "INT8", "INT4"):
        return v.upper()
    return float(v) if "." in v else int(v)


def parse_freeze(items) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--freeze {item!r}: expected AGENT=POLICY")
        agent, spec = item.split("=", 1)
        if agent not in AGENTS:
            raise ValueError(f"--freeze {item!r}: unknown agent {agent!r}; agents: {', '.join(AGENTS)}")
        FrozenAgent(agent, spec, None)  # validates the spec
        out[agent] = spec
    return out


# ---------------------------------------------------------------------------------- value normalization
class RunningNorm(nn.Module):
    """Running mean/variance of value targets (stored as buffers, so checkpoints carry them)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("var", torch.ones(()))
        self.register_buffer("count", torch.tensor(1e-4))

    def update(self, x: torch.Tensor) -> None:
        b_mean, b_var, b_n = x.mean(), x.var(unbiased=False), x.numel()
        delta = b_mean - self.mean
        tot = self.count + b_n
        self.mean += delta * b_n / tot
        self.var = (self.var * self.count + b_var * b_n + delta ** 2 * self.count * b_n / tot) / tot
        self.count = tot

    def normalize(self, x):
        return (x - self.mean) / torch.sqrt(self.var + 1e-8)

    def denormalize(self, x):
        return x * torch.sqrt(self.var + 1e-8) + self.mean


# ---------------------------------------------------------------------------------- the learner
class Learner(nn.Module):
    """Actor(s) and critic for one algorithm, with a common interface for rollouts and updates."""

    def __init__(self, algo: str, hidden: int):
        super().__init__()
        self.algo = algo
        if algo == "ppo-single":
            self.model = SingleActorCritic(hidden)
        else:
            self.actor = SharedActor(hidden)
            self.critic = Critic(STATE_DIM if algo == "mappo" else MAX_OBS + N_AGENTS, hidden)
        self.vnorm = RunningNorm()

    def bias_towards(self, actions: dict, bonus: float) -> None:
        """Start near a known-sane configuration: add `bonus` to each head's bias at `actions`."""
        heads = self.model.heads if self.algo == "ppo-single" else self.actor.heads
        with torch.no_grad():
            for i, a in enumerate(AGENTS):
                heads[i].bias[actions[a]] += bonus

    def modules_to_save(self) -> dict:
        if self.algo == "ppo-single":
            return {"model": self.model, "vnorm": self.vnorm}
        return {"actor": self.actor, "critic": self.critic, "vnorm": self.vnorm}

    def dists(self, x: torch.Tensor, agent_idx: torch.Tensor) -> list:
        """x: actor inputs; agent_idx: which head each row uses (multi-agent). Returns per-head
        (rows, Categorical) groups."""
        out = []
        for i in range(N_AGENTS):
            rows = (agent_idx == i).nonzero(as_tuple=True)[0]
            if rows.numel():
                out.append((rows, Categorical(logits=self.actor.logits(x[rows], i))))
        return out

    def value_raw(self, v_in: torch.Tensor) -> torch.Tensor:
        v = self.model.value(v_in) if self.algo == "ppo-single" else self.critic(v_in)
        return v


# ---------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(learner: Learner, task_id: str, episodes: int, frozen_specs: dict[str, str]) -> list[float]:
    scores = []
    task = get_task(task_id)
    for k in range(episodes):
        seed = EVAL_START + k
        env = serving_v0.parallel_env(task=task_id)
        obs, infos = env.reset(seed=seed)
        frozen = {a: FrozenAgent(a, s, task) for a, s in frozen_specs.items()}
        for f in frozen.values():
            f.reset(seed)
        while env.agents:
            acts = greedy_actions(learner, obs, env.state())
            for a, f in frozen.items():
                acts[a] = f.act(obs, infos, env.state())
            obs, _, _, _, infos = env.step(acts)
        scores.append(env.score)
    return scores


def greedy_actions(learner: Learner, obs: dict, state) -> dict:
    if learner.algo == "ppo-single":
        return greedy_single(learner.model, state)
    return greedy_multi(learner.actor, obs)


# ---------------------------------------------------------------------------------- training
def train(args: Args) -> dict:
    torch.set_num_threads(args.threads)
    run = Path(args.out)
    run.mkdir(parents=True, exist_ok=True)
    ck_path = run / "checkpoint.pt"
    frozen_specs = parse_freeze(args.freeze)
    task = get_task(args.task)
    torch.manual_seed(args.seed)  # before the networks are initialised
    learner = Learner(args.algo, args.hidden)
    learner.bias_towards(DEFAULT_ACTIONS, args.default_bias)
    opt = torch.optim.Adam(learner.parameters(), lr=args.lr, eps=1e-5)
    step, episodes_done, update = 0, 0, 0
    if args.resume:
        if not ck_path.exists():
            raise SystemExit(f"--resume: no checkpoint at {ck_path}")
        blob = load_checkpoint(ck_path, algos=(args.algo,), task=args.task)
        for name, module in learner.modules_to_save().items():
            module.load_state_dict(blob["state_dicts"][name])
        opt.load_state_dict(blob["optimizer"])
        step, episodes_done, update = blob["step"], blob["episodes"], blob["update"]
        torch.set_rng_state(blob["torch_rng"])
    (run / "args.json").write_text(json.dumps(dataclasses.asdict(args), indent=1))
    writer = None
    if args.tensorboard:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(run / "tb"), purge_step=step if args.resume else None)
    log_f = open(run / "metrics.csv", "a", newline="")
    log = csv.writer(log_f)
    if log_f.tell() == 0:
        log.writerow(["step", "update", "episodes", "train_episode_score", "policy_loss", "value_loss", "entropy",
                      "approx_kl", "steps_per_s", "time_sim_s", "time_net_s", "time_update_s"])
    eval_f = open(run / "eval.csv", "a", newline="")
    eval_log = csv.writer(eval_f)
    if eval_f.tell() == 0:
        eval_log.writerow(["step", "eval_score_mean", "eval_score_std", "episodes"])

    E, T = args.num_envs, args.rollout
    envs = [serving_v0.parallel_env(task=task) for _ in range(E)]
    seed_base = args.seed * 100_000
    ep_counter = episodes_done

    def next_seed():
        nonlocal ep_counter
        s = seed_base + ep_counter
        ep_counter += 1
        if s >= EVAL_START:
            raise SystemExit("ran out of training seeds for this --seed")
        return s

    def reset_env(j):
        s = next_seed()
        o, inf = envs[j].reset(seed=s)
        frz = {a: FrozenAgent(a, sp, task) for a, sp in frozen_specs.items()}
        for f in frz.values():
            f.reset(s)
        return o, inf, frz

    state_list = [reset_env(j) for j in range(E)]
    obs_list = [s[0] for s in state_list]
    info_list = [s[1] for s in state_list]
    frozen_list = [s[2] for s in state_list]
    multi = args.algo != "ppo-single"
    frozen_idx = [AGENTS.index(a) for a in frozen_specs]
    agent_idx = torch.arange(N_AGENTS).repeat(E)
    recent_scores: list[float] = []
    t_sim = t_net = t_upd = 0.0
    t_start = time.perf_counter()
    step_at_start = step
    bar = None
    if args.progress:
        from tqdm import tqdm
        bar = tqdm(total=args.steps, initial=step, desc=f"{args.algo} {args.task}", file=sys.stderr)
    next_ck = (step // args.checkpoint_every + 1) * args.checkpoint_every
    eval_period = args.eval_every or args.steps
    next_eval = (step // eval_period + 1) * eval_period
    last_eval = None

    while step < args.steps:
        # ================= rollout =================
        buf_x, buf_v_in, buf_act, buf_logp, buf_val, buf_rew, buf_done, buf_train_mask = [], [], [], [], [], [], [], []
        for _ in range(T):
            t0 = time.perf_counter()
            with torch.no_grad():
                states = torch.from_numpy(np.stack([env.state() for env in envs]))
                if multi:
                    x = actor_inputs(obs_list)
                    acts = torch.zeros(E * N_AGENTS, dtype=torch.long)
                    logp = torch.zeros(E * N_AGENTS)
                    for rows, dist in learner.dists(x, agent_idx):
                        a = dist.sample()
                        acts[rows] = a
                        logp[rows] = dist.log_prob(a)
                    v_in = states if args.algo == "mappo" else x
                    vals = learner.vnorm.denormalize(learner.value_raw(v_in)) if args.value_norm else learner.value_raw(v_in)
                else:
                    logits = learner.model.logits(states)
                    dists = [Categorical(logits=l) for l in logits]
                    a = torch.stack([d.sample() for d in dists], -1)  # [E, 4]
                    acts = a
                    logp = sum(d.log_prob(a[:, i]) for i, d in enumerate(dists))
                    x = states
                    v_in = states
                    vals = learner.vnorm.denormalize(learner.value_raw(v_in)) if args.value_norm else learner.value_raw(v_in)
            t1 = time.perf_counter()
            t_net += t1 - t0
            rewards = np.zeros(E, dtype=np.float32)
            dones = np.zeros(E, dtype=np.float32)
            train_mask = torch.ones(E * N_AGENTS if multi else E, dtype=torch.bool)
            for j, env in enumerate(envs):
                if multi:
                    act_j = {a: int(acts[j * N_AGENTS + i]) for i, a in enumerate(AGENTS)}
                    for a, f in frozen_list[j].items():
                        act_j[a] = f.act(obs_list[j], info_list[j], env.state())
                        acts[j * N_AGENTS + AGENTS.index(a)] = act_j[a]
                    for i in frozen_idx:
                        train_mask[j * N_AGENTS + i] = False
                else:
                    act_j = {a: int(acts[j, i]) for i, a in enumerate(AGENTS)}
                obs, rew, _, trunc, infos = env.step(act_j)
                rewards[j] = rew[AGENTS[0]]
                if not env.agents:
                    dones[j] = 1.0
                    recent_scores.append(env.score)
                    episodes_done += 1
                    obs, infos, frozen_list[j] = reset_env(j)
                obs_list[j], info_list[j] = obs, infos
            t_sim += time.perf_counter() - t1
            buf_x.append(x)
            buf_v_in.append(v_in)
            buf_act.append(acts.clone())
            buf_logp.append(logp)
            buf_val.append(vals)
            buf_rew.append(torch.from_numpy(rewards))
            buf_done.append(torch.from_numpy(dones))
            buf_train_mask.append(train_mask)
            step += E
            if bar is not None:
                bar.update(E)
        # ================= advantages (GAE) =================
        t2 = time.perf_counter()
        with torch.no_grad():
            states = torch.from_numpy(np.stack([env.state() for env in envs]))
            if multi:
                v_in_last = states if args.algo == "mappo" else actor_inputs(obs_list)
            else:
                v_in_last = states
            last = learner.value_raw(v_in_last)
            last = learner.vnorm.denormalize(last) if args.value_norm else last
            vals = torch.stack(buf_val)  # [T, E] (mappo, ppo-single) or [T, E*4] (ippo)
            rew = torch.stack(buf_rew)  # [T, E]
            done = torch.stack(buf_done)
            if args.algo == "ippo":
                rew = rew.repeat_interleave(N_AGENTS, dim=1)
                done = done.repeat_interleave(N_AGENTS, dim=1)
            adv = torch.zeros_like(vals)
            gae = torch.zeros_like(last)
            for t in reversed(range(T)):
                nxt = last if t == T - 1 else vals[t + 1]
                nonterminal = 1.0 - done[t]  # episodes end by truncation at a horizon visible in the obs
                delta = rew[t] + args.gamma * nxt * nonterminal - vals[t]
                gae = delta + args.gamma * args.gae_lambda * nonterminal * gae
                adv[t] = gae
            ret = adv + vals
        # ================= flatten the batch =================
        if multi:
            X = torch.cat(buf_x)  # [T*E*4, in]
            A = torch.cat(buf_act)
            LP = torch.cat(buf_logp)
            MASK = torch.cat(buf_train_mask)
            AGI = agent_idx.repeat(T)
            if args.algo == "mappo":
                ADV = adv.repeat_interleave(N_AGENTS, dim=1).reshape(-1)
                V_IN, RET = torch.cat(buf_v_in), ret.reshape(-1)  # one value per env step
            else:
                ADV = adv.reshape(-1)
                V_IN, RET = torch.cat(buf_v_in), ret.reshape(-1)
        else:
            X, A, LP = torch.cat(buf_x), torch.cat(buf_act), torch.cat(buf_logp)
            ADV, V_IN, RET = adv.reshape(-1), torch.cat(buf_v_in), ret.reshape(-1)
            MASK = torch.ones(X.shape[0], dtype=torch.bool)
        if args.value_norm:
            learner.vnorm.update(RET)
        # ================= PPO update =================
        frac = 1.0 - (step - E * T) / args.steps
        for g in opt.param_groups:
            g["lr"] = args.lr * max(frac, 0.0)
        n_pol = X.shape[0]
        n_val = V_IN.shape[0]
        stats = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0}
        n_mb = 0
        gen = torch.Generator().manual_seed(args.seed * 1_000_003 + update)
        for _ in range(args.epochs):
            perm_p = torch.randperm(n_pol, generator=gen)
            perm_v = torch.randperm(n_val, generator=gen)
            for k in range(args.minibatches):
                mb = perm_p[k * n_pol // args.minibatches:(k + 1) * n_pol // args.minibatches]
                mb = mb[MASK[mb]]
                mbv = perm_v[k * n_val // args.minibatches:(k + 1) * n_val // args.minibatches]
                if mb.numel() == 0:
                    continue
                adv_mb = ADV[mb]
                adv_mb = (adv_mb - adv_mb.mean()) / (adv_mb.std() + 1e-8) if adv_mb.numel() > 1 else adv_mb
                if multi:
                    new_lp = torch.zeros(mb.numel())
                    ent = torch.zeros(mb.numel())
                    for rows, dist in learner.dists(X[mb], AGI[mb]):
                        new_lp[rows] = dist.log_prob(A[mb][rows])
                        ent[rows] = dist.entropy()
                else:
                    logits = learner.model.logits(X[mb])
                    dists = [Categorical(logits=l) for l in logits]
                    new_lp = sum(d.log_prob(A[mb][:, i]) for i, d in enumerate(dists))
                    ent = sum(d.entropy() for d in dists)
                ratio = torch.exp(new_lp - LP[mb])
                pg = -torch.min(ratio * adv_mb, torch.clamp(ratio, 1 - args.clip, 1 + args.clip) * adv_mb).mean()
                v = learner.value_raw(V_IN[mbv])
                target = learner.vnorm.normalize(RET[mbv]) if args.value_norm else RET[mbv]
                v_loss = 0.5 * ((v - target) ** 2).mean()
                loss = pg + args.vf_coef * v_loss - args.ent_coef * ent.mean()
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(learner.parameters(), args.max_grad_norm)
                opt.step()
                with torch.no_grad():
                    stats["policy_loss"] += float(pg)
                    stats["value_loss"] += float(v_loss)
                    stats["entropy"] += float(ent.mean())
                    stats["approx_kl"] += float(((ratio - 1) - torch.log(ratio)).mean())
                n_mb += 1
        stats = {k: v / max(n_mb, 1) for k, v in stats.items()}
        t_upd += time.perf_counter() - t2
        update += 1
        # ================= logging =================
        sps = (step - step_at_start) / max(time.perf_counter() - t_start, 1e-9)
        score = float(np.mean(recent_scores[-2 * E:])) if recent_scores else float("nan")
        log.writerow([step, update, episodes_done, score, stats["policy_loss"], stats["value_loss"], stats["entropy"],
                      stats["approx_kl"], sps, t_sim, t_net, t_upd])
        log_f.flush()
        if writer is not None:
            if recent_scores:
                writer.add_scalar("train/episode_score", score, step)
                writer.add_scalar("train/episode_return", 100.0 * score, step)
            for k, v in stats.items():
                writer.add_scalar(f"loss/{k}" if k != "approx_kl" else "train/approx_kl", v, step)
            writer.add_scalar("time/steps_per_s", sps, step)
        if bar is not None:
            bar.set_postfix(score=f"{score:.3f}", upd=update)
        # ================= evaluation and checkpoints =================
        if step >= next_eval or step >= args.steps:
            learner.eval()
            last_eval = evaluate(learner, args.task, args.eval_episodes, frozen_specs)
            learner.train()
            eval_log.writerow([step, float(np.mean(last_eval)), float(np.std(last_eval)), len(last_eval)])
            eval_f.flush()
            if writer is not None:
                writer.add_scalar("eval/score", float(np.mean(last_eval)), step)
            next_eval += eval_period
        if step >= next_ck or step >= args.steps:
            save_checkpoint(ck_path, algo=args.algo, task=args.task, args=dataclasses.asdict(args),
                            modules=learner.modules_to_save(), step=step,
                            extra={"optimizer": opt.state_dict(), "episodes": episodes_done, "update": update,
                                   "torch_rng": torch.get_rng_state(), "frozen": dict(frozen_specs)})
            next_ck += args.checkpoint_every
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    log_f.close()
    eval_f.close()
    wall = time.perf_counter() - t_start
    summary = {"run": str(run), "steps": step, "episodes": episodes_done, "wall_s": wall,
               "time_sim_s": t_sim, "time_net_s": t_net, "time_update_s": t_upd,
               "eval_score": float(np.mean(last_eval)) if last_eval else None}
    (run / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


# ---------------------------------------------------------------------------------- ablation and quick
def ablation(args: Args, seeds: int) -> str:
    """Full MAPPO vs each agent frozen to the heuristic's component and to vLLM's default value."""
    variants = [("full MAPPO", [])]
    for a in AGENTS:
        variants.append((f"{a} = heuristic", [f"{a}=heuristic"]))
        variants.append((f"{a} = vllm-default", [f"{a}=vllm-default"]))
    rows = []
    for name, freeze in variants:
        scores = []
        for s in range(seeds):
            tag = name.replace(" ", "").replace("=", "-")
            a = dataclasses.replace(args, freeze=freeze, seed=args.seed + s, algo="mappo", resume=False,
                                    out=f"{args.out}/ablation/{tag}-s{args.seed + s}")
            summary = train(a)
            scores.append(summary["eval_score"])
        rows.append((name, float(np.mean(scores)), float(np.std(scores)), len(scores)))
    lines = [f"Ablation on {args.task}: {args.steps} steps per run, {seeds} training seed(s), evaluation on "
             f"{args.eval_episodes} held-out episodes", "",
             "| variant | held-out score (mean over training seeds) | std | seeds |", "|---|---|---|---|"]
    lines += [f"| {n} | {m:.3f} | {f'{sd:.3f}' if k > 1 else 'n/a'} | {k} |" for n, m, sd, k in rows]
    table = "\n".join(lines)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "ablation.md").write_text(table + "\n")
    return table


def quick() -> None:
    """What `make demo` runs: a short MAPPO training on bursty_workload, then a comparison."""
    args = Args(task="bursty_workload", steps=12_000, num_envs=8, rollout=60, eval_every=0, eval_episodes=5,
                out="runs/quick-bursty_workload-mappo", checkpoint_every=12_000)
    summary = train(args)
    print(f"\ntrained MAPPO for {summary['steps']} steps in {summary['wall_s']:.0f} s "
          f"(simulator {summary['time_sim_s']:.0f} s, network {summary['time_net_s']:.0f} s, "
          f"updates {summary['time_update_s']:.0f} s)\n")
    import evaluate as ev
    ev.main(["--agent", "random,vllm-default,best-constant,heuristic,mappo", "--task", "bursty_workload",
             "--episodes", "5", "--checkpoint", str(Path(args.out) / "checkpoint.pt"), "--no-progress"])


def main(argv=None) -> int:
    args, extra = parse_args(argv)
    if extra["quick"]:
        quick()
        return 0
    if extra["ablation"]:
        print(ablation(args, extra["ablation_seeds"]))
        return 0
    summary = train(args)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
