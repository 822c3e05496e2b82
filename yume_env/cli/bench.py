"""`yume-env bench`: env steps/s of the learned world, single and batched, and per-step time versus
episode length (`--soak N`). Prints a table, writes JSON and a markdown table (by default to
./yume-env-bench-DATE-TIME.json and .md, names no file has yet; `--json PATH` chooses).

    yume-env bench                              # default world, 1/8/64 worlds, 100 timed steps each
    yume-env bench --num-envs 1 --soak 10000    # flat per-step time over a 10,000-step episode
    yume-env bench --device cuda --num-envs 1024 --tensors   # observations delivered on the GPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from yume_env.atomic import atomic_write_text

DEFAULT_STEM = "yume-env-bench"  # the default output: ./yume-env-bench-DATE-TIME.json and .md


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="world folder (default: the shipped default world), or preset:NAME for random weights of a "
        "WorldModelConfig preset (speed does not depend on the weights), e.g. preset:tiny",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None)
    parser.add_argument(
        "--sample-steps", type=int, default=None, help="denoising steps per chunk (default: the world's)"
    )
    parser.add_argument("--num-envs", default="1,8,64", help="comma-separated batch sizes (default: 1,8,64)")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per batch size (default: 100)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed warm-up steps, reported apart (default: 5)")
    parser.add_argument(
        "--soak", type=int, default=0, help="also run one world for N steps and compare per-step time early vs late"
    )
    parser.add_argument("--window", type=int, default=100, help="steps per soak window (default: 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tensors",
        action="store_true",
        help="time the vector env's tensor path (tensors=True): observations delivered as uint8 tensors on "
        "--device, every batch size (1 too) as a vector env; the soak stays on the numpy path",
    )
    parser.add_argument(
        "--profile",
        type=int,
        nargs="?",
        const=10,
        default=0,
        metavar="STEPS",
        help="also profile STEPS (default 10) steps per batch size: GPU kernel and host time per step, top ops",
    )
    parser.add_argument(
        "--json",
        default=None,
        help=f"JSON output; the markdown goes beside it, .md (default: {DEFAULT_STEM}-DATE-TIME.json "
        "in the current folder, under a name no file has yet)",
    )


def _rss_mib() -> float:
    """Current resident memory of this process in MiB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _machine() -> dict:
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "nproc": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
    }


def _model(args):
    """The model argument for the envs: a folder, None, or a random-weight preset (built once)."""
    if not (args.model and str(args.model).startswith("preset:")):
        return args.model
    if getattr(args, "_preset_model", None) is None:
        from yume_env.model import WorldModel, WorldModelConfig

        config = WorldModelConfig.preset(str(args.model).split(":", 1)[1])
        args._preset_model = WorldModel.from_config(config, seed=0, device=args.device)
    return args._preset_model


def _start_options(env, num_envs: int) -> dict | None:
    """A synthetic start frame for worlds without start views (random-weight presets)."""
    from yume_env.env.core import start_frames_of

    model = env.unwrapped.model
    if start_frames_of(model) is not None:
        return None
    h, w = model.frame_size
    ramp = np.linspace(40, 220, h, dtype=np.float64)[:, None, None] * np.ones((1, w, 3))
    return {"image": ramp.astype(np.uint8)}


def _make(args, num_envs: int):
    import gymnasium as gym

    import yume_env  # noqa: F401

    kwargs = dict(
        model=_model(args), device=args.device, dtype=args.dtype, sample_steps=args.sample_steps, reward_fn=None
    )
    if args.tensors:
        return gym.make_vec("YumeWorld-v0", num_envs=num_envs, tensors=True, **kwargs)
    if num_envs == 1:
        return gym.make("YumeWorld-v0", disable_env_checker=True, **kwargs).unwrapped
    return gym.make_vec("YumeWorld-v0", num_envs=num_envs, **kwargs)


def _device_sync(args):
    """On the tensor path a step may return before its kernels finish: a timed step waits for the device."""
    import torch

    if args.tensors and str(args.device).startswith("cuda"):
        return torch.cuda.synchronize
    return lambda: None


def bench_batch(args, num_envs: int) -> dict:
    """Warm-up, then `args.steps` timed steps of `num_envs` worlds with random actions."""
    from tqdm import tqdm

    env = _make(args, num_envs)
    env.reset(seed=args.seed, options=_start_options(env, num_envs))
    rng = np.random.default_rng(args.seed)
    shape = (2,) if num_envs == 1 and not args.tensors else (num_envs, 2)
    sync = _device_sync(args)
    warm = []
    for _ in range(args.warmup):
        t = time.perf_counter()
        env.step(rng.integers(0, 9, shape))
        sync()
        warm.append(time.perf_counter() - t)
    times, cpu = [], []
    for _ in tqdm(range(args.steps), desc=f"bench {num_envs} env(s)", unit="step", leave=False):
        t, c = time.perf_counter(), time.process_time()
        env.step(rng.integers(0, 9, shape))
        sync()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    profiled = None
    if args.profile:
        from yume_env.cli import bench_profile

        profiled = bench_profile.profile_steps(lambda: env.step(rng.integers(0, 9, shape)), args.profile, args.device)
    env.close()
    median = statistics.median(times)
    return {
        "num_envs": num_envs,
        "timed_steps": args.steps,
        "warmup_step_s": warm,
        "median_step_s": median,
        "p90_step_s": float(np.percentile(times, 90)),
        "median_step_cpu_s": statistics.median(cpu),
        "env_steps_per_s": num_envs / median,
        "batched_steps_per_s": 1.0 / median,
        "rss_mib": _rss_mib(),
        "profile": None if profiled is None else bench_profile.split(profiled, median),
    }


def soak(args) -> dict:
    """One world for `args.soak` steps: per-step time and memory in the first and last windows."""
    from tqdm import tqdm

    env = _make(args, 1)
    env.reset(seed=args.seed, options=_start_options(env, 1))
    rng = np.random.default_rng(args.seed)
    n, w = int(args.soak), int(args.window)
    times, cpu = np.zeros(n), np.zeros(n)
    marks: dict[int, dict] = {}
    for i in tqdm(range(n), desc="soak", unit="step"):
        t, c = time.perf_counter(), time.process_time()
        *_, info = env.step(rng.integers(0, 9, 2))
        times[i] = time.perf_counter() - t
        cpu[i] = time.process_time() - c
        if i + 1 in (w, n):
            marks[i + 1] = {"memory": dict(info["memory"]), "rss_mib": _rss_mib()}
    env.close()
    early, late = float(np.median(times[:w])), float(np.median(times[n - w :]))
    early_cpu, late_cpu = float(np.median(cpu[:w])), float(np.median(cpu[n - w :]))
    # a median per window of `w` steps: the whole curve, small enough for the JSON
    curve = [[int(s + w), float(np.median(times[s : s + w]))] for s in range(0, n - w + 1, w)]
    return {
        "steps": n,
        "window": w,
        "median_step_s_first_window": early,
        "median_step_s_last_window": late,
        "ratio_last_to_first": late / early,
        # CPU seconds of this process per step: robust to other processes sharing the cores
        "median_step_cpu_s_first_window": early_cpu,
        "median_step_cpu_s_last_window": late_cpu,
        "cpu_ratio_last_to_first": late_cpu / early_cpu if early_cpu > 0 else None,
        "env_steps_per_s_first_window": 1.0 / early,
        "env_steps_per_s_last_window": 1.0 / late,
        "at_first_window": marks.get(w),
        "at_last_step": marks.get(n),
        "median_step_s_per_window": curve,
    }


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"# yume-env bench: {result['model']}",
        "",
        f"Machine: {m['processor']}, {m['nproc']} cores, torch {m['torch']} with {m['torch_threads']} threads, "
        f"load average at start {m['loadavg_start']}; device {result['device']}"
        f"{'; observations as uint8 tensors on the device (`--tensors`)' if result.get('tensors') else ''}.",
        "",
        "| worlds | median step (s) | p90 step (s) | CPU per step (s) | env steps/s | batched steps/s | RSS (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["batches"]:
        lines.append(
            f"| {r['num_envs']} | {r['median_step_s']:.4f} | {r['p90_step_s']:.4f} | {r['median_step_cpu_s']:.4f} | "
            f"{r['env_steps_per_s']:.1f} | "
            f"{r['batched_steps_per_s']:.1f} | {r['rss_mib']:.0f} |"
        )
    from yume_env.cli import bench_profile

    lines += bench_profile.markdown(result["batches"])
    if result.get("soak"):
        s = result["soak"]
        first, last = s["at_first_window"], s["at_last_step"]
        lines += [
            "",
            f"Soak, one world, {s['steps']} steps (median per-step time per {s['window']}-step window):",
            "",
            "| | median step (s) | CPU per step (s) | env steps/s | history chunks | memory tokens | RSS (MiB) |",
            "|---|---|---|---|---|---|---|",
            f"| steps 1-{s['window']} | {s['median_step_s_first_window']:.4f} | {s['median_step_cpu_s_first_window']:.4f} | "
            f"{s['env_steps_per_s_first_window']:.1f} | "
            f"{first['memory'].get('history_chunks')} | {first['memory'].get('memory_tokens')} | {first['rss_mib']:.0f} |",
            f"| last {s['window']} steps (to {s['steps']}) | {s['median_step_s_last_window']:.4f} | "
            f"{s['median_step_cpu_s_last_window']:.4f} | "
            f"{s['env_steps_per_s_last_window']:.1f} | {last['memory'].get('history_chunks')} | "
            f"{last['memory'].get('memory_tokens')} | {last['rss_mib']:.0f} |",
            "",
            f"Ratio last/first window: {s['ratio_last_to_first']:.3f} wall-clock, "
            f"{s['cpu_ratio_last_to_first'] or float('nan'):.3f} CPU time.",
        ]
    return "\n".join(lines) + "\n"


def fresh_output_path(folder: Path | str = ".", stamp: str | None = None) -> Path:
    """`folder/yume-env-bench-DATE-TIME.json`, numbered -2, -3, ... until neither it nor its .md
    twin exists: a default run never overwrites a file (a committed result in the repo above all)."""
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 10_000):
        path = Path(folder) / f"{DEFAULT_STEM}-{stamp}{'' if n == 1 else f'-{n}'}.json"
        if not path.exists() and not path.with_suffix(".md").exists():
            return path
    raise FileExistsError(f"no free {DEFAULT_STEM}-{stamp}-N.json name in {folder}; pass --json PATH")


def run(args: argparse.Namespace) -> int:
    """Runs the benchmark; a bad argument or a missing world prints the reason and returns 2."""
    try:
        return _bench(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"yume-env bench: error: {err}", file=sys.stderr)
        return 2


def _bench(args: argparse.Namespace) -> int:
    if args.threads is not None:
        import torch

        torch.set_num_threads(int(args.threads))
    try:
        sizes = [int(s) for s in str(args.num_envs).split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--num-envs must be comma-separated integers like 1,8,64, got {args.num_envs!r}") from None
    if not sizes or min(sizes) < 1 or args.steps < 1:
        raise ValueError("--num-envs needs positive integers and --steps >= 1")
    result = {
        "model": str(args.model) if args.model else "default world",
        "device": args.device,
        "dtype": args.dtype,
        "sample_steps": args.sample_steps,
        "tensors": bool(args.tensors),
        "machine": _machine(),
        "batches": [bench_batch(args, n) for n in sizes],
    }
    if args.soak:
        if args.soak < 2 * args.window:
            raise ValueError(f"--soak must be at least two windows ({2 * args.window} steps)")
        result["soak"] = soak(args)
    result["machine"]["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    table = markdown(result)
    print(table)
    json_path = Path(args.json) if args.json else fresh_output_path()
    atomic_write_text(json_path, json.dumps(result, indent=1))
    atomic_write_text(json_path.with_suffix(".md"), table)
    print(f"wrote {json_path} and {json_path.with_suffix('.md')}")
    return 0
