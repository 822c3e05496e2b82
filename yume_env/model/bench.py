"""Times `WorldModel.step` (one env step: history encode + sampler DiT passes + memory + decode).

    python -m yume_env.model.bench                      # tiny preset, random weights, CPU
    python -m yume_env.model.bench --model PATH --threads 2 --steps 200 --worlds 4 --json out.json

Reports warm-up separately, then the median (and 90th percentile) wall time per step over the
measured steps, the process CPU time per step (a fairer number on a shared, oversubscribed
machine), the per-phase medians from `StepOutput.timings`, and the memory stats at the end.
Random-weight models use a stand-in text encoder with MiniLM's shape (text encoding is cached and
not part of a step), so the benchmark needs no text model.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from tqdm import tqdm

from yume_env.model.config import WorldModelConfig, parse_assignment
from yume_env.model.noise import WorldNoise
from yume_env.model.pipeline import WorldModel
from yume_env.model.text import TextEmbedding, TextEncoder
from yume_env.model.text_cache import TextConditioner


class CountOps(TorchDispatchMode):
    """Counts the torch ops run under it (`with CountOps() as ops: ...; ops.count`): on a GPU each
    one is host work, most of them a kernel launch."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


class _HashEncoder(TextEncoder):
    """Stand-in with the config's name and width: deterministic vectors, no weights to load."""

    tokens_per_text = 1

    def __init__(self, name: str, dim: int):
        self.name, self.model_id, self.dim = name, f"bench/{name}", dim

    def encode(self, texts: list[str]) -> TextEmbedding:
        g = torch.Generator().manual_seed(len(texts))
        emb = torch.randn(len(texts), 1, self.dim, generator=g)
        return TextEmbedding(emb, torch.ones(len(texts), 1, dtype=torch.bool))


def random_world(config: WorldModelConfig, device: str = "cpu") -> WorldModel:
    """A world of `config` with random weights (seed 0) and a stand-in text encoder: for timing."""
    text = TextConditioner.build(_HashEncoder(config.text_encoder, config.text_dim))
    return WorldModel.from_config(config, seed=0, device=device, text=text)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    if args.model:
        model = WorldModel.from_pretrained(args.model, device=args.device)
    else:
        config = WorldModelConfig.preset(args.preset).replace(**dict(parse_assignment(o) for o in args.overrides))
        model = random_world(config, args.device)
    H, W = model.frame_size
    start = np.random.default_rng(0).integers(0, 256, size=(1, H, W, 3), dtype=np.uint8)
    states = [model.init_state(start) for _ in range(args.worlds)]
    noise = WorldNoise(list(range(args.worlds)), device=model.device)  # each world's stream, as the envs draw it
    rng = np.random.default_rng(0)
    walls, cpus, phases = [], [], []
    for i in tqdm(range(args.warmup + args.steps), desc="steps", disable=args.quiet):
        actions = rng.integers(0, 9, size=(args.worlds, 2))
        if args.device != "cpu":
            torch.cuda.synchronize()
        t, c = time.perf_counter(), time.process_time()
        out = model.step(states, actions, noise)
        if args.device != "cpu":
            torch.cuda.synchronize()
        if i >= args.warmup:
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
            phases.append(out.timings)
    ms = lambda xs: round(1000 * float(np.median(xs)), 2)  # noqa: E731
    return {
        "model": args.model or f"preset {args.preset} (random weights)" + "".join(f", {o}" for o in args.overrides),
        "device": args.device,
        "threads": args.threads,
        "worlds": args.worlds,
        "cpu": platform.processor() or platform.machine(),
        "warmup_steps": args.warmup,
        "steps": args.steps,
        "step_ms_median": ms(walls),
        "step_ms_p90": round(1000 * float(np.percentile(walls, 90)), 2),
        "step_cpu_ms_median": ms(cpus),
        "phase_ms_median": {k: ms([p[k] for p in phases]) for k in phases[0]},
        "steps_per_s": round(args.worlds / float(np.median(walls)), 1),
        "memory_stats": states[0].memory_stats(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="model folder (default: a random model of --preset)")
    p.add_argument("--preset", default="tiny")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change a config field of the random model, e.g. --set patch_size=[1,1,1] (repeat)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--worlds", type=int, default=1)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--json", help="also write the result here")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
