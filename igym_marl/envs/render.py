"""Rendering: a text dashboard of the last window, and a timeline figure of the episode so far."""

from __future__ import annotations

import numpy as np

from .actions import AGENTS


def ansi_dashboard(env) -> str:
    if not env.history:
        return f"[{env.task.id}] window 0/{env.task.episode_windows}: not started (knobs {env.knobs.as_dict()})"
    h = env.history[-1]
    m, k = h["metrics"], h["knobs"]
    lines = [f"[{env.task.id}] window {h['window']}/{env.task.episode_windows}  t={m.clock_s:7.1f} s  "
             f"score so far {env.score:.4f}",
             f"  arrivals {m.arrival_rate_rps:6.2f} req/s  queue {m.queue_depth:5d}  running {m.running:4d}  "
             f"KV {100 * m.kv_occupancy:5.1f} %  mem {m.gpu_memory_used_gb:5.1f} GB  preempt {m.preemptions:3d}  "
             f"tput {m.throughput_tps:7.0f} tok/s"]
    for spec, t in zip(env.task.tenants, m.tenants):
        lines.append(f"  {t.name:<12} TTFT p99 {t.latency.ttft_p99_ms:8.0f} ms (SLO {spec.ttft_slo_ms:.0f})  "
                     f"TPOT p99 {t.latency.tpot_p99_ms:6.1f} ms (SLO {spec.tpot_slo_ms:.0f})  "
                     f"met {t.slo_met:4d} missed {t.slo_missed:4d}  queue {t.queue_depth:5d}")
    lines.append(f"  knobs: batch_cap {k.batch_cap} split {int(k.prefill_decode_split)} | kv {k.kv_budget_fraction} "
                 f"{k.quantization_tier} | spec {k.speculation_depth} | priority {int(k.priority_routing)}")
    return "\n".join(lines)


def timeline_figure(env):
    """A matplotlib Figure of the episode so far: arrivals and queues, TTFT p99 against each
    tenant's SLO, KV occupancy and preemptions, and every agent's actions."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    hist = env.history
    w = np.array([h["window"] for h in hist]) * env.task.window_s
    fig, ax = plt.subplots(4, 1, figsize=(10, 9), sharex=True)
    if hist:
        ms = [h["metrics"] for h in hist]
        ax[0].plot(w, [m.arrival_rate_rps for m in ms], label="arrivals (req/s)")
        ax[0].plot(w, [m.queue_depth / 10.0 for m in ms], label="queue / 10")
        ax[0].axhline(env.task.capacity_rps, color="grey", ls=":", label="capacity")
        for i, spec in enumerate(env.task.tenants):
            y = [m.tenants[i].latency.ttft_p99_ms / spec.ttft_slo_ms for m in ms]
            ax[1].semilogy(w, y, label=f"{spec.name} TTFT p99 / SLO")
        ax[1].axhline(1.0, color="red", ls="--", lw=1)
        ax[2].plot(w, [m.kv_occupancy for m in ms], label="KV occupancy")
        ax[2].bar(w, [min(m.preemptions, 50) / 50.0 for m in ms], width=env.task.window_s * 0.8, alpha=0.4,
                  color="red", label="preemptions / 50")
        ks = [h["knobs"] for h in hist]
        ax[3].step(w, [np.log2(k.batch_cap) / 9 for k in ks], where="post", label="batch_cap (log2 / 9)")
        ax[3].step(w, [k.kv_budget_fraction for k in ks], where="post", label="kv budget")
        ax[3].step(w, [k.speculation_depth / 8 for k in ks], where="post", label="spec depth / 8")
        ax[3].step(w, [{"FP16": 0, "INT8": 0.5, "INT4": 1}[k.quantization_tier] for k in ks], where="post",
                   label="tier (FP16 0, INT4 1)")
        ax[3].step(w, [0.05 + 0.9 * k.priority_routing for k in ks], where="post", ls=":", label="priority")
        ax[3].step(w, [0.1 + 0.8 * k.prefill_decode_split for k in ks], where="post", ls="--", label="chunked")
    titles = ["traffic", "TTFT p99 relative to SLO (log)", "memory", f"actions of {', '.join(AGENTS)}"]
    for a, t in zip(ax, titles):
        a.set_title(t, fontsize=9, loc="left")
        a.legend(fontsize=7, loc="upper right", ncol=3)
    ax[-1].set_xlabel("simulated time (s)")
    fig.suptitle(f"{env.task.id}, seed {getattr(env, 'episode_seed', '?')}: score {env.score:.3f}", fontsize=10)
    fig.tight_layout()
    return fig


def timeline_rgb(env) -> np.ndarray:
    import matplotlib.pyplot as plt
    fig = timeline_figure(env)
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return img


def save_timeline(env, path) -> str:
    """Save the episode timeline of `env` (a ServingParallelEnv or the single-agent wrapper) to PNG."""
    import matplotlib.pyplot as plt
    env = getattr(env, "parallel_env", env)
    fig = timeline_figure(env)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
