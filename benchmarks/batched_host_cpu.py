"""Host-side cost of a batched world step and of resets, on a CPU, with a model too small to hide it.

    PYTHONPATH=. python benchmarks/batched_host_cpu.py [--worlds 64 256 1024] [--steps 3] [--json PATH]

A `pixel`-preset world shrunk to dim 32, one block and 32x32 frames (random weights) leaves almost only the
bookkeeping of B worlds: history gathers, grouping by history length, memory sums, recall banks.
Per batch size: seconds per batched step once every world is past the schedule's warm-up, its
torch op count, and seconds to reset every world one by one (`WorldBatch.reset_world`, what an
autoreset does); 2 torch threads. Prints a markdown table; writes JSON beside it (`.md` too).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

THREADS = 2
WARMUP_STEPS = 20  # the tiny-recall layouts stop changing after 17 steps: time the steady state


def _small_world():
    from yume_env.model import WorldModelConfig
    from yume_env.model.bench import random_world

    return random_world(
        WorldModelConfig.preset("pixel").replace(
            dim=32, ffn_dim=64, num_layers=1, num_heads=1, memory_head_dim=16, height=32, width=32
        )
    )


def measure(model, worlds: int, steps: int) -> dict:
    from yume_env.env.core import WorldBatch
    from yume_env.env.options import ResetOptions
    from yume_env.env.rewards import NoReward
    from yume_env.model.bench import CountOps
    from yume_env.model.noise import WorldNoise

    H, W = model.frame_size
    start = np.random.default_rng(0).integers(0, 256, size=(1, H, W, 3), dtype=np.uint8)
    state = model.join_states([model.init_state(start) for _ in range(worlds)])
    noise = WorldNoise(list(range(worlds)))
    actions = torch.zeros(worlds, 2, dtype=torch.long)
    for _ in range(WARMUP_STEPS):
        model.step(state, actions, noise)
    t = time.perf_counter()
    for _ in range(steps):
        model.step(state, actions, noise)
    step_s = (time.perf_counter() - t) / steps
    with CountOps() as ops:
        model.step(state, actions, noise)
    batch = WorldBatch(model, worlds, NoReward())
    rng = np.random.default_rng(0)
    image = ResetOptions(image=start[0])
    for i in range(worlds):
        batch.reset_world(i, rng, image)
    batch.state = state  # every world past its warm-up, as in a long run
    t = time.perf_counter()
    for i in range(worlds):
        batch.reset_world(i, rng, image)
    reset_s = time.perf_counter() - t
    return {
        "worlds": worlds,
        "step_s": round(step_s, 4),
        "torch_ops_per_step": ops.count,
        "reset_all_s": round(reset_s, 4),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worlds", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--steps", type=int, default=3, help="timed steps per batch size")
    p.add_argument("--json", default="benchmarks/results/batched_host_cpu.json")
    args = p.parse_args(argv)
    torch.set_num_threads(THREADS)
    model = _small_world()
    rows = [measure(model, n, args.steps) for n in args.worlds]
    result = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "model": "pixel preset at dim 32, 1 block, 32x32 frames, random weights",
        "rows": rows,
    }
    lines = [
        "# Batched world step and resets on a CPU (host-side cost)",
        "",
        f"{result['machine']}; {result['model']}. `PYTHONPATH=. python benchmarks/batched_host_cpu.py`",
        "",
        "| worlds | s per batched step | torch ops per step | s to reset every world one by one |",
        "|---|---|---|---|",
        *[f"| {r['worlds']} | {r['step_s']} | {r['torch_ops_per_step']} | {r['reset_all_s']} |" for r in rows],
    ]
    print("\n".join(lines))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return result


if __name__ == "__main__":
    main()
