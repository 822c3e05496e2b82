"""Host time of the pose features of a batched step: grouped (the pipeline) against one call per world.

A world with pose memory gives the DiT each history frame's pose seen from the new chunk
(`WorldModel._poses`). Worlds reset at different steps keep different numbers of poses, so a
batched env step used to compute the features world by world; on a GPU that was 3 small kernels'
worth of host time per op per world (1.39 s of a 3.2 s profile of 3 steps of 1,024 worlds,
benchmarks/results/env_bench_gpu_recall_ab.md). The pipeline now computes them once per group of
worlds that keep as many poses. This times both on the shipped default world, with worlds started
from 1-9 frames (9 groups), alternating, and checks they agree.

    PYTHONPATH=. python benchmarks/pose_features_host.py [--worlds 1024] [--repeats 5] [--threads 2]

Prints a table and writes benchmarks/results/pose_features_host.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from yume_env.model import pose_memory
from yume_env.model.pipeline import WorldModel

RESULT = Path(__file__).resolve().parent / "results" / "pose_features_host.json"


def per_world(model: WorldModel, states, acts):
    """The reference: what `_poses` computed before grouping, one feature call per world."""
    kept = [s.poses[:, :, 0, 0].T.to(model.device) for s in states]
    last = torch.stack([p[-1] for p in kept])
    new = pose_memory.advance(last, torch.as_tensor(acts, device=model.device), model.frames_per_step)
    return new, [pose_memory.relative_features(p, t) for p, t in zip(kept, new[:, -1])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = WorldModel.from_pretrained(Path(__file__).resolve().parents[1] / "yume_env" / "assets" / "default_world")
    frames = model.start_frames["frames"]
    states = [model.init_state(np.repeat(frames[i % len(frames)][None], 1 + i % 9, 0),
                               np.zeros((i % 9, 2), dtype=np.int64)) for i in range(args.worlds)]
    acts = np.random.default_rng(0).integers(0, 9, (args.worlds, 2))
    ways = {"grouped (WorldModel._poses)": lambda: model._poses(states, acts),
            "one call per world (before)": lambda: per_world(model, states, acts)}
    times = {name: [] for name in ways}
    for _ in range(args.repeats):  # alternating, so a load change hits both alike
        for name, fn in ways.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    (a_new, a_feats), (b_new, b_feats) = (fn() for fn in ways.values())
    agree = torch.equal(a_new, b_new) and all(torch.equal(x, y) for x, y in zip(a_feats, b_feats))
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    groups = len({s.poses.shape[1] for s in states})
    print(f"{args.worlds} worlds in {groups} groups of pose counts, {args.threads} threads, median of {args.repeats}:")
    print("| way | median (ms) |\n|---|---|")
    for name, m in medians.items():
        print(f"| {name} | {m * 1000:.1f} |")
    ratio = medians["one call per world (before)"] / medians["grouped (WorldModel._poses)"]
    print(f"per world / grouped: {ratio:.1f}x; the two agree exactly: {agree}")
    RESULT.write_text(json.dumps({"worlds": args.worlds, "groups": groups, "threads": args.threads,
                                  "repeats": args.repeats, "times_s": times, "median_s": medians,
                                  "ratio": ratio, "agree": agree, "host": platform.processor() or platform.machine(),
                                  "torch": torch.__version__}, indent=1) + "\n")


if __name__ == "__main__":
    main()
