"""Torch in worker processes forked from a process that ran torch, as the workers of
`gym.make_vec("YumeWorld-v0", vectorization_mode="async")` are on Linux.

The parent's OpenMP threads do not exist in a forked child, and the child's first multi-threaded
torch op waits for them forever. So a child forked after this module is imported runs torch on one
thread, as PyTorch's DataLoader workers do (N workers share the cores anyway). Workers with a thread
pool of their own, or on a GPU, need the spawn context: `vector_kwargs={"context": "spawn"}`.
"""

from __future__ import annotations

import os

import torch

SPAWN_HINT = (
    'gym.make_vec("YumeWorld-v0", num_envs=N, vectorization_mode="async", '
    'vector_kwargs={"context": "spawn"}) under `if __name__ == "__main__":`, or the batched '
    'gym.make_vec("YumeWorld-v0", num_envs=N), which steps every world in one forward'
)

_forked = False


def _after_fork_in_child() -> None:
    global _forked
    _forked = True
    torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def in_forked_child() -> bool:
    """True in a process forked after this module was imported."""
    return _forked


def check_device(device) -> None:
    """Refuses a CUDA device in a forked process (CUDA cannot start again after a fork), naming the fix."""
    if _forked and str(device).startswith("cuda"):
        raise RuntimeError(f"YumeWorld-v0 on {device} cannot run in a forked worker process; use {SPAWN_HINT}")
