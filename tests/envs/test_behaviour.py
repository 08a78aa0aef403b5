"""Score, reward, actions, bad input, observations, rendering, and a real RL client."""

import numpy as np
import pytest

from igym_marl import serving_v0
from igym_marl.envs import (AGENTS, DEFAULT_ACTIONS, AGENT_KNOBS, InferenceGymEnv, decode_action, encode_action,
                            save_timeline)
from igym_marl.envs.reward import OUTPUT_PRICE
from igym_marl.sim.layout import SLO, SLO_MET
from igym_marl.envs.features import LAST_ACTION, OWN, SHARED, TENANT
from igym_marl.sim import Tenant, Workload
from igym_marl.workloads import get_task


def run(env, policy, seed=0):
    obs, _ = env.reset(seed=seed)
    total = 0.0
    info = None
    while env.agents:
        obs, rew, term, trunc, infos = env.step(policy(env, obs))
        total += rew["batch_scheduler"]
        info = infos["batch_scheduler"]
    return total, info


def const(actions):
    return lambda env, obs: dict(actions)


MIN = {a: 0 for a in AGENTS}
MAX = {a: AGENT_KNOBS[a].n - 1 for a in AGENTS}


@pytest.mark.parametrize("task", ["static_workload", "bursty_workload", "adversarial_multitenant"])
def test_rewards_sum_to_the_score_and_degenerate_policies_score_low(task):
    env = serving_v0.parallel_env(task=task)
    ret, info = run(env, const(DEFAULT_ACTIONS), seed=1)
    default = env.score
    assert ret == pytest.approx(100.0 * default, rel=1e-9)  # return = reward_scale x score
    ep = info["episode"]
    assert ep["score"] == pytest.approx(ep["goodput"] * ep["quality"] * ep["memory"], rel=1e-9)
    assert ep["memory"] == 1.0  # memory_cost is 0 by default: unreserved memory earns nothing
    # the goodput component is the share of offered value (tier weight x (prompt + 4 x output tokens))
    # served within SLO, recomputed here request by request
    wl = env.workload
    inside = wl.arrival_s < env.task.horizon_s
    w = np.array([t.weight for t in wl.tenants])[wl.tenant]
    value = w * (wl.prompt_tokens + OUTPUT_PRICE * wl.output_tokens)
    met = env.sim.ri[: len(wl), SLO] == SLO_MET
    assert ep["goodput"] == pytest.approx(value[met].sum() / value[inside].sum(), rel=1e-9)
    assert 0.0 < default < 1.0
    for degenerate in (MIN, MAX):
        run(env, const(degenerate), seed=1)
        assert env.score < 0.5 * default


def test_serving_nothing_scores_zero():
    """Every prompt is larger than the KV pool: all rejected, none served, score exactly 0."""
    t = Tenant("t", 1000.0, 100.0)
    w = Workload(np.arange(20, dtype=float), np.full(20, 900_000), np.full(20, 10), np.zeros(20, np.int64), (t,))
    task = get_task("static_workload", traffic=lambda task, rng: w, tenants=(t,), episode_windows=10)
    env = serving_v0.parallel_env(task=task)
    ret, info = run(env, const(DEFAULT_ACTIONS))
    assert ret == 0.0 and env.score == 0.0 and info["episode"]["metrics"].rejected == 20


def test_score_below_one_for_any_policy_and_counting_requests_is_an_option():
    rng = np.random.default_rng(0)
    env = serving_v0.parallel_env(task="static_workload", episode_windows=60)
    for seed in range(3):
        run(env, lambda e, o: {a: int(rng.integers(AGENT_KNOBS[a].n)) for a in AGENTS}, seed=seed)
        assert 0.0 <= env.score < 1.0
    # value="requests" counts every request of a tenant alike; memory_cost charges reserved memory
    by_count = serving_v0.parallel_env(task="adversarial_multitenant", episode_windows=30, value="requests",
                                       memory_cost=0.3)
    _, info = run(by_count, const(DEFAULT_ACTIONS), seed=2)
    em, ep = info["episode"]["metrics"], info["episode"]
    w = [t.weight for t in by_count.task.tenants]
    assert ep["goodput"] == pytest.approx(sum(wi * t.slo_met for wi, t in zip(w, em.tenants)) /
                                          sum(wi * t.offered for wi, t in zip(w, em.tenants)), rel=1e-9)
    # a constant configuration reserves the same memory every window
    reserved = {h["metrics"].gpu_memory_used_gb for h in by_count.history}
    installed = by_count.sim.replica.gpu.memory_gb  # A100: 81,920 MiB as the driver reports it, in GB
    assert installed == pytest.approx(85.899, abs=1e-3)
    assert len(reserved) == 1 and ep["memory"] == pytest.approx(1.0 - 0.3 * reserved.pop() / installed, rel=1e-12)
    for bad in ({"value": "dollars"}, {"memory_cost": -0.1}, {"memory_cost": float("nan")}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            serving_v0.parallel_env(task="static_workload", **bad)


def test_encode_decode_roundtrip_and_order():
    for a in AGENTS:
        for i in range(AGENT_KNOBS[a].n):
            assert encode_action(a, **decode_action(a, i)) == i
    assert decode_action("batch_scheduler", 0) == {"batch_cap": 1, "prefill_decode_split": False}
    assert decode_action("batch_scheduler", 1) == {"batch_cap": 1, "prefill_decode_split": True}
    assert decode_action("kv_manager", 29) == {"kv_budget_fraction": 1.0, "quantization_tier": "INT4"}
    assert decode_action("kv_manager", np.array([9, 2])) == {"kv_budget_fraction": 1.0, "quantization_tier": "INT4"}
    with pytest.raises(ValueError, match="not a level"):
        encode_action("batch_scheduler", batch_cap=100, prefill_decode_split=True)


@pytest.mark.parametrize("actions,fragment", [
    ({**DEFAULT_ACTIONS, "spec_controller": 9}, "agent 'spec_controller': action=9 is out of range"),
    ({**DEFAULT_ACTIONS, "kv_manager": -1}, "agent 'kv_manager': action=-1 is out of range"),
    ({**DEFAULT_ACTIONS, "batch_scheduler": float("nan")}, "agent 'batch_scheduler': action=nan is NaN"),
    ({**DEFAULT_ACTIONS, "tenant_router": 1.0}, "agent 'tenant_router': action=1.0 has type float"),
    ({**DEFAULT_ACTIONS, "tenant_router": True}, "agent 'tenant_router'"),
    ({**DEFAULT_ACTIONS, "cache_agent": 0}, "unknown agent(s) ['cache_agent']"),
    ({a: v for a, v in DEFAULT_ACTIONS.items() if a != "kv_manager"}, "no action for agent(s) ['kv_manager']"),
])
def test_bad_actions(actions, fragment):
    env = serving_v0.parallel_env(task="static_workload", episode_windows=3)
    env.reset(seed=0)
    with pytest.raises(ValueError) as e:
        env.step(actions)
    assert fragment in str(e.value)


def test_bad_multidiscrete_and_original_actions_and_options():
    env = serving_v0.parallel_env(task="static_workload", action_format="multidiscrete", episode_windows=3)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="agent 'kv_manager'"):
        env.step({"batch_scheduler": np.array([8, 1]), "kv_manager": np.array([10, 0]), "spec_controller": np.array([0]),
                  "tenant_router": np.array([0])})
    with pytest.raises(ValueError, match="agent 'batch_scheduler'.*shape"):
        env.step({"batch_scheduler": np.array([1.5, 1.0]), "kv_manager": np.array([8, 0]),
                  "spec_controller": np.array([0]), "tenant_router": np.array([0])})
    single = InferenceGymEnv("static_workload", action_mode="original", episode_windows=3)
    single.reset(seed=0)
    good = dict(batch_cap=300, kv_budget_fraction=0.45, speculation_depth=1, quantization_tier="INT8",
                prefill_decode_split=True, priority_routing=0)
    single.step(good)  # values between the agents' levels are fine in this mode
    for field, bad, fragment in [("batch_cap", 600, "1..512"), ("kv_budget_fraction", 1.5, "0.1..1.0"),
                                 ("quantization_tier", "FP8", "FP16"), ("prefill_decode_split", 2, "0/1"),
                                 ("speculation_depth", np.nan, "speculation_depth")]:
        with pytest.raises(ValueError) as e:
            single.step({**good, field: bad})
        assert field in str(e.value) and fragment in str(e.value)
    with pytest.raises(ValueError, match="missing"):
        single.step({"batch_cap": 4})
    with pytest.raises(ValueError, match="action_mode='dict'"):
        InferenceGymEnv(action_mode="dict")
    with pytest.raises(ValueError, match="task='nope'"):
        serving_v0.parallel_env(task="nope")
    with pytest.raises(ValueError, match="render_mode='human'"):
        serving_v0.parallel_env(render_mode="human")
    env.reset(seed=0)
    for _ in range(3):
        env.step({a: np.zeros(len(AGENT_KNOBS[a].sizes), dtype=np.int64) for a in AGENTS})
    with pytest.raises(RuntimeError, match="reset"):
        env.step({a: np.zeros(len(AGENT_KNOBS[a].sizes), dtype=np.int64) for a in AGENTS})


def test_infos_carry_the_inferencegym_fields_and_original_obs():
    env = InferenceGymEnv("adversarial_multitenant", obs_mode="original", episode_windows=8)
    obs, _ = env.reset(seed=4)
    for _ in range(8):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
    ig = info["inferencegym"]
    m = info["metrics"]
    assert list(ig) == ["queue_depth", "active_requests", "kv_cache_occupancy", "mean_prompt_length", "p50_ttft_ms",
                        "p99_ttft_ms", "p50_itl_ms", "throughput_tps", "slo_compliance_rate", "gpu_memory_used_gb",
                        "estimated_cost_per_1k", "request_arrival_rate", "spec_acceptance_rate", "eviction_events",
                        "step_index"]
    assert obs.tolist() == pytest.approx([ig[k] for k in ig], rel=1e-6)
    assert ig["queue_depth"] == m.queue_depth and ig["eviction_events"] == m.preemptions and ig["step_index"] == 8
    assert ig["throughput_tps"] == pytest.approx(m.throughput_tps) and trunc


def test_docstring_documents_every_feature_and_action():
    from igym_marl.envs.features import observation_doc
    doc = serving_v0.__doc__
    assert observation_doc() in doc  # the tables are the features' own table, verbatim
    for f in SHARED + TENANT + LAST_ACTION + tuple(f for feats in OWN.values() for f in feats):
        assert f.name in doc and f.description in doc
    for section in ("Action Space", "Observation Space", "Rewards", "Starting State", "Episode End", "Arguments",
                    "Version History"):
        assert section in doc


def test_rendering(tmp_path):
    env = serving_v0.parallel_env(task="bursty_workload", render_mode="ansi", episode_windows=10)
    env.reset(seed=0)
    env.step(dict(DEFAULT_ACTIONS))
    text = env.render()
    assert "conversation" in text and "TTFT p99" in text and "batch_cap 256" in text
    env = serving_v0.parallel_env(task="bursty_workload", render_mode="rgb_array", episode_windows=10)
    env.reset(seed=0)
    for _ in range(10):
        env.step(dict(DEFAULT_ACTIONS))
    img = env.render()
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8 and img.std() > 0
    path = save_timeline(env, tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.endswith("t.png")


def test_shaping_is_off_by_default_and_bounded():
    plain = serving_v0.parallel_env(task="adversarial_multitenant", episode_windows=30)
    shaped = serving_v0.parallel_env(task="adversarial_multitenant", episode_windows=30, shaping=True)
    plain.reset(seed=0)
    shaped.reset(seed=0)
    for _ in range(30):
        _, r1, *_ = plain.step(dict(DEFAULT_ACTIONS))
        _, r2, *_ = shaped.step(dict(DEFAULT_ACTIONS))
        assert len(set(r1.values())) == 1
        for a in AGENTS:
            assert -0.1 - 1e-12 <= r2[a] - r1[a] <= 0.0
    assert plain.score == shaped.score


def test_sb3_ppo_improves_over_random():
    """A short Stable-Baselines3 PPO run on the single-agent wrapper beats the random policy."""
    from stable_baselines3 import PPO
    import torch
    torch.manual_seed(0)
    torch.set_num_threads(1)

    def make():
        return InferenceGymEnv("static_workload", episode_windows=40)

    def mean_score(policy, seeds):
        out = []
        for s in seeds:
            env = make()
            obs, _ = env.reset(seed=s)
            done = False
            while not done:
                obs, r, term, trunc, _ = env.step(policy(obs))
                done = term or trunc
            out.append(env.score)
        return float(np.mean(out))

    rng = np.random.default_rng(0)
    rand = mean_score(lambda o: np.array([rng.integers(n) for n in (20, 30, 9, 2)]), range(1_000_000, 1_000_005))
    model = PPO("MlpPolicy", make(), n_steps=400, batch_size=100, n_epochs=5, learning_rate=1e-3, seed=0, verbose=0,
                device="cpu")
    model.learn(total_timesteps=4000)
    learned = mean_score(lambda o: model.predict(o, deterministic=True)[0], range(1_000_000, 1_000_005))
    assert learned > rand + 0.1, (learned, rand)


# --------------------------------------------------------------- misuse gets a clear error (regression cases)
def test_before_reset_errors_and_empty_frames():
    from igym_marl import serving_v0
    env = serving_v0.parallel_env(task="static_workload", render_mode="rgb_array")
    assert env.render().ndim == 3  # an empty frame, not an AttributeError
    assert "no episode yet" in serving_v0.parallel_env(task="static_workload", render_mode="ansi").render()
    with pytest.raises(RuntimeError, match="no episode yet: call reset"):
        env.score
    with pytest.raises(RuntimeError, match="no episode yet: call reset"):
        env.step({a: 0 for a in env.possible_agents})


def test_bad_arguments_are_named():
    from igym_marl import serving_v0
    env = serving_v0.parallel_env(task="static_workload")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="is a sequence; with action_format='discrete'.*multidiscrete"):
        env.step({a: [3] for a in env.possible_agents})
    with pytest.raises(ValueError, match="reward_scale=inf"):
        serving_v0.parallel_env(reward_scale=float("inf"))
    with pytest.raises(ValueError, match="seed=18446744073709551616"):
        env.reset(seed=2**64)
    with pytest.raises(ValueError, match="unknown option.*widnow_s.*window_s.*the env's own arguments"):
        serving_v0.parallel_env(task="static_workload", widnow_s=3)
    with pytest.raises(ValueError, match="window_s=0"):
        serving_v0.parallel_env(task="static_workload", window_s=0)
    with pytest.raises(ValueError, match="episode_windows=0"):
        serving_v0.parallel_env(task="static_workload", episode_windows=0)


def test_rgb_render_of_an_empty_episode_warns_nothing():
    import warnings
    env = serving_v0.parallel_env(task="bursty_workload", render_mode="rgb_array", episode_windows=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "no artists with labels" legend warning was one
        env.reset(seed=0)
        assert env.render().ndim == 3
        env.step(dict(DEFAULT_ACTIONS))
        assert env.render().std() > 0
