"""Env copies stepped together for training, in worker processes or in this one.

Each copy plays its own training episodes: copy j's k-th episode has seed
``seed_base + j + n_envs x k``, whatever the number of workers, so a run is the same with one
process or several. A copy returns, per step, arrays ready for the networks: every agent's actor
input (its observation zero-padded to the largest, plus a one-hot agent id) and the global
state. It also applies the frozen agents' rules (``igym_marl.agents.policies.frozen``) and reports the actions it
actually applied.

**A teacher** (``teacher="heuristic"`` or another registry policy) plays alongside each copy, watching
the learner's own trajectory, and labels every state the learner visits with the action it would
take: on-policy labels for behaviour cloning (DAgger, and the decaying term during PPO).

**Counterfactual credit** (``credit="counterfactual"``). Before a step, the copy clones its
simulator and score keeper (``Simulator.clone()``: the same future as the original) once per
agent and plays the window with that agent's action replaced by a reference: its previous action
(``reference="previous"``) or the tuned heuristic's decision (``"teacher"``). The agent's
difference reward is the team reward minus what the team would have earned with the reference
action: D_i = r(a) - r(a with a_i <- ref_i). It is 0 when the agent played its reference, and it
is exact, not estimated: the simulator is deterministic and the clone sees the same traffic.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import traceback

import numpy as np
import torch

from igym_marl import serving_v0
from igym_marl.envs import AGENTS, joint_knobs

from igym_marl.agents.training.networks import N_AGENTS, actor_input_array

CREDITS = ("team", "counterfactual")
REFERENCES = ("previous", "teacher")


class EnvCopy:
    """What every env copy shares: its episode seeds (copy j's k-th episode has seed
    ``seed_base + j + n_envs x k``) and the start of an episode, its teacher reset on it."""

    auto_reset = True  # a finished episode restarts at once (a warm start's last one need not)

    def _seeds(self, index: int, n_envs: int, seed_base: int, episodes_done: int) -> None:
        self.index, self.n_envs, self.seed_base = index, n_envs, seed_base
        self.episode = episodes_done  # episodes this copy has started

    def seed(self) -> int:
        return self.seed_base + self.index + self.n_envs * self.episode

    def _start_episode(self) -> int:
        seed = self.seed()
        self.episode += 1
        self.obs, self.infos = self.env.reset(seed=seed)
        self._on_reset(seed)
        if self.teacher is not None:
            self.teacher.reset(self.env.task, seed)
            if getattr(self.teacher, "sees_env", False):  # an oracle looks ahead from this copy's own state
                self.teacher.attach(self.env)
        return seed

    def _on_reset(self, seed: int) -> None:
        """What else restarts with the episode, before the teacher."""


class EnvSlot(EnvCopy):
    """One env copy of serving_v0 with its episode seeds, frozen agents and (optional) teacher."""

    TEACHERS = ("heuristic", "best-constant", "oracle")  # what a warm start may clone

    def __init__(self, env_kwargs: dict, index: int, n_envs: int, seed_base: int, episodes_done: int,
                 frozen: dict[str, str], credit: str, reference: str, teacher: str | None):
        from igym_marl.agents import make_policy
        from igym_marl.agents.policies.frozen import FrozenAgent
        self.env = serving_v0.parallel_env(**env_kwargs)
        self._seeds(index, n_envs, seed_base, episodes_done)
        self.frozen = {a: FrozenAgent(a, rule) for a, rule in frozen.items()}
        self.credit, self.reference = credit, reference
        if teacher is None and credit == "counterfactual" and reference == "teacher":
            teacher = "heuristic"
        self.teacher = make_policy(teacher) if teacher else None  # watches the copy's own trajectory

    def _on_reset(self, seed: int) -> None:
        for f in self.frozen.values():
            f.reset(self.env.task, seed)

    def reset(self):
        self._start_episode()
        self.teacher_actions = self._teacher()
        return actor_input_array(self.obs), self.env.state()

    def _teacher(self) -> np.ndarray:
        if self.teacher is None:
            return np.zeros(N_AGENTS, dtype=np.int64)
        act = self.teacher.act(self.obs, self.infos, self.env.state())
        return np.array([act[a] for a in AGENTS], dtype=np.int64)

    def _counterfactual(self, applied: dict) -> np.ndarray:
        """Team reward (scaled) each agent's reference action would have earned this window."""
        env = self.env
        ref = env.last_actions if self.reference == "previous" else dict(zip(AGENTS, self.teacher_actions.tolist()))
        out = np.full(N_AGENTS, np.nan)
        for i, a in enumerate(AGENTS):
            if a in self.frozen or ref[a] == applied[a]:
                continue
            knobs = joint_knobs({**applied, a: int(ref[a])})
            sim, keeper = env.sim.clone(), dataclasses.replace(env.keeper)
            out[i] = env.reward_scale * keeper.window(sim.advance(env.task.window_s, knobs))
        return out

    def step(self, actions: np.ndarray):
        applied = {a: int(actions[i]) for i, a in enumerate(AGENTS)}
        state = self.env.state()
        for a, f in self.frozen.items():
            applied[a] = f.act(self.obs, self.infos, state)
        cf = self._counterfactual(applied) if self.credit == "counterfactual" else None
        self.obs, rewards, _, _, self.infos = self.env.step(applied)
        r = float(rewards[AGENTS[0]])
        diff = np.zeros(N_AGENTS) if cf is None else np.where(np.isnan(cf), 0.0, r - cf)
        done = not self.env.agents
        score = self.env.score if done else float("nan")
        applied_arr = np.array([applied[a] for a in AGENTS], dtype=np.int64)
        if done and self.auto_reset:
            x, s = self.reset()
        else:
            x, s = actor_input_array(self.obs), self.env.state()
            if not done:
                self.teacher_actions = self._teacher()
        return x, s, r, diff, done, score, applied_arr, self.teacher_actions


class Rollouts:
    """A group of env copies that plays rollout segments with its own copy of the actor: one message
    per segment instead of one per step. Each copy samples its agents' actions from its own
    generator (seeded by the run's seed and the copy's index), so a run is the same whether its
    copies are stepped in one process or spread over several."""

    def __init__(self, slot_args: list, policy: dict, seed: int, slot_cls=None, learner_fn=None):
        torch.set_num_threads(1)
        self.slots = [(slot_cls or EnvSlot)(*a) for a in slot_args]
        self.learner = (learner_fn or default_learner)(policy)
        self.n_agents = len(self.learner.agents)  # actions per step
        self.rngs = [np.random.default_rng([seed, a[1], 17]) for a in slot_args]
        self.obs = None

    def load(self, state_dict: dict) -> None:
        self.learner.policy_module().load_state_dict(state_dict)

    def reset(self):
        self.obs = [s.reset() for s in self.slots]
        return self.obs

    @torch.no_grad()
    def _sample(self) -> np.ndarray:
        x = np.stack([o[0] for o in self.obs])
        state = np.stack([o[1] for o in self.obs])
        logits = self.learner.logits(torch.as_tensor(self.learner.policy_input(x, state)))
        u = np.stack([rng.random(self.n_agents) for rng in self.rngs])  # one draw per copy and agent
        acts = np.empty((len(self.slots), self.n_agents), dtype=np.int64)
        for i, lg in enumerate(logits):
            cdf = torch.softmax(lg, -1).cumsum(-1).numpy()
            acts[:, i] = np.minimum((cdf < u[:, i:i + 1] * cdf[:, -1:]).sum(1), cdf.shape[1] - 1)
        return acts

    def rollout(self, steps: int) -> dict:
        n, a = len(self.slots), self.n_agents
        out = {"x": [], "state": [], "act": np.zeros((steps, n, a), np.int64),
               "applied": np.zeros((steps, n, a), np.int64), "reward": np.zeros((steps, n), np.float32),
               "diff": np.zeros((steps, n, a), np.float32), "done": np.zeros((steps, n), bool),
               "score": np.full((steps, n), np.nan), "teacher": np.zeros((steps + 1, n, a), np.int64)}
        for t in range(steps):
            out["x"].append(np.stack([o[0] for o in self.obs]))
            out["state"].append(np.stack([o[1] for o in self.obs]))
            out["teacher"][t] = np.stack([s.teacher_actions for s in self.slots])
            act = self._sample()
            out["act"][t] = act
            for j, slot in enumerate(self.slots):
                x, st, r, d, done, score, applied, _ = slot.step(act[j])
                self.obs[j] = (x, st)
                out["reward"][t, j], out["diff"][t, j], out["done"][t, j] = r, d, done
                out["score"][t, j], out["applied"][t, j] = score, applied
        out["x"].append(np.stack([o[0] for o in self.obs]))
        out["state"].append(np.stack([o[1] for o in self.obs]))
        out["teacher"][steps] = np.stack([s.teacher_actions for s in self.slots])
        out["x"], out["state"] = np.stack(out["x"]), np.stack(out["state"])
        return out

    def episodes(self) -> list[int]:
        return [s.episode for s in self.slots]


def default_learner(policy: dict):
    """The serving_v0 learner a rollout group samples with: {"algo", "hidden"} -> algos.make_learner."""
    from igym_marl.agents.training.algos import make_learner
    return make_learner(policy["algo"], policy["hidden"])


def _worker(conn, slot_args: list, policy: dict, seed: int, slot_cls, learner_fn):
    try:
        group = Rollouts(slot_args, policy, seed, slot_cls, learner_fn)
        conn.send(("ok", None))
        while True:
            cmd, data = conn.recv()
            if cmd == "close":
                conn.send(("ok", None))
                return
            conn.send(("ok", getattr(group, cmd)(*data)))
    except Exception:  # report, do not hang the trainer
        conn.send(("error", traceback.format_exc()))


class VecEnv:
    """`n_envs` env copies in `workers` processes (0: in this process). See the module docstring.

    ``load(state_dict)`` hands the learner's current weights to every group; ``rollout(T)`` plays
    T steps of every copy and returns arrays with the copies in index order."""

    def __init__(self, env_kwargs: dict, n_envs: int, seed_base: int, policy: dict, seed: int, workers: int = 0,
                 frozen: dict | None = None, credit: str = "team", reference: str = "previous",
                 teacher: str | None = None, episodes_done=None, slot_cls=None, learner_fn=None):
        """`slot_cls` makes one env copy (EnvSlot for serving_v0; the cluster's ClusterSlot) and
        `learner_fn(policy)` the learner its rollout groups sample with (default_learner); both
        are passed by reference to the worker processes."""
        if credit not in CREDITS:
            raise ValueError(f"credit={credit!r} is unknown; allowed: {', '.join(CREDITS)}")
        if reference not in REFERENCES:
            raise ValueError(f"reference={reference!r} is unknown; allowed: {', '.join(REFERENCES)}")
        done = list(episodes_done) if episodes_done is not None else [0] * n_envs
        args = [(env_kwargs, j, n_envs, seed_base, done[j], dict(frozen or {}), credit, reference, teacher)
                for j in range(n_envs)]
        self.n_envs = n_envs
        self.workers = min(max(workers, 0), n_envs)
        self.groups = [list(range(w, n_envs, max(self.workers, 1))) for w in range(max(self.workers, 1))]
        if self.workers == 0:
            self.local = Rollouts(args, policy, seed, slot_cls, learner_fn)
            return
        ctx = multiprocessing.get_context("spawn")  # no inherited locks from torch or numba threads
        self.pipes, self.procs = [], []
        for g in self.groups:
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(child, [args[j] for j in g], policy, seed, slot_cls, learner_fn),
                            daemon=True)
            p.start()
            self.pipes.append(parent)
            self.procs.append(p)
        for pipe in self.pipes:
            self._recv(pipe)

    @staticmethod
    def _recv(pipe):
        status, data = pipe.recv()
        if status == "error":
            raise RuntimeError(f"an env worker failed:\n{data}")
        return data

    def _call(self, cmd: str, *data) -> list:
        if self.workers == 0:
            return [getattr(self.local, cmd)(*data)]
        for pipe in self.pipes:
            pipe.send((cmd, data))
        return [self._recv(pipe) for pipe in self.pipes]

    def load(self, state_dict: dict) -> None:
        self._call("load", state_dict)

    def reset(self) -> None:
        self._call("reset")

    def rollout(self, steps: int) -> dict:
        """-> {"x": float32[T+1, E, 4, INPUT_DIM] actor inputs (the last: after the segment), "state":
        float32[T+1, E, STATE_DIM], "act": the sampled actions int[T, E, 4], "applied": the actions
        applied (frozen agents' rules replace theirs), "reward": team rewards float32[T, E],
        "diff": difference rewards float32[T, E, 4] (zeros under team credit), "done": bool[T, E],
        "score": finished episodes' scores (NaN elsewhere) [T, E], "teacher": the heuristic's
        actions int[T+1, E, 4] (zeros without a teacher)}. Finished episodes restart at once."""
        parts = self._call("rollout", steps)
        out = {}
        for key in parts[0]:  # copies are axis 1; group w holds copies w, w + workers, ...
            full = np.zeros(parts[0][key].shape[:1] + (self.n_envs,) + parts[0][key].shape[2:], parts[0][key].dtype)
            for g, part in zip(self.groups, parts):
                full[:, g] = part[key]
            out[key] = full
        return out

    def episodes(self) -> list[int]:
        """Episodes each copy has started (to resume with fresh seeds)."""
        out = [0] * self.n_envs
        for g, part in zip(self.groups, self._call("episodes")):
            for j, e in zip(g, part):
                out[j] = e
        return out

    def close(self) -> None:
        if self.workers > 0:
            for pipe in self.pipes:
                try:
                    pipe.send(("close", ()))
                    pipe.recv()
                except (BrokenPipeError, EOFError):
                    pass
            for p in self.procs:
                p.join(timeout=5)
            self.workers = -1


__all__ = ["VecEnv", "EnvCopy", "EnvSlot", "default_learner", "Rollouts", "CREDITS", "REFERENCES"]
