"""The score keeper's per-tenant accounts: they add up to the episode's, and copies keep apart."""

import dataclasses

from igym_marl import serving_v0
from igym_marl.envs import DEFAULT_ACTIONS


def test_tenant_accounts_sum_to_the_episode_and_a_copy_keeps_its_own():
    env = serving_v0.parallel_env(task="adversarial_multitenant", episode_windows=30)
    env.reset(seed=1_000_003)
    copy = None
    while env.agents:
        env.step(dict(DEFAULT_ACTIONS))
        if env.window == 10:
            copy = dataclasses.replace(env.keeper)
            frozen = copy.tenant_met
    k = env.keeper
    assert len(k.tenant_offered) == len(k.tenant_met) == 3
    assert abs(sum(k.tenant_offered) - k.offered_value) < 1e-6 * k.offered_value
    assert abs(sum(k.tenant_met) - k.met_value) < 1e-6 * max(k.met_value, 1.0)
    assert sum(k.tenant_met) > sum(frozen) and copy.tenant_met == frozen  # the copy did not move with the env
    assert all(s is None or 0.0 <= s <= 1.0 for s in k.tenant_shares())


def test_cluster_tenant_accounts_sum_over_the_fleet_to_the_episode():
    from igym_marl.agents.cluster.evaluate import make_cluster_policy
    from igym_marl.envs.cluster import ServingClusterEnv
    env = ServingClusterEnv("cluster_bursty", episode_windows=20)
    env.reset(seed=1_000_004)
    policy = make_cluster_policy("hpa", "cluster_bursty")
    policy.reset(env.task, 1_000_004)
    policy.attach(env)
    while env.agents:
        env.step(policy.act(env.last_obs, {}))
    k = env.keeper
    assert len(k.tenant_offered) == len(k.tenant_met) == 3
    assert abs(sum(k.tenant_offered) - k.offered_value) < 1e-6 * k.offered_value
    assert k.met_value > 0 and abs(sum(k.tenant_met) - k.met_value) < 1e-6 * k.met_value
    shares = k.tenant_shares()
    assert all(s is None or 0.0 <= s <= 1.0 for s in shares)
    # the tenants' shares, weighted by what each offers, make the episode's goodput
    good = sum(s * off for s, off in zip(shares, k.tenant_offered) if s is not None) / k.offered_value
    assert abs(good - k.components()["goodput"]) < 1e-9
