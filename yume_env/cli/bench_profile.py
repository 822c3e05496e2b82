"""Where a step's time goes: `yume-env bench --profile`.

`profile_steps(step, steps, device)` runs `step()` `steps` times under the torch profiler and
returns, per step: the GPU kernel time (CUDA devices; None on a CPU), the process CPU time, and the
top ops by self time (kernel time on a GPU, CPU time on a CPU). `split(profile, median_step_s)`
sets it beside the step's unprofiled wall time: host time = wall time - kernel time (the part of
the step the GPU waits for the host), kernel fraction = kernel time / wall time.
"""

from __future__ import annotations

import time
from typing import Callable

TOP_OPS = 12


def _self_device_us(event) -> float:
    return float(event.self_device_time_total)


def profile_steps(step: Callable[[], object], steps: int, device: str) -> dict:
    """Profiles `steps` calls of `step` (already warmed up) on `device` ("cpu", "cuda", "cuda:N")."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = str(device).startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    if cuda:
        torch.cuda.synchronize()
    cpu0 = time.process_time()
    with profile(activities=activities) as prof:
        for _ in range(int(steps)):
            step()
        if cuda:
            torch.cuda.synchronize()
    cpu_s = (time.process_time() - cpu0) / steps
    events = prof.key_averages()
    kernel_s = sum(_self_device_us(e) for e in events) / 1e6 / steps if cuda else None
    weight = (lambda e: _self_device_us(e)) if cuda else (lambda e: float(e.self_cpu_time_total))
    top = sorted((e for e in events if weight(e) > 0), key=weight, reverse=True)[:TOP_OPS]
    return {
        "profiled_steps": int(steps),
        "kernel_s_per_step": kernel_s,
        "profiled_cpu_s_per_step": cpu_s,
        "top_ops_by": "self GPU kernel time" if cuda else "self CPU time",
        "top_ops": [
            {"op": e.key, "self_s_per_step": weight(e) / 1e6 / steps, "calls_per_step": e.count / steps} for e in top
        ],
    }


def split(profile: dict, median_step_s: float) -> dict:
    """The profile with the host time and kernel fraction of a step whose unprofiled wall time is
    `median_step_s` (kernel time is None on a CPU, and so are both)."""
    kernel = profile["kernel_s_per_step"]
    out = dict(profile)
    out["host_s_per_step"] = None if kernel is None else max(0.0, median_step_s - kernel)
    out["kernel_fraction"] = None if kernel is None else kernel / median_step_s
    return out


def markdown(batches: list[dict]) -> list[str]:
    """Markdown lines: a table of the time split per batch size, then each batch's top ops."""
    profiled = [b for b in batches if b.get("profile")]
    if not profiled:
        return []

    def fmt(v, digits=4):
        return "-" if v is None else f"{v:.{digits}f}"

    lines = [
        "",
        "## Where the time goes (`--profile`)",
        "",
        "| worlds | wall per step (s) | GPU kernels per step (s) | host per step (s) | kernel share | "
        "CPU per step, profiled (s) |",
        "|---|---|---|---|---|---|",
    ]
    for b in profiled:
        p = b["profile"]
        lines.append(
            f"| {b['num_envs']} | {b['median_step_s']:.4f} | {fmt(p['kernel_s_per_step'])} | "
            f"{fmt(p['host_s_per_step'])} | {fmt(p['kernel_fraction'], 2)} | {p['profiled_cpu_s_per_step']:.4f} |"
        )
    for b in profiled:
        p = b["profile"]
        lines += [
            "",
            f"Top ops at {b['num_envs']} world(s), by {p['top_ops_by']}:",
            "",
            "| op | s per step | calls per step |",
            "|---|---|---|",
        ]
        lines += [f"| `{o['op']}` | {o['self_s_per_step']:.5f} | {o['calls_per_step']:.1f} |" for o in p["top_ops"]]
    return lines
