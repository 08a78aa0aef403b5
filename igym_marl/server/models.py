"""The wire types: actions and observations as pydantic models (OpenEnv's base classes).

Actions are validated by the envs' own rules (``igym_marl.envs.single.original_to_knobs`` and
``igym_marl.envs.actions``): a bad value is refused with a message naming the field, the value
and what is allowed (HTTP 422), never clamped.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from openenv.core.env_server.types import Action, Observation, State
from pydantic import Field, PrivateAttr, create_model, model_validator
from pydantic_core import PydanticCustomError

from ..envs import AGENT_KNOBS, AGENTS
from ..envs.actions import decode_action
from ..envs.single import original_to_knobs
from ..sim.types import KNOB_SCHEMA, Knobs

def _invalid(message: str) -> PydanticCustomError:
    """A validation error whose text names the field, the value and what is allowed (and whose
    context stays JSON-serialisable in a 422 body)."""
    return PydanticCustomError("invalid_action", "{message}", {"message": message})


def _check_policy(policy: str, given: dict, what: str, allowed: tuple) -> None:
    """`policy` must be one of the server-side policies `allowed`, and the only thing given."""
    if policy not in allowed:
        raise _invalid(f"policy={policy!r} is unknown; allowed: {', '.join(allowed)}")
    if given:
        raise _invalid(f"give {what} or policy, not both (got policy and {sorted(given)})")


def _given_unless_policy(action, names, what: str, allowed: tuple | None = None) -> Optional[dict]:
    """The fields of `names` the action gives, or None when it asks a server-side policy instead
    (which must then be one of `allowed`, SERVER_POLICIES by default, and given alone)."""
    given = {k: getattr(action, k) for k in names if getattr(action, k) is not None}
    if action.policy is not None:
        _check_policy(action.policy, given, what, SERVER_POLICIES if allowed is None else allowed)
        return None
    return given


# Server-side policies a client may ask to act for a window instead of sending knobs.
SERVER_POLICIES = ("heuristic", "vllm-default", "best-constant", "mappo")
KNOB_FIELDS = tuple(KNOB_SCHEMA)  # the six InferenceGym fields, in their order


def _knob_field(name: str):
    schema, desc = KNOB_SCHEMA[name]
    return Field(default=None, description=desc, json_schema_extra=schema)


class _ServingActionRules(Action):
    """``policy`` and the validation of ServingAction; its knob fields come from KNOB_SCHEMA."""

    policy: Optional[str] = Field(default=None, description=f"act with a server-side policy: {', '.join(SERVER_POLICIES)}",
                                  json_schema_extra={"enum": list(SERVER_POLICIES)})
    _knobs: Optional[Knobs] = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check(self):
        given = _given_unless_policy(self, KNOB_FIELDS, "the six knob fields")
        if given is None:
            return self
        try:
            self._knobs = original_to_knobs(given)
        except ValueError as e:  # names the field, the value and what is allowed
            raise _invalid(str(e)) from None
        return self

    @property
    def knobs(self) -> Optional[Knobs]:
        return self._knobs


ServingAction = create_model(
    "ServingAction", __base__=_ServingActionRules, __module__=__name__,
    __doc__="One window's knobs, the six InferenceGym fields, or ``policy``: a server-side policy (one of "
            "SERVER_POLICIES) chooses them for this window.",
    **{k: (Optional[Any], _knob_field(k)) for k in KNOB_FIELDS})


class _EpisodeCommon(Observation):
    """What every observation, single-replica or cluster, carries about its episode."""

    task_id: str = ""
    seed: int = 0
    window: int = 0
    episode_windows: int = 0
    window_s: float = 0.0
    score_so_far: float = 0.0
    episode: Optional[Dict[str, Optional[float]]] = Field(
        default=None, description="score components once the episode ends (null: undefined, e.g. nothing served)")


class _EpisodeObservation(_EpisodeCommon):
    """What a single-replica observation carries about its episode."""

    knobs: Dict[str, Any] = Field(default_factory=dict)
    agent_actions: Dict[str, Optional[int]] = Field(
        default_factory=dict, description="each agent's Discrete index for the knobs in force (null between levels)")


class ServingObservation(_EpisodeObservation):
    """The 15 InferenceGym fields in their order and units, the task, and what a dashboard shows:
    the knobs applied in real units, the running score and each tenant's latencies."""

    queue_depth: float = 0.0
    active_requests: float = 0.0
    kv_cache_occupancy: float = 0.0
    mean_prompt_length: float = 0.0
    p50_ttft_ms: float = 0.0
    p99_ttft_ms: float = 0.0
    p50_itl_ms: float = 0.0
    throughput_tps: float = 0.0
    slo_compliance_rate: float = 0.0
    gpu_memory_used_gb: float = 0.0
    estimated_cost_per_1k: float = 0.0
    request_arrival_rate: float = 0.0
    spec_acceptance_rate: float = 0.0
    eviction_events: float = 0.0
    step_index: float = 0.0
    tenants: List[Dict[str, Any]] = Field(default_factory=list)


class _MultiAgentActionRules(Action):
    """``policy`` and the validation of MultiAgentAction; its fields are the env's agents."""

    policy: Optional[str] = Field(default=None, json_schema_extra={"enum": list(SERVER_POLICIES)})

    @model_validator(mode="after")
    def _check(self):
        given = _given_unless_policy(self, AGENTS, "the agents' indices")
        if given is None:
            return self
        missing = [a for a in AGENTS if a not in given]
        if missing:
            raise _invalid(f"agents {missing} have no action; expected an index for each of {list(AGENTS)}")
        for a, v in given.items():
            if isinstance(v, bool) or not isinstance(v, int):
                raise _invalid(f"agent {a!r}: action={v!r} has type {type(v).__name__}; allowed: an integer in "
                               f"0..{AGENT_KNOBS[a].n - 1}")
            try:
                decode_action(a, v)
            except ValueError as e:  # names the agent, the value and the range
                raise _invalid(str(e)) from None
        return self

    def indices(self) -> Dict[str, int]:
        return {a: int(getattr(self, a)) for a in AGENTS}


MultiAgentAction = create_model(
    "MultiAgentAction", __base__=_MultiAgentActionRules, __module__=__name__,
    __doc__="The agents' Discrete indices (``igym_marl.envs.AGENT_KNOBS`` lists their levels), or ``policy`` as in "
            "ServingAction.",
    **{a: (Optional[Any], Field(default=None, json_schema_extra={"type": "integer", "minimum": 0,
                                                                 "maximum": AGENT_KNOBS[a].n - 1}))
       for a in AGENTS})


class MultiAgentObservation(_EpisodeObservation):
    """Each agent's observation vector, the team reward (``reward``) and the same dashboard fields
    as ServingObservation."""

    observations: Dict[str, List[float]] = Field(default_factory=dict)


class ServingState(State):
    """Where the session's episode stands."""

    task_id: str = ""
    seed: Optional[int] = None
    window: int = 0
    episode_windows: int = 0
    score_so_far: float = 0.0
    done: bool = False


# ---------------------------------------------------------------------------------- cluster mode
# Server-side cluster controllers (igym_marl.agents.cluster.evaluate.make_cluster_policy); the
# clairvoyant oracle plans by simulating ahead and is too slow to play live.
CLUSTER_SERVER_POLICIES = ("vllm-default", "rule:round_robin", "rule:prefix_affinity", "rule:scored:0.43",
                           "best-constant", "hpa", "mappo")
CLUSTER_CONTROL_FIELDS = ("knobs", "rule", "target")


def cluster_control(given: dict) -> tuple[list[Knobs] | Knobs, str, int]:
    """A window's cluster control, {knobs, rule, target}, checked: ``knobs`` the six knob fields
    for every replica (one dict) or one dict per replica (a list), ``rule`` one of the router
    agent's rules, ``target`` the autoscaler's number of active replicas (an integer; the task's N
    bounds it when the window is stepped). ValueError names the field, the value and what is allowed."""
    from ..envs.cluster import ROUTER_RULES
    if not isinstance(given, dict):
        raise ValueError(f"a cluster action must be an object with {', '.join(CLUSTER_CONTROL_FIELDS)}; "
                         f"got {type(given).__name__}")
    missing = [f for f in CLUSTER_CONTROL_FIELDS if f not in given or given[f] is None]
    extra = sorted(set(given) - set(CLUSTER_CONTROL_FIELDS))
    if extra:
        raise ValueError(f"unknown field(s) {extra}; a cluster action gives {', '.join(CLUSTER_CONTROL_FIELDS)}")
    if missing:
        raise ValueError(f"{', '.join(missing)} missing: a cluster action gives knobs (the six knob fields, for "
                         f"every replica or a list of one per replica), rule and target together")
    knobs, rule, target = given["knobs"], given["rule"], given["target"]
    if isinstance(knobs, dict):
        parsed = original_to_knobs(knobs)
    elif isinstance(knobs, list) and knobs:
        parsed = []
        for i, k in enumerate(knobs):
            if not isinstance(k, dict):
                raise ValueError(f"knobs[{i}]={k!r} must be an object of the six knob fields")
            try:
                parsed.append(original_to_knobs(k))
            except ValueError as e:
                raise ValueError(f"knobs[{i}]: {e}") from None
    else:
        raise ValueError(f"knobs={knobs!r} must be an object of the six knob fields (every replica) or a "
                         f"non-empty list of them (one per replica)")
    if not isinstance(rule, str) or rule not in ROUTER_RULES:
        raise ValueError(f"rule={rule!r} is unknown; allowed: {', '.join(ROUTER_RULES)}")
    if isinstance(target, bool) or not isinstance(target, int) or target < 1:
        raise ValueError(f"target={target!r} must be an integer >= 1 (active replicas; at most the task's N)")
    return parsed, rule, target


class ClusterAction(Action):
    """One window's control of a cluster: ``knobs`` (the six knob fields for every replica, or a
    list of one such object per replica), ``rule`` (one of the router agent's rules) and
    ``target`` (active replicas), all three; or ``policy``, a server-side cluster controller
    (one of CLUSTER_SERVER_POLICIES) that chooses everything for this window."""

    policy: Optional[str] = Field(default=None, description=f"act with a server-side cluster policy: "
                                  f"{', '.join(CLUSTER_SERVER_POLICIES)}",
                                  json_schema_extra={"enum": list(CLUSTER_SERVER_POLICIES)})
    knobs: Optional[Any] = Field(default=None, description="the six knob fields for every replica, or a list of "
                                                            "one such object per replica")
    rule: Optional[Any] = Field(default=None, description="the routing rule: one of the router agent's rules")
    target: Optional[Any] = Field(default=None, description="the autoscaler's target: active replicas, 1..N",
                                  json_schema_extra={"type": "integer", "minimum": 1})
    _control: Optional[tuple] = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check(self):
        given = _given_unless_policy(self, CLUSTER_CONTROL_FIELDS, "knobs, rule and target", CLUSTER_SERVER_POLICIES)
        if given is None:
            return self
        try:
            self._control = cluster_control(given)
        except ValueError as e:
            raise _invalid(str(e)) from None
        return self

    @property
    def control(self) -> Optional[tuple]:
        """(knobs, rule, target), or None for a policy."""
        return self._control


class ClusterObservation(_EpisodeCommon):
    """A cluster window: each replica's state, routing share, load, KV and knobs; the fleet's
    routing rule, target and cost; each tenant's arrivals, SLO counts and score so far."""

    replicas: List[Dict[str, Any]] = Field(default_factory=list)
    fleet: Dict[str, Any] = Field(default_factory=dict)
    tenants: List[Dict[str, Any]] = Field(default_factory=list)
