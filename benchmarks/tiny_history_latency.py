"""One chunk's latency of the tiny world model versus history length, on CPU.

A chunk = TSCM history encode (bands + the causal history keys/values of every block) plus
`sample_steps` DiT forwards with their Euler updates: everything the DiT does per env step (the
VAE decode and the memory update are timed separately). Histories of 10, 100, 1,000 and 10,000
chunks are built cheaply: random latents for the frames the band schedule keeps
(`tscm.frames_to_keep`) and one bulk `update_memory` over all the history latents. Lengths are
timed round-robin, so a load change on the machine hits all of them alike; the median is reported.

    PYTHONPATH=. python benchmarks/tiny_history_latency.py [--repeats 200] [--threads 1]

Prints a table and writes benchmarks/results/tiny_history_latency.json. The design requires the
ratio of the longest history's median to the shortest's to be <= 1.10.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from tqdm import tqdm

from yume_env.model import WorldModelConfig, build_dit
from yume_env.model.tscm import frames_to_keep, history_token_count

HISTORY_CHUNKS = (10, 100, 1_000, 10_000)
RESULT = Path(__file__).resolve().parent / "results" / "tiny_history_latency.json"


def build_world(dit, config: WorldModelConfig, chunks: int, gen: torch.Generator):
    """Kept history latents, true history length, and a memory state holding every latent."""
    n = chunks * config.latent_frames_per_chunk
    C, (h, w) = config.latent_channels, config.latent_hw
    kept = torch.randn(C, len(frames_to_keep(config.tscm_schedule, n)), h, w, generator=gen)
    memory = None
    for start in range(0, n, 4096):  # bulk update in slices: bounded RAM, O(n) total
        memory = dit.update_memory(memory, torch.randn(C, min(4096, n - start), h, w, generator=gen))
    return kept, n, memory


def one_chunk(dit, config, kept, n, memory, context, gen) -> torch.Tensor:
    C, (h, w), F = config.latent_channels, config.latent_hw, config.latent_frames_per_chunk
    history = dit.encode_history([kept], [memory], context=context, n_history=[n])
    x = torch.randn(1, C, F, h, w, generator=gen)
    sigmas = torch.linspace(1.0, 0.0, config.sample_steps + 1)
    sigmas = config.shift * sigmas / (1 + (config.shift - 1) * sigmas)
    for i in range(config.sample_steps):
        v = dit(x, sigmas[i : i + 1] * 1000, context, history)
        x = x + (sigmas[i + 1] - sigmas[i]) * v
    return x


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=200, help="timed chunks per history length")
    ap.add_argument("--warmup", type=int, default=10, help="untimed chunks per history length first")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, default=RESULT)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = WorldModelConfig.preset("tiny")
    dit = build_dit(config).eval()
    gen = torch.Generator().manual_seed(0)
    context = torch.randn(1, config.text_tokens, config.text_dim, generator=gen)

    worlds, build_s = {}, {}
    with torch.inference_mode():
        for chunks in tqdm(HISTORY_CHUNKS, desc="building histories"):
            t0 = time.perf_counter()
            worlds[chunks] = build_world(dit, config, chunks, gen)
            build_s[chunks] = time.perf_counter() - t0
        times = {c: [] for c in HISTORY_CHUNKS}
        mem_times = {c: [] for c in HISTORY_CHUNKS}
        cpu_times = {c: [] for c in HISTORY_CHUNKS}  # process CPU time: less sensitive to a busy machine
        new = torch.randn(config.latent_channels, config.latent_frames_per_chunk, *config.latent_hw, generator=gen)
        for rep in tqdm(range(args.warmup + args.repeats), desc="timing (round-robin)"):
            for chunks in HISTORY_CHUNKS:
                kept, n, memory = worlds[chunks]
                t0, c0 = time.perf_counter(), time.process_time()
                one_chunk(dit, config, kept, n, memory, context, gen)
                t1, c1 = time.perf_counter(), time.process_time()
                dit.update_memory(memory, new)
                t2 = time.perf_counter()
                if rep >= args.warmup:
                    times[chunks].append(t1 - t0)
                    mem_times[chunks].append(t2 - t1)
                    cpu_times[chunks].append(c1 - c0)

    rows = []
    for chunks in HISTORY_CHUNKS:
        ts = sorted(times[chunks])
        kept, n, memory = worlds[chunks]
        rows.append(
            {
                "history_chunks": chunks,
                "history_latents": n,
                "kept_latents": kept.shape[1],
                "history_tokens": history_token_count(config.tscm_schedule, n, config.latent_hw),
                "memory_state_bytes": memory.num_bytes,
                "median_ms": 1e3 * statistics.median(ts),
                "min_ms": 1e3 * ts[0],
                "cpu_median_ms": 1e3 * statistics.median(cpu_times[chunks]),
                "p10_ms": 1e3 * ts[len(ts) // 10],
                "p90_ms": 1e3 * ts[(9 * len(ts)) // 10],
                "memory_update_median_ms": 1e3 * statistics.median(mem_times[chunks]),
                "build_s": build_s[chunks],
            }
        )
    ratio = rows[-1]["median_ms"] / rows[0]["median_ms"]
    print(f"tiny preset, CPU, {torch.get_num_threads()} thread(s), {args.repeats} repeats (median):")
    print(
        f"{'chunks':>8} {'latents':>8} {'tokens':>7} {'median ms':>10} {'min':>7} {'p10':>7} {'p90':>7} {'cpu ms':>7} {'mem upd ms':>11}"
    )
    for r in rows:
        print(
            f"{r['history_chunks']:>8} {r['history_latents']:>8} {r['history_tokens']:>7} {r['median_ms']:>10.2f} {r['min_ms']:>7.2f} "
            f"{r['p10_ms']:>7.2f} {r['p90_ms']:>7.2f} {r['cpu_median_ms']:>7.2f} {r['memory_update_median_ms']:>11.3f}"
        )
    print("(ms per chunk: wall-clock median/min/p10/p90, median process CPU time; memory update separate)")
    print(f"ratio longest/shortest = {ratio:.3f} ({'OK' if ratio <= 1.10 else 'FAILS'} the <= 1.10 requirement)")
    result = {
        "benchmark": "tiny_history_latency",
        "what": "one chunk: history encode + sample_steps DiT forwards + Euler updates (no VAE decode)",
        "preset": "tiny",
        "sample_steps": config.sample_steps,
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "load_average_1min_at_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "rows": rows,
        "ratio_longest_to_shortest": ratio,
        "passes_1_10": ratio <= 1.10,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.out.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0 if ratio <= 1.10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
