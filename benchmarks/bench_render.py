"""rgb_array rendering speed: a frame at the end of a full episode, drawn in place, against the
baseline of building the timeline figure afresh for that frame, in the same run.

    python benchmarks/bench_render.py [--task adversarial_multitenant] [--frames 20]

Goal: a frame in 50 ms or less, so an episode can be recorded as a video.
"""
from __future__ import annotations

import argparse
import time

from igym_marl import serving_v0
from igym_marl.envs import DEFAULT_ACTIONS
from igym_marl.envs.render import Timeline


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="adversarial_multitenant")
    ap.add_argument("--frames", type=int, default=20)
    args = ap.parse_args(argv)
    env = serving_v0.parallel_env(task=args.task, render_mode="rgb_array")
    env.reset(seed=1_000_000)
    env.render()  # the figure is built once
    while env.agents:
        env.step(dict(DEFAULT_ACTIONS))
    t0 = time.perf_counter()
    for _ in range(args.frames):
        env.render()
    in_place = (time.perf_counter() - t0) / args.frames
    t0 = time.perf_counter()
    for _ in range(max(3, args.frames // 4)):
        tl = Timeline(env.task)
        tl.update(env)
        tl.rgb()
    fresh = (time.perf_counter() - t0) / max(3, args.frames // 4)
    print(f"{args.task}, {env.window} windows: a frame drawn in place {in_place * 1e3:.1f} ms, a fresh figure "
          f"{fresh * 1e3:.1f} ms (ratio {in_place / fresh:.2f}); goal <= 50 ms per frame")


if __name__ == "__main__":
    main()
