"""Cluster mode's bar: search the best constant, tune the HPA rule, and evaluate every baseline.

    python scripts/cluster_baselines.py --search                 # best constants -> igym_marl/agents/data/cluster_best_constant.json
    python scripts/cluster_baselines.py --episodes 10            # held-out table -> runs/cluster/results.{md,json}

The best constant (knobs x routing rule x N, successive halving on training seeds) and the HPA
threshold (target outstanding requests per replica, best of a grid on training seeds) are cached
in igym_marl/agents/data/cluster_best_constant.json. Evaluation plays random, vllm-default (every replica,
least outstanding), the deployed routers at vLLM's default knobs (rule:round_robin,
rule:prefix_affinity, rule:scored:0.43: llm-d's default profile), best-constant, hpa (beside the
best constant's rule) and oracle on held-out seeds and reports means with 95 %
bootstrap CIs, the adaptivity gap (oracle - best constant) / best constant and each baseline's
share of the headroom. docs/cluster.md holds the tables this writes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from igym_marl.agents.cluster.baselines import (RandomCluster, ClusterPolicy, CLUSTER_CACHE, ClusterConstant, ClusterOracle, HPAPolicy, cluster_baseline,
                            load_cluster_cache, run_cluster_episode, search_cluster_constant)
from igym_marl.agents.analysis.stats import adaptivity_gap, bootstrap_ci, headroom, label
from igym_marl.envs.cluster import ROUTER_RULES
from igym_marl.sim.types import VLLM_DEFAULT
from igym_marl.workloads.cluster_tasks import CLUSTER_TASK_IDS
from igym_marl.workloads.tasks import EVAL_SEEDS, TRAIN_SEEDS

HPA_GRID = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)  # conversations of 12k-token prompts hold few requests at once
FIXED_RULES = ("round_robin", "prefix_affinity", "scored:0.43")


def search(tasks, log=print) -> None:
    for task in tasks:
        t0 = time.time()
        best, ranked = search_cluster_constant(task, log=log)
        hpa = []
        for target in HPA_GRID:
            s = np.mean([run_cluster_episode(HPAPolicy(best.knobs, target, rule=best.rule), task, seed)["score"]
                         for seed in TRAIN_SEEDS[:4]])
            hpa.append((float(s), target))
            log(f"{task}: hpa target_outstanding {target:g}: {s:.3f}")
        data = load_cluster_cache(for_update=True)  # re-read: another task's search may have written meanwhile
        data[task] = {"knobs": best.knobs.as_dict(), "rule": best.rule, "target": best.target,
                      "ranked": [{"score": s, "describe": c.describe()} for s, c in ranked],
                      "hpa_target_outstanding": max(hpa)[1], "hpa_rule": best.rule, "hpa_grid": hpa,
                      "seconds": time.time() - t0}
        CLUSTER_CACHE.write_text(json.dumps(data, indent=1) + "\n")
        log(f"{task}: wrote {CLUSTER_CACHE}")


CLUSTER_POLICIES = ("random", "vllm-default", *(f"rule:{r}" for r in FIXED_RULES), "best-constant", "hpa", "oracle",
                    "mappo")


def make_cluster_policy(name: str, task: str, checkpoint=None, replicas: int | None = None, **_) -> ClusterPolicy:
    """A cluster policy by name (the cluster counterpart of ``igym_marl.agents.make_policy``):
    random, vllm-default, rule:RULE (every replica up at vLLM's default knobs behind that router:
    round robin, vLLM router / SGLang cache-aware prefix_affinity, llm-d's default scoring profile
    scored:0.43), best-constant, hpa, oracle, or mappo (``checkpoint``, default the shipped one).
    With `replicas`, the best constant keeps its knobs and rule with every replica up."""
    if name == "random":
        return RandomCluster()
    if name == "vllm-default":
        return ClusterConstant(VLLM_DEFAULT, "least_outstanding", None, name="vllm-default")
    if name.startswith("rule:"):
        rule = name.split(":", 1)[1]
        if rule not in ROUTER_RULES:
            raise ValueError(f"policy={name!r}: rule {rule!r} is unknown; allowed: {', '.join(ROUTER_RULES)}")
        return ClusterConstant(VLLM_DEFAULT, rule, None, name=name)
    if name in ("best-constant", "oracle"):
        best = cluster_baseline(task, "best-constant")
        if name == "oracle":
            return ClusterOracle(best.knobs, best.rule, best.target)
        return best if replicas is None else ClusterConstant(best.knobs, best.rule, None, name="best-constant")
    if name == "hpa":
        return cluster_baseline(task, "hpa")
    if name == "mappo":
        from igym_marl.agents.cluster.learner import ClusterLearned
        from igym_marl.agents.policies.learned import resolve
        return ClusterLearned(resolve(checkpoint, "mappo", task))
    raise ValueError(f"policy={name!r} is unknown for a cluster task; allowed: {', '.join(CLUSTER_POLICIES)} "
                     f"(rule: takes {', '.join(ROUTER_RULES)})")


def policies(task: str, checkpoints=(), replicas: int | None = None) -> dict:
    out = {n: make_cluster_policy(n, task, replicas=replicas) for n in CLUSTER_POLICIES if n != "mappo"}
    for ck in checkpoints:  # trained cluster MAPPO (train_marl.py --task cluster_*)
        out[f"mappo ({Path(ck).parent.name})"] = make_cluster_policy("mappo", task, checkpoint=ck)
    return out


def evaluate(tasks, episodes: int, out: Path, agents=None, checkpoints=(), replicas=None, log=print) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    records = []
    kw = {} if replicas is None else {"replicas": replicas}
    for task in tasks:
        for name, pol in policies(task, checkpoints, replicas).items():
            if agents and name not in agents and not name.startswith("mappo"):
                continue
            for k in range(episodes):
                seed = EVAL_SEEDS[k]
                t0 = time.time()
                r = run_cluster_episode(pol, task, seed, **kw)
                records.append({"task": task, "agent": name, "seed": seed, "score": r["score"], "goodput": r["goodput"],
                                "gpu_share": r["gpu_share"], "ttft_attainment": r["ttft_attainment"],
                                "ttft_p50_ms": r["ttft_p50_ms"],
                                "prefix_hit_rate": r["prefix_hit_rate"], "seconds": time.time() - t0})
                log(f"{task} {name} seed {seed}: {r['score']:.3f} (goodput {r['goodput']:.3f}, "
                    f"GPU share {r['gpu_share']:.3f}) {time.time() - t0:.1f} s")
            (out / "results.json").write_text(json.dumps(records, indent=1) + "\n")
    (out / "results.md").write_text(markdown(records))
    log(f"wrote {out / 'results.md'}")
    return records


def _median_ms(rs: list[dict]) -> str:
    """The mean over episodes of each episode's median TTFT (older records lack it: blank)."""
    xs = [r["ttft_p50_ms"] for r in rs if "ttft_p50_ms" in r]
    return f"{np.mean(xs):,.0f}" if xs else ""


def _mean(rs: list[dict], key: str) -> str:
    xs = [r[key] for r in rs if key in r and r[key] == r[key]]
    return f"{np.mean(xs):.3f}" if xs else "n/a"


def _paired(rows: list[dict], a: str, b: str, key: str = "score") -> str | None:
    """Mean paired difference a - b over their common seeds, with its 95 % bootstrap CI."""
    va = {r["seed"]: r[key] for r in rows if r["agent"] == a and key in r}
    vb = {r["seed"]: r[key] for r in rows if r["agent"] == b and key in r}
    seeds = sorted(set(va) & set(vb))
    if not seeds:
        return None
    d = [va[s] - vb[s] for s in seeds]
    lo, hi = bootstrap_ci([d])
    f = "+,.0f" if key.endswith("_ms") else "+.3f"
    return f"{np.mean(d):{f}} [{lo:{f}}, {hi:{f}}] over {len(seeds)} paired episodes"


def markdown(records: list[dict]) -> str:
    lines = []
    share = {(h["agent"], h["task"]): h for h in headroom(records)}
    for task in dict.fromkeys(r["task"] for r in records):
        rows = [r for r in records if r["task"] == task]
        by = {a: [r for r in rows if r["agent"] == a] for a in dict.fromkeys(r["agent"] for r in rows)}
        lines += [f"### {task}", "", "| agent | score [95 % CI] | goodput | GPU share | TTFT attainment | TTFT p50 (ms) | "
                                     "prefix hit rate | share of headroom [95 % CI] |",
                  "|---|---|---|---|---|---|---|---|"]
        for a, rs in by.items():
            xs = [r["score"] for r in rs]
            lo, hi = bootstrap_ci([xs])
            h = share.get((a, task))
            head = "" if h is None or h["headroom"] != h["headroom"] else \
                f"{100 * h['headroom']:.0f} % [{100 * h['ci_low']:.0f}, {100 * h['ci_high']:.0f}]"
            lines.append(f"| {label(a)} | {np.mean(xs):.3f} [{lo:.3f}, {hi:.3f}] | "
                         f"{np.mean([r['goodput'] for r in rs]):.3f} | {np.mean([r['gpu_share'] for r in rs]):.3f} | "
                         f"{_mean(rs, 'ttft_attainment')} | {_median_ms(rs)} | {_mean(rs, 'prefix_hit_rate')} | "
                         f"{head} |")
        if "best-constant" in by and "oracle" in by:
            seeds = sorted({r["seed"] for r in by["best-constant"]} & {r["seed"] for r in by["oracle"]})
            score = {(r["agent"], r["seed"]): r["score"] for r in rows}
            gap, g_lo, g_hi = adaptivity_gap([score["best-constant", s] for s in seeds], [score["oracle", s] for s in seeds])
            lines += ["", f"Adaptivity gap (oracle - best constant) / best constant over {len(seeds)} held-out "
                          f"episodes: **{100 * gap:.0f} %** [95 % CI {100 * g_lo:.0f}, {100 * g_hi:.0f}]"]
        pairs = [("rule:prefix_affinity", "vllm-default", "ttft_attainment"), ("rule:prefix_affinity", "vllm-default", "ttft_p50_ms"),
                 ("rule:prefix_affinity", "vllm-default", "score")]
        pairs += [(a, "best-constant", "score") for a in by if a.startswith("mappo")]
        for a, b, key in pairs:
            d = _paired(rows, a, b, key) if a in by and b in by else None
            if d:
                lines += ["", f"Paired {key}, {a} - {b}: {d}"]
        lines += ["", "\\* a clairvoyant reference that sees the future traffic, not a policy.", ""]
    return "\n".join(lines)


def curves(runs: list[Path], out: Path, log=print) -> None:
    """Held-out evaluation score against training steps of cluster MAPPO runs (their eval.csv and
    args.json, as train_marl.py writes them), beside the held-out baselines of their task and N when
    runs/cluster_<task>[_n<N>]/results.json has them."""
    import csv

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 3.6), squeeze=False)
    for ax, run in zip(axes[0], runs):
        rows = list(csv.DictReader(open(run / "eval.csv")))
        settings = json.loads((run / "args.json").read_text())
        task, n = settings["task"], settings["replicas"]
        ax.plot([int(r["step"]) for r in rows], [float(r["eval_score_mean"]) for r in rows], "o-",
                label="MAPPO (held-out seeds)")
        res = Path("runs") / (f"cluster_{task.split('_', 1)[1]}" + ("" if n == 4 else f"_n{n}")) / "results.json"
        if res.exists():
            recs = json.loads(res.read_text())
            for agent, style in (("best-constant", "--"), ("hpa", ":"), ("oracle", "-.")):
                xs = [r["score"] for r in recs if r["agent"] == agent]
                if xs:
                    ax.axhline(np.mean(xs), ls=style, color="grey", label=f"{agent} (held-out)")
        ax.set_title(f"{task}, N={n}")
        ax.set_xlabel("training steps (windows)")
        ax.set_ylabel("score")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out)
    log(f"wrote {out}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default=",".join(CLUSTER_TASK_IDS), help="comma-separated cluster tasks")
    p.add_argument("--search", action="store_true", help="search the best constants and the HPA threshold first")
    p.add_argument("--episodes", type=int, default=0, help="held-out episodes per agent and task (0: no evaluation)")
    p.add_argument("--agents", default="", help="comma-separated subset of random, vllm-default, rule:round_robin, "
                                                 "rule:prefix_affinity, rule:scored:0.43, best-constant, hpa, oracle")
    p.add_argument("--replicas", type=int, default=None,
                   help="evaluate at this N (the best constant keeps its knobs and rule with every replica up)")
    p.add_argument("--checkpoint", action="append", default=[], type=Path,
                   help="a cluster MAPPO checkpoint to evaluate too (repeatable)")
    p.add_argument("--curves", nargs="*", type=Path, default=None,
                   help="cluster MAPPO run folders to plot (writes docs/img/cluster_learning.png)")
    p.add_argument("--out", type=Path, default=Path("runs") / "cluster")
    args = p.parse_args(argv)
    tasks = [t for t in args.task.split(",") if t]
    bad = [t for t in tasks if t not in CLUSTER_TASK_IDS]
    if bad:
        p.error(f"--task {bad[0]!r}: allowed {', '.join(CLUSTER_TASK_IDS)}")
    if args.episodes < 0:
        p.error(f"--episodes {args.episodes}: must be >= 0")
    agents = [a for a in args.agents.split(",") if a]
    if args.curves:
        curves(args.curves, Path("docs") / "img" / "cluster_learning.png")
        return 0
    if args.search:
        search(tasks)
    if args.episodes:
        for ck in args.checkpoint:
            if not ck.exists():
                p.error(f"--checkpoint {ck}: no such file")
        if args.replicas is not None and not 1 <= args.replicas <= 64:
            p.error(f"--replicas {args.replicas}: allowed 1..64")
        evaluate(tasks, args.episodes, args.out, agents, args.checkpoint, args.replicas)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
