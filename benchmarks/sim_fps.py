"""Simulator frames per second: single camera (numpy) and batched (torch CPU, and CUDA if present).

    python benchmarks/sim_fps.py                      # 128x128 and 256x256, writes benchmarks/results/sim_fps.json
    python benchmarks/sim_fps.py --sizes 64 128 --batch 32 --seconds 3

Each case steps the simulator with random actions (motion, collisions and rendering all included;
every env step renders `sub_frames` frames). Warm-up steps are dropped. Reported: the median (and
best) wall-clock frames/s over timed windows, and the median process CPU time per frame with the
rate it implies for one whole core ("cpu-bound f/s"). On a shared machine the wall rate includes
waiting for the CPU, so the load average is recorded too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from yume_env.sim import Simulator  # noqa: E402


def _repeat(run_once, frames_per_call: int, seconds: float, repeats: int) -> dict:
    """Wall frames/s per timed window (median and best) and CPU ms per frame per call (median, min).

    `cpu_bound_frames_per_s` = 1000 / median CPU ms per frame: the rate with a whole core to itself,
    which on a busy shared machine is far above the wall rate.
    """
    for _ in range(3):  # warm-up (allocations, caches, CUDA kernels)
        run_once()
    rates, cpu = [], []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            c0 = time.process_time()
            run_once()
            cpu.append(1e3 * (time.process_time() - c0) / frames_per_call)
            n += 1
            if time.perf_counter() - t0 >= seconds / repeats:
                break
        rates.append(n * frames_per_call / (time.perf_counter() - t0))
    med = statistics.median(cpu)
    return {
        "frames_per_s": statistics.median(rates),
        "frames_per_s_best_window": max(rates),
        "cpu_ms_per_frame": med,
        "cpu_ms_per_frame_p10": float(np.percentile(cpu, 10)),
        "cpu_ms_per_frame_min": min(cpu),
        "cpu_bound_frames_per_s": 1e3 / med,
        "calls": len(cpu),
    }


def bench_single(size: int, seconds: float, repeats: int, sub_frames: int = 2) -> dict:
    sim = Simulator(size, size, sub_frames=sub_frames, seed=0)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 9, (4096, 2))
    state = {"i": 0}

    def once():
        sim.step(actions[state["i"] % len(actions)])
        state["i"] += 1
        if state["i"] % 100 == 0:
            sim.reset()

    return _repeat(once, sub_frames, seconds, repeats)


def bench_batch(size: int, batch: int, device: str, seconds: float, repeats: int, sub_frames: int = 2) -> dict:
    import torch

    from yume_env.sim.batch import BatchSimulator

    sim = BatchSimulator(batch, size, size, sub_frames=sub_frames, device=device, seed=0)
    sim.reset()
    rng = np.random.default_rng(0)

    def once():
        out = sim.step(rng.integers(0, 9, (batch, 2)))
        if device != "cpu":
            torch.cuda.synchronize()
        return out

    return _repeat(once, batch * sub_frames, seconds, repeats)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="square frame sides (multiples of 16)")
    p.add_argument("--batch", type=int, default=16, help="worlds per batch on the CPU (default 16)")
    p.add_argument("--cuda-batch", type=int, default=256, help="worlds per batch on CUDA (default 256)")
    p.add_argument("--seconds", type=float, default=4.0, help="timed seconds per case (default 4)")
    p.add_argument("--repeats", type=int, default=5, help="timed windows per case; the median is reported")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "sim_fps.json"))
    args = p.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for size in args.sizes:
        rows.append(
            {
                "mode": "single",
                "backend": "numpy",
                "device": "cpu",
                "size": size,
                "batch": 1,
                **bench_single(size, args.seconds, args.repeats),
            }
        )
        rows.append(
            {
                "mode": "batched",
                "backend": "torch",
                "device": "cpu",
                "size": size,
                "batch": args.batch,
                **bench_batch(size, args.batch, "cpu", args.seconds, args.repeats),
            }
        )
        if torch.cuda.is_available():
            rows.append(
                {
                    "mode": "batched",
                    "backend": "torch",
                    "device": "cuda",
                    "size": size,
                    "batch": args.cuda_batch,
                    **bench_batch(size, args.cuda_batch, "cuda", args.seconds, args.repeats),
                }
            )
    machine = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "load_average_1min": os.getloadavg()[0],
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    print(
        f"{'mode':8s} {'backend':7s} {'device':6s} {'size':>5s} {'batch':>5s} {'frames/s':>10s} "
        f"{'best win':>9s} {'cpu ms/frame':>13s} {'p10':>7s} {'cpu-bound f/s':>14s}"
    )
    for r in rows:
        print(
            f"{r['mode']:8s} {r['backend']:7s} {r['device']:6s} {r['size']:5d} {r['batch']:5d} "
            f"{r['frames_per_s']:10.1f} {r['frames_per_s_best_window']:9.1f} {r['cpu_ms_per_frame']:13.3f} "
            f"{r['cpu_ms_per_frame_p10']:7.3f} "
            f"{r['cpu_bound_frames_per_s']:14.1f}"
        )
    print(f"load average (1 min): {machine['load_average_1min']:.2f} on {machine['cpu_count']} cores")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name("." + out.name + ".tmp")
    tmp.write_text(json.dumps({"machine": machine, "command": " ".join(sys.argv), "results": rows}, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
