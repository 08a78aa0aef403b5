"""Rendering: a text dashboard of the last window, and a timeline figure of the episode so far."""

from __future__ import annotations

import numpy as np

from ..sim.types import KNOB_LEVELS


def ansi_dashboard(env) -> str:
    if not hasattr(env, "keeper"):
        return f"[{env.task.id}] no episode yet: call reset()"
    if not env.history:
        return f"[{env.task.id}] window 0/{env.task.episode_windows}: not started (knobs {env.knobs.as_dict()})"
    h = env.history[-1]
    m, k = h["metrics"], h["knobs"]
    lines = [f"[{env.task.id}] window {h['window']}/{env.task.episode_windows}  t={m.clock_s:7.1f} s  "
             f"score so far {env.score:.4f}",
             f"  arrivals {m.arrival_rate_rps:6.2f} req/s  queue {m.queue_depth:5d}  running {m.running:4d}  "
             f"KV {100 * m.kv_occupancy:5.1f} %  mem {m.gpu_memory_used_gb:5.1f} GB  preempt {m.preemptions:3d}  "
             f"tput {m.throughput_tps:7.0f} tok/s"]
    for tenant, t in zip(env.task.tenants, m.tenants):
        lines.append(f"  {t.name:<12} TTFT p99 {t.latency.ttft_p99_ms:8.0f} ms (SLO {tenant.ttft_slo_ms:.0f})  "
                     f"TPOT p99 {t.latency.tpot_p99_ms:6.1f} ms (SLO {tenant.tpot_slo_ms:.0f})  "
                     f"met {t.slo_met:4d} missed {t.slo_missed:4d}  queue {t.queue_depth:5d}")
    lines.append(f"  knobs: batch_cap {k.batch_cap} split {int(k.prefill_decode_split)} | kv {k.kv_budget_fraction} "
                 f"{k.quantization_tier} | speculation {k.speculation_depth} | priority {int(k.priority_routing)}")
    return "\n".join(lines)


TIERS = KNOB_LEVELS["quantization_tier"]


class Timeline:
    """The timeline of an episode: built once, then updated in place at every render, so a frame
    costs a redraw, not a new figure (recording a video of an episode is practical).

    Panels, each in real units: arrivals per tenant against capacity, and the queue; p99 TTFT and
    p99 TPOT of each tenant over its SLO (log); KV occupancy and budget, and preemptions; the batch
    cap (log) and speculation depth; the quantization tier, chunked prefill and priority routing;
    the score earned in each window and the running score."""

    def __init__(self, task, dpi: int = 80, animated: bool = True):
        import matplotlib
        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        self.task = task
        self.animated = animated  # frames for rgb_array: fixed axes, only the data redrawn (blitting)
        self._background = None
        self.fig = Figure(figsize=(10, 11), dpi=dpi)
        self.canvas = FigureCanvasAgg(self.fig)
        ax = self.fig.subplots(7, 1, sharex=True)
        self.ax = ax
        names = [t.name for t in task.tenants]
        lines = {}

        def line(a, key, label, **kw):
            (lines[key],) = a.plot([], [], label=label, animated=animated, **kw)

        for i, n in enumerate(names):
            line(ax[0], f"arr{i}", f"{n} arrivals (req/s)")
        line(ax[0], "queue", "queue / 10", color="black", lw=0.8)
        ax[0].axhline(task.capacity_rps, color="grey", ls=":", label="capacity (req/s)")
        for i, n in enumerate(names):
            line(ax[1], f"ttft{i}", n)
            line(ax[2], f"tpot{i}", n)
        for a in (ax[1], ax[2]):
            a.axhline(1.0, color="red", ls="--", lw=1, label="SLO")
            a.set_yscale("log")
            a.set_ylim(0.02, 200)
        line(ax[3], "occ", "KV occupancy (of budget)")
        line(ax[3], "budget", "KV budget (of pool)", drawstyle="steps-post")
        line(ax[3], "pre", "preemptions / 50", drawstyle="steps-post", color="red", alpha=0.6)
        ax[3].set_ylim(0, 1.05)
        line(ax[4], "batch", "batch_cap", drawstyle="steps-post")
        ax[4].set_yscale("log", base=2)
        ax[4].set_ylim(0.8, 640)
        ax[4].set_yticks([1, 4, 16, 64, 256, 512], ["1", "4", "16", "64", "256", "512"])
        self.ax_depth = ax[4].twinx()
        (lines["depth"],) = self.ax_depth.plot([], [], drawstyle="steps-post", color="C1", label="speculation depth (right)",
                                             animated=animated)
        self.ax_depth.set_ylim(-0.5, 8.5)
        line(ax[5], "tier", "quantization tier", drawstyle="steps-post")
        line(ax[5], "split", "chunked prefill", drawstyle="steps-post")
        line(ax[5], "prio", "priority routing", drawstyle="steps-post")
        ax[5].set_ylim(-0.5, 6.5)
        ax[5].set_yticks(range(7), [*TIERS, "prefill-first", "chunked", "FCFS", "priority"])
        line(ax[6], "reward", "score earned in the window (x100)", drawstyle="steps-post")
        self.ax_cum = ax[6].twinx()
        (lines["cum"],) = self.ax_cum.plot([], [], color="C1", label="running score (right)", animated=animated)
        self.ax_cum.set_ylim(0, 1)
        self.lines = lines
        titles = ["traffic", "p99 TTFT / SLO", "p99 TPOT / SLO", "KV cache", "batch_scheduler, spec_controller",
                  "kv_manager tier, batch_scheduler chunking, tenant_router", "score"]
        for a, t in zip(ax, titles):
            a.set_title(t, fontsize=9, loc="left")
        for a in (ax[0], ax[1], ax[2], ax[3], ax[5]):
            a.legend(fontsize=7, loc="upper right", ncol=4)
        handles = ax[4].get_legend_handles_labels()[0] + self.ax_depth.get_legend_handles_labels()[0]
        ax[4].legend(handles, [h.get_label() for h in handles], fontsize=7, loc="upper right", ncol=2)
        handles = ax[6].get_legend_handles_labels()[0] + self.ax_cum.get_legend_handles_labels()[0]
        ax[6].legend(handles, [h.get_label() for h in handles], fontsize=7, loc="upper left", ncol=2)
        ax[-1].set_xlim(0, task.horizon_s)
        ax[-1].set_xlabel("simulated time (s)")
        self.title = self.fig.suptitle(" ", fontsize=10, animated=animated)
        # fixed ranges, so that a frame only redraws the data
        self.ax[0].set_ylim(0, 3.2 * task.capacity_rps)
        self.ax[6].set_ylim(0, 300.0 / task.episode_windows)
        self.fig.tight_layout()

    def update(self, env) -> None:
        hist = env.history
        x = np.array([h["window"] * env.task.window_s for h in hist], dtype=float)
        ms = [h["metrics"] for h in hist]
        ks = [h["knobs"] for h in hist]
        L = self.lines
        nan = float("nan")
        for i, tenant in enumerate(self.task.tenants):
            L[f"arr{i}"].set_data(x, [m.tenants[i].arrived / m.seconds for m in ms])
            L[f"ttft{i}"].set_data(x, [m.tenants[i].latency.ttft_p99_ms / tenant.ttft_slo_ms for m in ms])
            L[f"tpot{i}"].set_data(x, [m.tenants[i].latency.tpot_p99_ms / tenant.tpot_slo_ms for m in ms])
        L["queue"].set_data(x, [m.queue_depth / 10.0 for m in ms])
        L["occ"].set_data(x, [m.kv_occupancy for m in ms])
        L["budget"].set_data(x, [k.kv_budget_fraction for k in ks])
        L["pre"].set_data(x, [min(m.preemptions, 50) / 50.0 for m in ms])
        L["batch"].set_data(x, [k.batch_cap for k in ks])
        L["depth"].set_data(x, [k.speculation_depth for k in ks])
        L["tier"].set_data(x, [TIERS.index(k.quantization_tier) for k in ks])
        L["split"].set_data(x, [3 + k.prefill_decode_split for k in ks])
        L["prio"].set_data(x, [5 + k.priority_routing for k in ks])
        rewards = np.array([h["reward"] for h in hist]) if hist else np.zeros(0)
        L["reward"].set_data(x, 100.0 * rewards)
        L["cum"].set_data(x, np.cumsum(rewards))
        seed = getattr(env, "episode_seed", "?")
        self.title.set_text(f"{self.task.id}, seed {seed}, window {env.window}/{self.task.episode_windows}: "
                            f"score {env.score if hist else nan:.3f}")

    def rgb(self) -> np.ndarray:
        if not self.animated:
            self.canvas.draw()
        else:
            if self._background is None:  # axes, ticks and legends: drawn once
                self.canvas.draw()
                self._background = self.canvas.copy_from_bbox(self.fig.bbox)
            self.canvas.restore_region(self._background)
            for line in self.lines.values():
                line.axes.draw_artist(line)
            self.fig.draw_artist(self.title)
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()


def timeline_figure(env):
    """A matplotlib Figure of the episode so far (see Timeline)."""
    t = Timeline(env.task, dpi=110, animated=False)
    t.update(env)
    return t.fig


def timeline_rgb(env) -> np.ndarray:
    """The timeline as an RGB array; the figure is kept on the env and updated in place."""
    t = getattr(env, "_timeline", None)
    if t is None or t.task is not env.task:
        t = env._timeline = Timeline(env.task)
    t.update(env)
    return t.rgb()


def save_timeline(env, path) -> str:
    """Save the episode timeline of `env` (a ServingParallelEnv or the single-agent wrapper) to PNG."""
    env = getattr(env, "parallel_env", env)
    fig = timeline_figure(env)
    fig.savefig(path, dpi=110)
    return str(path)


def cluster_timeline_figure(env):
    """A cluster episode's timeline from ``env.history``: offered load against the fleet's
    capacity and the replicas up (active, starting, draining); p99 TTFT of each tenant over its
    SLO (the worst replica of the window); GPU cost per window and the running score."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    h = env.history
    task = env.task
    x = np.array([e["window"] * task.window_s / 60.0 for e in h])
    fig = Figure(figsize=(10, 8), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.subplots(4, 1, sharex=True)
    arrivals = np.array([sum(map(sum, e["cluster"].routed)) / task.window_s for e in h])
    ax[0].plot(x, arrivals, label="arrivals (req/s)")
    ax[0].axhline(task.capacity_rps, color="grey", ls=":", label=f"fleet capacity ({task.replicas} replicas)")
    ax[0].set_ylabel("req/s")
    ax[0].legend(loc="upper right", fontsize=8)
    for state, color in (("active", "C2"), ("starting", "C1"), ("draining", "C3")):
        ax[1].plot(x, [sum(s == state for s in e["cluster"].states) for e in h], drawstyle="steps-post",
                   color=color, label=state)
    ax[1].plot(x, [e["target"] for e in h], drawstyle="steps-post", color="black", ls="--", lw=0.8, label="target")
    ax[1].set_ylabel("replicas")
    ax[1].set_ylim(-0.2, task.replicas + 0.5)
    ax[1].legend(loc="upper right", fontsize=8, ncol=4)
    for i, t in enumerate(task.tenants):
        worst = []
        for e in h:
            v = [m.tenants[i].latency.ttft_p99_ms for m in e["cluster"].replicas]
            v = [u for u in v if u == u]
            worst.append(max(v) / t.ttft_slo_ms if v else np.nan)
        ax[2].plot(x, worst, label=t.name)
    ax[2].axhline(1.0, color="red", ls="--", lw=1, label="SLO")
    ax[2].set_yscale("log")
    ax[2].set_ylabel("p99 TTFT / SLO")
    ax[2].legend(loc="upper right", fontsize=8, ncol=4)
    ax[3].plot(x, [e["cluster"].billed_usd * 3600.0 / task.window_s for e in h], drawstyle="steps-post",
               label="GPU cost ($/h)")
    ax[3].set_ylabel("$/h")
    ax3 = ax[3].twinx()
    ax3.plot(x, np.cumsum([e["reward"] for e in h]), color="C1", label="score so far")
    ax3.set_ylabel("score")
    ax[3].legend(loc="upper left", fontsize=8)
    ax3.legend(loc="lower right", fontsize=8)
    ax[-1].set_xlabel("minutes")
    fig.suptitle(f"{task.id}: score {env.score:.3f}")
    fig.tight_layout()
    return fig


def cluster_timeline_rgb(env) -> np.ndarray:
    fig = cluster_timeline_figure(env)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
