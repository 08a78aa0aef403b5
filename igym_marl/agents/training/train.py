"""Train policies for igym-marl: parameter-shared MAPPO, IPPO, single-agent PPO, and ablations.

    python train_marl.py --task adversarial_multitenant --steps 60000 --seed 0            # the recipe
    python train_marl.py --algo ippo --task bursty_workload --steps 60000
    python train_marl.py --algo mappo --warm-start none --steps 120000                  # from scratch
    python train_marl.py --credit counterfactual --task adversarial_multitenant         # difference rewards
    python train_marl.py --task bursty_workload --freeze kv_manager=heuristic --freeze spec_controller=constant:0
    python train_marl.py --trace data/traces/azure_conv_2023_1h.csv --trace-format azure --steps 20000
    python train_marl.py --task cluster_diurnal --replicas 4 --steps 20000              # cluster MAPPO (4N + 2 agents)
    python train_marl.py --quick                                                        # what `make demo` runs
    python train_marl.py --resume --out runs/adversarial_multitenant-mappo-s0 --steps 120000

A step is one environment window (all four agents act once). The loop is the same for the three
algorithms (``igym_marl/agents/training/algos.py`` holds what differs): collect ``--rollout`` steps from each of
``--num-envs`` env copies (``igym_marl/agents/training/vecenv.py``; ``--workers`` processes step them), compute GAE
advantages, run PPO epochs over minibatches, log, evaluate, checkpoint.

* ``mappo``: one actor shared by the four agents, a centralized critic on ``env.state()``;
* ``ippo``: the same actor, a critic on each agent's own observation;
* ``ppo-single``: the single-agent wrapper's view, the global state in, four actions out.
* on a cluster task (``--task cluster_*``): MAPPO over the fleet's 4 N + 2 agents, one actor for
  all of them (``igym_marl/agents/cluster/learner.py``), warm-started from the tuned HPA.

The recipe (the defaults): a **warm start** that behaviour-clones the tuned heuristic
(``igym_marl/agents/training/warmstart.py``), then DAgger rounds that label the learner's own states with the
heuristic's actions, then PPO with a decaying behaviour-cloning term on those labels;
``--warm-start none`` starts from a uniform policy instead. ``--credit counterfactual`` gives each agent its exact
difference reward (the team reward minus what the team would have earned had that agent kept its
previous action), computed on simulator clones.

Training episodes use seeds below 1,000,000; evaluation is greedy on held-out seeds from
1,000,000. The run folder (``--out``) holds ``args.json``, ``checkpoint.pt`` (atomic), ``metrics.csv``,
``eval.csv``, ``marl_eval.json`` (the held-out evaluations in marl-eval's format), ``summary.json`` and TensorBoard events with stable tags: ``train/episode_score``,
``train/episode_return``, ``eval/score``, ``loss/policy``, ``loss/value``, ``loss/entropy``,
``loss/bc``, ``train/approx_kl``, ``time/steps_per_s``. A folder that already holds a run is
refused unless ``--resume`` (continue: task, algorithm and settings come from its ``args.json``;
only ``--steps`` may change) or ``--force`` (start clean).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from igym_marl.agents.training.algos import ALGOS, make_learner, policy_rows
from igym_marl.agents.outputs import check_output_dir
from igym_marl.agents.analysis.marl_eval import add_training_eval
from igym_marl.agents.evaluation import run_episode
from igym_marl.agents.policies.base import Policy
from igym_marl.agents.policies.frozen import FrozenAgent, parse_freeze
from igym_marl.agents.training.networks import load_checkpoint, save_checkpoint
from igym_marl.agents.training.vecenv import CREDITS, REFERENCES, EnvSlot, VecEnv, default_learner
from igym_marl.agents.training.warmstart import bc_loss, clone, collect
from igym_marl.workloads import EVAL_SEEDS, get_task
from igym_marl.workloads.cluster_tasks import CLUSTER_TASK_IDS, get_cluster_task

EVAL_START = EVAL_SEEDS.start
SEED_BLOCK = 100_000  # training episode seeds of run seed s: SEED_BLOCK x s + i
MAX_SEED = EVAL_START // SEED_BLOCK - 1
RESUMABLE = ("steps", "progress")  # what --resume may change


def opt(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class Args:
    task: str = opt("adversarial_multitenant", "task id or alias (static_workload, bursty_workload, "
                    "adversarial_multitenant, mooncake_conversation), or a cluster task (cluster_diurnal, "
                    "cluster_bursty, cluster_conversation: mappo on serving_cluster_v0); with --trace: trace")
    replicas: int = opt(0, "cluster tasks: the fleet's size N (0: the task's own)")
    episode_windows: int = opt(0, "shorter episodes of this many windows (0: the task's own)")
    trace: str = opt("", "replay this trace file as the task (BurstGPT or Azure CSV)")
    trace_format: str = opt("auto", "the trace's format: auto (from its header), burstgpt or azure")
    trace_load: float = opt(0.0, "scale the trace's rate to this multiple of the replica's measured capacity "
                            "(0: as recorded)")
    trace_windows: int = opt(0, "trace episodes of this many windows, each from a seeded random start (0: one "
                             "episode replays the whole trace)")
    algo: str = opt("mappo", "mappo (shared actor, centralized critic), ippo (a critic per agent), ppo-single")
    steps: int = opt(60_000, "environment steps (windows) to train for, over all env copies; rounded up to "
                     "whole rollouts (num_envs x rollout)")
    seed: int = opt(0, "training seed: network initialisation, sampling, and the block of training episode seeds")
    num_envs: int = opt(8, "env copies stepped together, each playing its own episodes")
    workers: int = opt(2, "processes stepping the env copies (0: in the training process)")
    rollout: int = opt(100, "steps per env copy between updates")
    lr: float = opt(3e-4, "Adam learning rate (annealed linearly to 0)")
    gamma: float = opt(0.99, "discount")
    gae_lambda: float = opt(0.95, "GAE lambda")
    epochs: int = opt(5, "PPO epochs per update")
    minibatches: int = opt(4, "minibatches per epoch")
    clip: float = opt(0.2, "PPO clip range")
    ent_coef: float = opt(0.003, "entropy bonus")
    vf_coef: float = opt(0.5, "value loss weight")
    max_grad_norm: float = opt(0.5, "gradient clipping")
    hidden: int = opt(64, "hidden units of the MLPs")
    value_norm: bool = opt(True, "normalize value targets with running statistics (MAPPO's value normalization)")
    warm_start: str = opt("auto", "behaviour-clone this baseline before PPO: heuristic, best-constant, oracle "
                          "(clairvoyant, privileged) or none; on cluster tasks hpa, oracle or none; auto: heuristic, "
                          "or hpa on a cluster task")
    warm_episodes: int = opt(16, "teacher episodes (training seeds) for the warm start")
    warm_epochs: int = opt(20, "behaviour-cloning epochs")
    dagger_rounds: int = opt(3, "after cloning the teacher's episodes: rounds of the learner's own rollouts "
                             "labelled by the teacher (DAgger), each followed by cloning again")
    bc_smoothing: float = opt(0.0, "label smoothing of the behaviour cloning: the cloned policy keeps this share "
                              "of its probability spread over all actions")
    bc_coef: float = opt(1.0, "weight of a behaviour-cloning term on the teacher's labels of the learner's own "
                         "states during PPO, at the start (0: none)")
    bc_until: float = opt(0.5, "share of the training steps over which that weight decays linearly to 0")
    credit: str = opt("team", "team (every agent gets the team reward) or counterfactual (exact difference rewards)")
    cf_reference: str = opt("previous", "counterfactual credit's reference action: previous (the agent's last "
                            "action) or teacher (the heuristic's decision)")
    freeze: list = opt(None, "AGENT=POLICY: hold an agent to a rule (heuristic, vllm-default, constant:INDEX or "
                       "constant:KNOB=VALUE+...); repeatable", action="append")
    checkpoint_every: int = opt(20_000, "steps between checkpoints")
    eval_every: int = opt(10_000, "steps between evaluations on held-out seeds (0: only at the end)")
    eval_episodes: int = opt(5, "held-out episodes per evaluation")
    out: str = opt("", "run folder (default runs/<task>-<algo>-s<seed>)")
    resume: bool = opt(False, "continue the run in --out from its checkpoint")
    force: bool = opt(False, "delete what --out holds and start clean")
    threads: int = opt(1, "torch threads")
    progress: bool = opt(True, "show a progress bar")
    tensorboard: bool = opt(True, "write TensorBoard events")

    def __post_init__(self):
        if self.freeze is None:
            self.freeze = []

    @property
    def cluster(self) -> bool:
        return self.task in CLUSTER_TASK_IDS

    @property
    def teacher(self) -> str | None:
        """The warm start's teacher (None: no warm start)."""
        if self.warm_start == "auto":
            return "hpa" if self.cluster else "heuristic"
        return None if self.warm_start == "none" else self.warm_start

    @property
    def env_kwargs(self) -> dict:
        if self.trace:
            kw = {"task": "trace", "path": self.trace, "format": self.trace_format}
            if self.trace_load:
                kw["load"] = self.trace_load
            if self.trace_windows:
                kw.update(episode_windows=self.trace_windows, random_start=True)
            return kw
        kw = {"task": self.task}
        if self.cluster and self.replicas:
            kw["replicas"] = self.replicas
        if self.episode_windows:
            kw["episode_windows"] = self.episode_windows
        return kw


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(Args):
        name = "--" + f.name.replace("_", "-")
        meta = dict(f.metadata)
        help_ = f"{meta.pop('help')} (default: {f.default if f.default is not None else 'none'})"
        if f.type in ("bool", bool):
            ap.add_argument(name, action=argparse.BooleanOptionalAction, default=f.default, help=help_)
        elif meta.get("action") == "append":
            ap.add_argument(name, action="append", default=[], metavar="AGENT=POLICY", help=help_)
        else:
            typ = {"int": int, "float": float, "str": str}[str(f.type)]
            ap.add_argument(name, type=typ, default=f.default, help=help_)
    ap.add_argument("--quick", action="store_true", help="a short MAPPO run on bursty_workload compared with the "
                                                         "baselines (what `make demo` runs)")
    return ap


def parse_args(argv=None) -> tuple[Args, dict]:
    ap = build_parser()
    ns = ap.parse_args(argv)
    args = Args(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(Args)})
    if not ns.quick:
        validate(args, ap.error)
    return args, {"quick": ns.quick}


def validate(args: Args, error) -> None:
    """Every setting checked before anything runs; `error` reports the first bad one and exits."""
    if args.algo not in ALGOS:
        error(f"--algo {args.algo!r}: allowed {', '.join(ALGOS)}")
    _validate_task(args, error)
    _validate_numbers(args, error)
    _validate_choices(args, error)


def _validate_task(args: Args, error) -> None:
    """The task, resolved once here (a trace's file is parsed here, naming a bad one)."""
    if args.episode_windows < 0 or args.replicas < 0:
        error("--episode-windows and --replicas must be >= 0 (0: the task's own)")
    if args.trace:
        if args.trace_load < 0 or args.trace_windows < 0:
            error("--trace-load and --trace-windows must be >= 0 (0: as recorded / the whole trace)")
        if args.episode_windows:
            error("--episode-windows does not apply to --trace (give --trace-windows)")
        args.trace = str(Path(args.trace).resolve())
        kw = dict(args.env_kwargs)
        try:
            get_task(kw.pop("task"), **kw)  # a bad file or option fails here, naming it, not in a worker
        except (ValueError, FileNotFoundError) as e:
            error(f"--trace {args.trace}: {e}")
        args.task = "trace"
    elif args.trace_load or args.trace_windows or args.trace_format != "auto":
        error("--trace-format, --trace-load and --trace-windows apply to --trace PATH")
    elif args.task in CLUSTER_TASK_IDS:
        try:
            args.replicas = get_cluster_task(args.task, replicas=args.replicas or None).replicas
        except ValueError as e:
            error(f"--replicas {args.replicas}: {e}")
        if args.algo != "mappo" or args.credit != "team" or args.freeze:
            error(f"--task {args.task}: cluster tasks train mappo with team credit and no frozen agents")
    else:
        if args.replicas:
            error(f"--replicas applies to cluster tasks ({', '.join(CLUSTER_TASK_IDS)})")
        try:
            args.task = get_task(args.task).id
        except ValueError as e:
            error(f"{e}; or a cluster task: {', '.join(CLUSTER_TASK_IDS)}")


def _validate_numbers(args: Args, error) -> None:
    for name, lo in (("steps", 1), ("num_envs", 1), ("workers", 0), ("rollout", 2), ("epochs", 1), ("minibatches", 1),
                     ("hidden", 4), ("checkpoint_every", 1), ("eval_episodes", 1), ("threads", 1),
                     ("warm_episodes", 1), ("warm_epochs", 0), ("dagger_rounds", 0)):
        if getattr(args, name) < lo:
            error(f"--{name.replace('_', '-')} {getattr(args, name)}: must be >= {lo}")
    for name, lo, hi, what in (("lr", 0.0, 1.0, "in (0, 1]"), ("gamma", 0.0, 1.0, "a discount in (0, 1]"),
                               ("clip", 0.0, 1.0, "in (0, 1]"), ("max_grad_norm", 0.0, 1e6, "in (0, 1e6]")):
        v = getattr(args, name)
        if not (math.isfinite(v) and lo < v <= hi):
            error(f"--{name.replace('_', '-')} {v}: must be {what}")
    if not (math.isfinite(args.gae_lambda) and 0.0 <= args.gae_lambda <= 1.0):
        error(f"--gae-lambda {args.gae_lambda}: must be in [0, 1]")
    if not 0 <= args.bc_smoothing < 1:
        error(f"--bc-smoothing {args.bc_smoothing}: must be in [0, 1)")
    for name in ("ent_coef", "vf_coef", "bc_coef"):
        v = getattr(args, name)
        if not (math.isfinite(v) and 0.0 <= v <= 1e3):
            error(f"--{name.replace('_', '-')} {v}: must be a weight in [0, 1000]")
    if not 0.0 <= args.bc_until <= 1.0:
        error(f"--bc-until {args.bc_until}: must be a share of the training steps in [0, 1]")
    if not 0 <= args.seed <= MAX_SEED:
        error(f"--seed {args.seed}: must be in 0..{MAX_SEED}: each training seed owns a block of "
              f"{SEED_BLOCK:,} training episode seeds below {EVAL_START:,}, where the evaluation seeds begin")
    samples = args.num_envs * args.rollout
    if args.minibatches > samples:
        error(f"--minibatches {args.minibatches}: more than the {samples} samples of an update (--num-envs "
              f"{args.num_envs} x --rollout {args.rollout})")


def _validate_choices(args: Args, error) -> None:
    teachers = _kind(args)[0].TEACHERS
    if args.warm_start not in (*teachers, "auto", "none"):
        error(f"--warm-start {args.warm_start!r}: allowed {', '.join(teachers)}, auto, none"
              + (" on a cluster task" if args.cluster else ""))
    if args.credit not in CREDITS:
        error(f"--credit {args.credit!r}: allowed {', '.join(CREDITS)}")
    if args.cf_reference not in REFERENCES:
        error(f"--cf-reference {args.cf_reference!r}: allowed {', '.join(REFERENCES)}")
    if args.algo == "ppo-single" and (args.freeze or args.credit != "team"):
        error("--freeze and --credit counterfactual apply to the multi-agent algorithms (mappo, ippo)")
    if args.resume and args.force:
        error("--resume continues a run and --force deletes it: give one")
    try:
        parse_freeze(args.freeze)
    except ValueError as e:
        error(str(e))
    if not args.out:
        args.out = f"runs/{args.task}-{args.algo}-s{args.seed}"
    problem = check_output_dir(args.out, "--out")
    if problem:
        error(problem)


# ---------------------------------------------------------------------------------- the run folder
class RunFolder:
    """args.json, metrics.csv, eval.csv and TensorBoard events of one run, never appended twice."""

    METRICS = ["step", "update", "episodes", "train_episode_score", "policy_loss", "value_loss", "entropy", "bc_loss",
               "approx_kl", "steps_per_s", "time_rollout_s", "time_update_s"]
    EVAL = ["step", "eval_score_mean", "eval_score_std", "episodes"]

    def __init__(self, args: Args):
        self.path = Path(args.out)
        self.ckpt = self.path / "checkpoint.pt"
        if args.force and self.path.exists():
            shutil.rmtree(self.path)
        exists = (self.path / "args.json").exists()
        if args.resume:
            if not self.ckpt.exists():
                raise SystemExit(f"--resume: no checkpoint at {self.ckpt}")
        elif exists:
            raise SystemExit(f"{self.path} already holds a run: --resume to continue it, --force to start clean, "
                             f"or another --out")
        self.path.mkdir(parents=True, exist_ok=True)

    def restore_args(self, args: Args) -> Args:
        """On --resume: the run's own settings, with only RESUMABLE fields taken from the command."""
        saved = json.loads((self.path / "args.json").read_text())
        defaults = Args()
        for f in dataclasses.fields(Args):  # a setting given on the command line must not be silently ignored
            k = f.name
            if k in RESUMABLE or k in ("resume", "out", "force") or k not in saved:
                continue
            given = getattr(args, k)
            if given != getattr(defaults, k) and given != saved[k] and not (k == "task" and args.trace):
                raise SystemExit(f"--resume continues the run with its own settings (args.json): "
                                 f"--{k.replace('_', '-')} {given!r} differs from the run's {saved[k]!r}. Drop it, "
                                 f"or start a new run (another --out, or --force); only "
                                 f"{', '.join('--' + r for r in RESUMABLE)} may change")
        new = Args(**{**saved, **{k: getattr(args, k) for k in RESUMABLE}, "resume": True, "out": args.out})
        return new

    def open_logs(self, args: Args, step: int):
        """Logs cut back to `step` (a run killed after logging past its last checkpoint repeats no step)."""
        (self.path / "args.json").write_text(json.dumps(dataclasses.asdict(args), indent=1))
        self.metrics = self._csv("metrics.csv", self.METRICS, step)
        self.eval = self._csv("eval.csv", self.EVAL, step)
        self.writer = None
        if args.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(str(self.path), purge_step=step if step else None)
            except ImportError:  # pragma: no cover
                self.writer = None

    def _csv(self, name, header, step):
        path = self.path / name
        rows = []
        if path.exists():
            rows = [r for r in csv.DictReader(open(path, newline="")) if int(r["step"]) <= step]
        f = open(path, "w", newline="")
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
        f.flush()
        return f, w

    def log(self, which: str, row: dict):
        f, w = getattr(self, which)
        w.writerow(row)
        f.flush()

    def scalar(self, tag: str, value: float, step: int):
        if self.writer is not None and value == value:
            self.writer.add_scalar(tag, value, step)

    def close(self):
        for f, _ in (self.metrics, self.eval):
            f.close()
        if self.writer is not None:
            self.writer.close()


# ---------------------------------------------------------------------------------- evaluation
class Greedy(Policy):
    """A learner's most likely actions (the frozen agents keep their rules), for any env kind."""

    name = "learner"

    def __init__(self, learner, freeze: list):
        self.learner, self.freeze = learner, freeze

    def reset(self, task, seed):
        super().reset(task, seed)
        self.frozen = {a: FrozenAgent(a, r) for a, r in parse_freeze(self.freeze).items()}
        for f in self.frozen.values():
            f.reset(task, seed)

    @torch.no_grad()
    def act(self, obs, infos, state=None):
        lr = self.learner
        x = lr.actor_input(obs)[None]
        s = np.asarray(state, dtype=np.float32)[None]
        a, _ = lr.act(torch.as_tensor(lr.policy_input(x, s)), greedy=True)
        out = dict(zip(lr.agents, a[0].tolist()))
        for ag, f in self.frozen.items():
            out[ag] = f.act(obs, infos, state)
        return out


def evaluate(learner, args: Args, episodes: int) -> list[float]:
    """Greedy held-out episodes through the one episode loop."""
    kw = dict(args.env_kwargs)
    task_id = kw.pop("task")
    if args.cluster:
        return [run_episode(Greedy(learner, []), task_id, EVAL_START + k, env_kwargs=kw)["score"]
                for k in range(episodes)]
    task = get_task(task_id, **kw)
    return [run_episode(Greedy(learner, args.freeze), task, EVAL_START + k)["score"] for k in range(episodes)]


# ---------------------------------------------------------------------------------- training
def _flat(a: torch.Tensor) -> torch.Tensor:
    """[T, E, ...] -> [T * E, ...]"""
    return a.reshape(-1, *a.shape[2:])


@dataclass
class Progress:
    """What a run carries from update to update (and a checkpoint restores)."""

    step: int = 0
    update: int = 0
    episodes: list = field(default_factory=list)  # episodes each env copy has started
    warm: dict = field(default_factory=dict)  # the warm start's report
    recent: list = field(default_factory=list)  # scores of finished training episodes
    last_eval: list | None = None
    t_roll: float = 0.0
    t_upd: float = 0.0


def _kind(args: Args):
    """(env copy class, rollout learner factory) of the task's kind: serving_v0 or the cluster."""
    if args.cluster:
        from igym_marl.agents.cluster.learner import ClusterSlot, cluster_learner
        return ClusterSlot, cluster_learner
    return EnvSlot, default_learner


def _setup(args: Args, run: RunFolder):
    """The learner, its optimizer, the frozen agents, the mask of policy rows that learn, and the
    progress so far (restored from the checkpoint on --resume)."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # before the networks are initialised
    if args.cluster:
        from igym_marl.agents.cluster.learner import ClusterMAPPO
        learner = ClusterMAPPO(args.replicas, args.hidden)
    else:
        learner = make_learner(args.algo, args.hidden, per_agent_values=args.credit == "counterfactual")
    optimizer = torch.optim.Adam(learner.parameters(), lr=args.lr, eps=1e-5)
    frozen = parse_freeze(args.freeze)
    mask = torch.tensor([a not in frozen for a in learner.agents])  # policy rows that learn
    progress = Progress(episodes=[0] * args.num_envs)
    if args.resume:
        blob = load_checkpoint(run.ckpt, algos=(args.algo,), task=args.task, cluster=args.cluster)
        for name, module in learner.modules_to_save().items():
            module.load_state_dict(blob["state_dicts"][name])
        optimizer.load_state_dict(blob["optimizer"])
        progress = Progress(step=blob["step"], update=blob["update"], episodes=blob["episodes"],
                            warm=blob.get("warm_start", {}))
        torch.set_rng_state(blob["torch_rng"])
    return learner, optimizer, frozen, mask, progress


def _warm_start(args: Args, learner, envs: VecEnv, mask: torch.Tensor) -> dict:
    """Behaviour-clone the teacher's episodes, then DAgger rounds: the learner's own states
    labelled with the teacher's actions, cloned again."""
    t0, T = time.perf_counter(), args.rollout
    data = collect(args.env_kwargs, args.teacher, args.warm_episodes, args.seed, learner, args.gamma,
                   slot_cls=_kind(args)[0])
    warm = clone(learner, data, mask, args.warm_epochs, 1e-3, 256, args.seed, value_targets=args.credit == "team",
                 smoothing=args.bc_smoothing)
    for r in range(args.dagger_rounds):
        envs.load(learner.policy_module().state_dict())
        seg = envs.rollout(T)
        pol = torch.as_tensor(learner.policy_input(seg["x"][:T], seg["state"][:T]))
        data = {**data, "pol_in": torch.cat([data["pol_in"], _flat(pol)]),
                "actions": torch.cat([data["actions"], _flat(torch.as_tensor(seg["teacher"][:T]))])}
        warm = {**clone(learner, data, mask, max(1, args.warm_epochs // 2), 1e-3, 256, args.seed + r + 1,
                        value_targets=False, smoothing=args.bc_smoothing), "teacher_score": warm["teacher_score"]}
        warm["dagger_score"] = float(np.nanmean(seg["score"])) if np.isfinite(seg["score"]).any() else None
    warm.update(seconds=round(time.perf_counter() - t0, 1), dagger_rounds=args.dagger_rounds,
                windows=int(data["actions"].shape[0]))
    return warm


def _advantages(learner, seg: dict, args: Args) -> dict:
    """A rollout segment -> the flat batch of an update: policy and value inputs, actions, their
    log-probabilities under the acting policy, GAE advantages per value head and returns."""
    T, E = args.rollout, args.num_envs
    pol_all = torch.as_tensor(learner.policy_input(seg["x"], seg["state"]))  # [T + 1, E, ...]
    val_all = torch.as_tensor(learner.value_input(seg["x"], seg["state"]))
    rewards = torch.as_tensor(seg["diff"] if args.credit == "counterfactual" else seg["reward"][..., None])
    done = torch.as_tensor(seg["done"], dtype=torch.float32)
    batch = {"pol": _flat(pol_all[:T]), "val_in": _flat(val_all[:T]),
             "act": _flat(torch.as_tensor(seg["applied"])),  # frozen agents' rules replace their samples
             "teacher": _flat(torch.as_tensor(seg["teacher"][:T]))}
    with torch.no_grad():
        batch["logp"] = learner.logp_entropy(batch["pol"], batch["act"])[0]  # the actors' behaviour: [T * E, P]
        values = learner.value(_flat(val_all))
        values = (learner.vnorm.denormalize(values) if args.value_norm else values).reshape(T + 1, E, learner.V)
        buf_val, nxt = values[:T], values[T]
        adv = torch.zeros((T, E, learner.V))
        gae = torch.zeros((E, learner.V))
        for t in reversed(range(T)):
            alive = (1.0 - done[t])[:, None]  # episodes end by truncation at a visible horizon
            delta = rewards[t] + args.gamma * nxt * alive - buf_val[t]
            gae = delta + args.gamma * args.gae_lambda * alive * gae
            adv[t] = gae
            nxt = buf_val[t]
        ret = adv + buf_val
    if args.value_norm:
        learner.vnorm.update(ret)
    batch["adv"], batch["ret"] = policy_rows(_flat(adv), learner.P), _flat(ret)
    return batch


def _ppo_update(learner, optimizer, batch: dict, args: Args, mask: torch.Tensor, gen, bc_w: float) -> dict:
    """PPO epochs over minibatches of one batch (advantages normalized per minibatch over the rows
    that learn), with the decaying behaviour-cloning term; -> mean losses and approximate KL."""
    n, P = batch["pol"].shape[0], learner.P
    row_mask = mask[:P].expand(n, P) if P > 1 else torch.ones(n, 1, dtype=torch.bool)
    stats = dict.fromkeys(("policy_loss", "value_loss", "entropy", "bc_loss", "approx_kl"), 0.0)
    n_mb = 0
    for _ in range(args.epochs):
        perm = torch.randperm(n, generator=gen)
        for k in range(args.minibatches):
            mb = perm[k * n // args.minibatches:(k + 1) * n // args.minibatches]
            m = row_mask[mb]
            a = batch["adv"][mb]
            a = (a - a[m].mean()) / (a[m].std() + 1e-8)
            new_logp, ent = learner.logp_entropy(batch["pol"][mb], batch["act"][mb])
            ratio = torch.exp(new_logp - batch["logp"][mb])
            pg = -torch.min(ratio * a, ratio.clamp(1 - args.clip, 1 + args.clip) * a)[m].mean()
            v = learner.value(batch["val_in"][mb])
            target = learner.vnorm.normalize(batch["ret"][mb]) if args.value_norm else batch["ret"][mb]
            v_loss = 0.5 * ((v - target) ** 2).mean()
            loss = pg + args.vf_coef * v_loss - args.ent_coef * ent[m].mean()
            bc = torch.zeros(())
            if bc_w > 0:  # the teacher's labels of these very states
                bc = bc_loss(learner, batch["pol"][mb], batch["teacher"][mb], mask, args.bc_smoothing)
                loss = loss + bc_w * bc
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(learner.parameters(), args.max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                for key, x in (("policy_loss", pg), ("value_loss", v_loss), ("entropy", ent[m].mean()),
                               ("bc_loss", bc), ("approx_kl", ((ratio - 1) - torch.log(ratio))[m].mean())):
                    stats[key] += float(x)
            n_mb += 1
    return {k: v / n_mb for k, v in stats.items()}


def _log(run: RunFolder, p: Progress, stats: dict, sps: float, E: int) -> float:
    """One update's row of metrics.csv and its TensorBoard scalars; -> the recent training score."""
    score = float(np.mean(p.recent[-2 * E:])) if p.recent else float("nan")
    run.log("metrics", {"step": p.step, "update": p.update, "episodes": len(p.recent), "train_episode_score": score,
                        **stats, "steps_per_s": sps, "time_rollout_s": p.t_roll, "time_update_s": p.t_upd})
    run.scalar("train/episode_score", score, p.step)
    run.scalar("train/episode_return", 100.0 * score, p.step)
    for k in ("policy_loss", "value_loss", "entropy", "bc_loss"):
        run.scalar(f"loss/{k.replace('_loss', '')}", stats[k], p.step)
    run.scalar("train/approx_kl", stats["approx_kl"], p.step)
    run.scalar("time/steps_per_s", sps, p.step)
    return score


def _save(run: RunFolder, args: Args, learner, optimizer, envs: VecEnv, p: Progress, frozen: dict) -> None:
    save_checkpoint(run.ckpt, algo=args.algo, task=args.task, args=dataclasses.asdict(args),
                    modules=learner.modules_to_save(), step=p.step, layout_=learner.layout(),
                    extra={"optimizer": optimizer.state_dict(), "episodes": envs.episodes(), "update": p.update,
                           "torch_rng": torch.get_rng_state(), "frozen": dict(frozen), "warm_start": p.warm})


def train(args: Args) -> dict:
    """Setup, then updates of rollout -> advantages -> PPO update -> log, evaluate and checkpoint."""
    # ================= setup =================
    run = RunFolder(args)
    if args.resume:
        args = run.restore_args(args)
    learner, optimizer, frozen, mask, p = _setup(args, run)
    E, T = args.num_envs, args.rollout
    total = math.ceil(args.steps / (E * T)) * E * T
    run.open_logs(args, p.step)
    policy = {"algo": args.algo, "hidden": args.hidden, "replicas": args.replicas if args.cluster else None}
    slot_cls, learner_fn = _kind(args)
    envs = VecEnv(args.env_kwargs, E, seed_base=SEED_BLOCK * args.seed, policy=policy, seed=args.seed,
                  workers=args.workers, frozen=frozen, credit=args.credit, reference=args.cf_reference,
                  teacher=args.teacher, episodes_done=p.episodes, slot_cls=slot_cls, learner_fn=learner_fn)
    envs.reset()
    if args.teacher and not args.resume:
        p.warm = _warm_start(args, learner, envs, mask)
    gen = torch.Generator().manual_seed(args.seed * 1_000_003 + p.update)
    t_start, step_at_start = time.perf_counter(), p.step
    bar = _progress_bar(args, total, p.step)
    eval_period = args.eval_every or total
    next_eval = (p.step // eval_period + 1) * eval_period
    next_ck = (p.step // args.checkpoint_every + 1) * args.checkpoint_every
    try:
        while p.step < total:
            # ================= rollout: every env copy plays T steps with the current actor =================
            t0 = time.perf_counter()
            envs.load(learner.policy_module().state_dict())
            seg = envs.rollout(T)
            p.recent += [float(x) for x in seg["score"][seg["done"]]]
            p.step += E * T
            p.t_roll += time.perf_counter() - t0
            # ================= advantages (GAE) and the PPO update =================
            t0 = time.perf_counter()
            batch = _advantages(learner, seg, args)
            for g in optimizer.param_groups:
                g["lr"] = args.lr * max(0.0, 1.0 - (p.step - E * T) / total)
            bc_w = args.bc_coef * max(0.0, 1.0 - p.step / (args.bc_until * total)) \
                if args.teacher and args.bc_until > 0 else 0.0
            stats = _ppo_update(learner, optimizer, batch, args, mask, gen, bc_w)
            p.update += 1
            p.t_upd += time.perf_counter() - t0
            # ================= logging, evaluation and checkpoints =================
            score = _log(run, p, stats, (p.step - step_at_start) / max(time.perf_counter() - t_start, 1e-9), E)
            if bar is not None:
                bar.update(E * T)
                bar.set_postfix(score=f"{score:.3f}", upd=p.update)
            if p.step >= next_eval or p.step >= total:
                p.last_eval = evaluate(learner, args, args.eval_episodes)
                run.log("eval", {"step": p.step, "eval_score_mean": float(np.mean(p.last_eval)),
                                 "eval_score_std": float(np.std(p.last_eval)), "episodes": len(p.last_eval)})
                run.scalar("eval/score", float(np.mean(p.last_eval)), p.step)
                add_training_eval(run.path / "marl_eval.json", args.task, args.algo, args.seed, p.step, p.last_eval)
                next_eval += eval_period
            if p.step >= next_ck or p.step >= total:
                _save(run, args, learner, optimizer, envs, p, frozen)
                next_ck += args.checkpoint_every
    finally:
        envs.close()
        if bar is not None:
            bar.close()
        run.close()
    return _summary(run, p, time.perf_counter() - t_start, step_at_start)


def _progress_bar(args: Args, total: int, step: int):
    if not args.progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=step, desc=f"{args.algo} {args.task}", file=sys.stderr)


def _summary(run: RunFolder, p: Progress, wall: float, step_at_start: int) -> dict:
    summary = {"run": str(run.path), "steps": p.step, "wall_s": round(wall, 1), "time_rollout_s": round(p.t_roll, 1),
               "time_update_s": round(p.t_upd, 1), "steps_per_s": round((p.step - step_at_start) / max(wall, 1e-9), 1),
               "eval_score": float(np.mean(p.last_eval)) if p.last_eval else None, "warm_start": p.warm}
    (run.path / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


# ---------------------------------------------------------------------------------- quick
def quick() -> None:
    """What `make demo` runs: a short warm-started MAPPO training on bursty_workload, then a comparison."""
    from igym_marl.agents import make_policy
    from igym_marl.agents.analysis.stats import markdown, summarize
    args = Args(task="bursty_workload", steps=12_000, num_envs=8, rollout=60, eval_every=0, eval_episodes=5,
                out="runs/quick-bursty_workload-mappo", checkpoint_every=12_000, force=True)
    summary = train(args)
    print(f"\ntrained MAPPO for {summary['steps']} steps in {summary['wall_s']:.0f} s "
          f"(rollouts {summary['time_rollout_s']:.0f} s, updates {summary['time_update_s']:.0f} s)\n")
    records = []
    for name in ("random", "vllm-default", "best-constant", "heuristic", "mappo"):
        options = {"checkpoint": str(Path(args.out) / "checkpoint.pt")} if name == "mappo" else {}
        policy = make_policy(name, **options)
        records += [run_episode(policy, "bursty_workload", EVAL_START + k, agent_name=name) for k in range(5)]
    print(markdown(summarize(records)))


def main(argv=None) -> int:
    args, extra = parse_args(argv)
    if extra["quick"]:
        quick()
        return 0
    print(json.dumps(train(args), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
