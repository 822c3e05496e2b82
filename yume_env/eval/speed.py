"""Steps/s of the learned world on its device: one world, and B worlds batched (decode included)."""

from __future__ import annotations

import os
import platform
import time

import numpy as np
import torch

from yume_env.eval.rollout import burn_in, init_states
from yume_env.eval.simulate import random_actions


def measure_speed(
    model, steps: int, warmup: int, batch: int, seed: int, rng: np.random.Generator, generator: torch.Generator
) -> dict:
    """Median wall time per `model.step` after `warmup` steps dropped; per-part timings too."""
    out: dict = {
        "device": str(model.device),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    if model.device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(model.device)
    for name, b in (("single", 1), ("batched", batch)):
        start = burn_in(model, [seed + i for i in range(b)], 2, rng)
        states = init_states(model, start)
        acts = np.stack([random_actions(rng, warmup + steps) for _ in range(b)], axis=1)  # (T, B, 2)
        times, parts = [], []
        for t in range(warmup + steps):
            if model.device.type == "cuda":
                torch.cuda.synchronize(model.device)
            t0 = time.perf_counter()
            res = model.step(states, acts[t], generator)
            if model.device.type == "cuda":
                torch.cuda.synchronize(model.device)
            times.append(time.perf_counter() - t0)
            parts.append(res.timings)
        steady = np.array(times[warmup:])
        med = float(np.median(steady))
        out[name] = {
            "worlds": int(b),
            "median_step_s": med,
            "steps_per_s": 1.0 / med,  # chunks per second for each world
            "world_steps_per_s": b / med,
            "warmup_s": [float(x) for x in times[:warmup]],
            "parts_median_s": {k: float(np.median([p.get(k, 0.0) for p in parts[warmup:]])) for k in parts[0]},
        }
    out["steps_per_s"] = out["single"]["steps_per_s"]
    return out
