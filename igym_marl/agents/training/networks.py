"""Policy and value networks for MAPPO, IPPO and single-agent PPO, and their checkpoints.

* :class:`SharedActor`: one MLP shared by the four agents; input = the agent's observation
  zero-padded to the largest observation size plus a one-hot agent id; one action head per agent
  (heterogeneous action sets without masking).
* :class:`Critic`: an MLP value function (centralized on ``state()`` for MAPPO, on the agent's own
  observation + id for IPPO).
* :class:`SingleActorCritic`: PPO on the single-agent wrapper: state -> four categorical heads
  (the MultiDiscrete action) and a value.

Checkpoints are plain dicts of tensors and primitives written with ``torch.save`` and read with
``torch.load(weights_only=True)`` (no code from the file is executed). They carry the format,
the environment version, the feature layout, the task and the training arguments; loading one
made for another env version, task or layout raises a ValueError saying what was expected.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from igym_marl.envs import AGENTS, AGENT_KNOBS
from igym_marl.envs.features import LAST_ACTION, OBS_DIM, OWN, SHARED, STATE_DIM, TENANT
from igym_marl.envs.team import STANDARD

CHECKPOINT_FORMAT = "igym-marl-policy/1"
ENV_VERSION = "serving_v0"
MAX_OBS = max(OBS_DIM.values())
N_AGENTS = len(AGENTS)
INPUT_DIM = MAX_OBS + N_AGENTS  # the shared actor's input: padded observation, one-hot agent id
ACTION_SIZES = [AGENT_KNOBS[a].n for a in AGENTS]


def layout() -> dict:
    """What a checkpoint must match: the team (its agents and the knobs each owns), spaces and the
    exact feature list (hashed). The networks are built for the standard team."""
    names = [f.name for f in SHARED] + [f.name for f in TENANT] + [f.name for f in LAST_ACTION] + \
            [f"{a}.{f.name}" for a in AGENTS for f in OWN[a]]
    return {"agents": list(AGENTS), "team": STANDARD.signature(), "obs_dims": [OBS_DIM[a] for a in AGENTS],
            "state_dim": STATE_DIM, "action_sizes": ACTION_SIZES,
            "features_sha1": hashlib.sha1("|".join(names).encode()).hexdigest()}


def check_team(found: dict | None, expected: dict, where: str) -> None:
    """Refuse, by name, a checkpoint made for another team: which agents it has that this one lacks
    (and the reverse), and which agent owns other knobs."""
    if found == expected:
        return
    if not isinstance(found, dict):
        raise ValueError(f"{where} records no agent team; this env's team is {expected}")
    extra, missing = sorted(set(found) - set(expected)), sorted(set(expected) - set(found))
    moved = [f"{a} owns {found[a]} there, {expected[a]} here" for a in expected if a in found and found[a] != expected[a]]
    parts = ([f"agents {extra} are not in this team"] if extra else []) + \
            ([f"this team's agents {missing} are not in it"] if missing else []) + moved
    if not parts:
        parts = [f"its agents come in the order {list(found)}, this team's in {list(expected)}"]
    raise ValueError(f"{where} was trained with another agent team: " + "; ".join(parts))


def mlp(n_in: int, hidden: int, n_out: int, out_gain: float = 1.0) -> nn.Sequential:
    def lin(i, o, gain):
        layer = nn.Linear(i, o)
        nn.init.orthogonal_(layer.weight, gain)
        nn.init.zeros_(layer.bias)
        return layer
    return nn.Sequential(lin(n_in, hidden, 2 ** 0.5), nn.Tanh(), lin(hidden, hidden, 2 ** 0.5), nn.Tanh(),
                         lin(hidden, n_out, out_gain))


class SharedActor(nn.Module):
    def __init__(self, hidden: int = 64):
        super().__init__()
        self.body = mlp(INPUT_DIM, hidden, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in ACTION_SIZES)
        for h in self.heads:
            nn.init.orthogonal_(h.weight, 0.01)
            nn.init.zeros_(h.bias)

    def logits(self, x: torch.Tensor, agent: int) -> torch.Tensor:
        """x: [B, MAX_OBS + N_AGENTS] (padded observation + one-hot id) -> [B, n_actions(agent)]."""
        return self.heads[agent](torch.tanh(self.body(x)))


class Critic(nn.Module):
    """An MLP value function with `n_out` heads ([B] for one head, [B, n_out] for several)."""

    def __init__(self, n_in: int, hidden: int = 64, n_out: int = 1):
        super().__init__()
        self.n_out = n_out
        self.net = mlp(n_in, hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.net(x)
        return v.squeeze(-1) if self.n_out == 1 else v


class SingleActorCritic(nn.Module):
    def __init__(self, hidden: int = 64):
        super().__init__()
        self.body = mlp(STATE_DIM, hidden, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in ACTION_SIZES)
        for h in self.heads:
            nn.init.orthogonal_(h.weight, 0.01)
            nn.init.zeros_(h.bias)
        self.value = Critic(STATE_DIM, hidden)

    def logits(self, s: torch.Tensor) -> list[torch.Tensor]:
        z = torch.tanh(self.body(s))
        return [h(z) for h in self.heads]


def actor_input_array(obs: dict) -> np.ndarray:
    """{agent: observation} -> float32[N_AGENTS, INPUT_DIM]: each agent's observation zero-padded,
    then its one-hot id."""
    x = np.zeros((N_AGENTS, INPUT_DIM), dtype=np.float32)
    for i, a in enumerate(AGENTS):
        x[i, : OBS_DIM[a]] = obs[a]
        x[i, MAX_OBS + i] = 1.0
    return x


def actor_inputs(obs_list: list[dict]) -> torch.Tensor:
    """[E] dicts {agent: obs} -> [E * N_AGENTS, INPUT_DIM] (agent-major within each env)."""
    return torch.from_numpy(np.concatenate([actor_input_array(obs) for obs in obs_list]))


@torch.no_grad()
def greedy_multi(actor: SharedActor, obs: dict) -> dict[str, int]:
    """Each agent's most likely action under the shared actor."""
    x = actor_inputs([obs])
    return {a: int(actor.logits(x[i:i + 1], i).argmax(-1)) for i, a in enumerate(AGENTS)}


@torch.no_grad()
def greedy_single(model: SingleActorCritic, state) -> dict[str, int]:
    """The single-agent PPO policy's most likely joint action from the global state."""
    logits = model.logits(torch.as_tensor(state, dtype=torch.float32)[None])
    return {a: int(l.argmax(-1)) for a, l in zip(AGENTS, logits)}


# ---------------------------------------------------------------------------------- checkpoints
def save_checkpoint(path, *, algo: str, task: str, args: dict, modules: dict[str, nn.Module], step: int,
                    extra: dict | None = None, layout_: dict | None = None) -> Path:
    """Write atomically (temp file + rename): an interrupted save never leaves a broken file.
    `layout_`: the learner's layout (default: the single-replica one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"format": CHECKPOINT_FORMAT, "env_version": ENV_VERSION, "layout": layout_ or layout(), "algo": algo,
            "task": task,
            "args": args, "step": int(step), "state_dicts": {k: m.state_dict() for k, m in modules.items()},
            **(extra or {})}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    torch.save(blob, tmp)
    os.replace(tmp, path)
    return path


def _non_finite(blob, prefix: str = "") -> str | None:
    """The first tensor of a checkpoint (weights, optimizer state) with a NaN or inf, or None."""
    if isinstance(blob, torch.Tensor):
        return prefix if blob.is_floating_point() and not bool(torch.isfinite(blob).all()) else None
    if isinstance(blob, dict):
        items = blob.items()
    elif isinstance(blob, (list, tuple)):
        items = enumerate(blob)
    else:
        return None
    for k, v in items:
        bad = _non_finite(v, f"{prefix}.{k}" if prefix else str(k))
        if bad:
            return bad
    return None


def load_checkpoint(path, *, algos: tuple[str, ...], task: str | None = None, cluster: bool = False) -> dict:
    """Load safely and check that the checkpoint fits this environment (and `task`, if given):
    serving_v0's layout, or with `cluster` a cluster learner's (its replicas come from the file;
    ``igym_marl.agents.cluster.learner.load_learner`` checks the rest)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise ValueError(f"checkpoint {path} is not a file (a folder or a device?); give a .pt file written by "
                         f"train_marl.py")
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {path} is empty: not a checkpoint (an interrupted copy?)")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(16)
        raise ValueError(f"checkpoint {path} is not a torch checkpoint: torch.save writes a zip archive, and this "
                         f"file begins {head!r}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle with code, a truncated or foreign file
        raise ValueError(f"checkpoint {path} cannot be loaded safely (weights only): {e}") from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an igym-marl policy checkpoint (expected format {CHECKPOINT_FORMAT!r}, "
                         f"found {blob.get('format') if isinstance(blob, dict) else type(blob).__name__!r})")
    if blob.get("env_version") != ENV_VERSION:
        raise ValueError(f"{path} was made for env version {blob.get('env_version')!r}; this is {ENV_VERSION!r}")
    found = blob.get("layout") or {}
    check_team(found.get("team"), STANDARD.signature(), f"checkpoint {path}")
    if (found.get("kind") == "cluster") != cluster:
        raise ValueError(f"checkpoint {path} holds a {'cluster' if found.get('kind') == 'cluster' else 'single-replica'} "
                         f"policy; this needs a {'cluster' if cluster else 'single-replica'} one")
    if not cluster and blob.get("layout") != layout():
        raise ValueError(f"{path} was made for another observation/action layout: expected {layout()}, "
                         f"found {blob.get('layout')}")
    bad = _non_finite(blob)
    if bad:
        raise ValueError(f"checkpoint {path} holds non-finite values (NaN or inf) in {bad}: it cannot be used; "
                         f"train again or take an earlier checkpoint")
    if blob.get("algo") not in algos:
        raise ValueError(f"{path} holds a {blob.get('algo')!r} policy; expected one of {list(algos)}")
    if task is not None and blob.get("task") != task:
        raise ValueError(f"{path} was trained on task {blob.get('task')!r}, not {task!r}; pass a checkpoint for "
                         f"{task!r}")
    return blob

