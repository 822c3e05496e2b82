"""`gym.make_vec("YumeWorld-v0", vectorization_mode="async")`: worker processes, each with its own
world. On Linux the workers are forked from a process whose torch threads are up, which hung them in
their first torch op; each run here is a subprocess under a timeout, so a hang fails the test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from test_env_support import tiny_world_dir

ASYNC_RUN = textwrap.dedent("""
    import sys

    import gymnasium as gym
    import numpy as np
    import torch

    import yume_env  # noqa: F401

    if __name__ == "__main__":
        torch.set_num_threads(2)
        torch.randn(512, 512) @ torch.randn(512, 512)  # the parent's OpenMP threads are up, as after any torch work
        context = sys.argv[2] if len(sys.argv) > 2 else None
        env = gym.make_vec("YumeWorld-v0", num_envs=2, vectorization_mode="async", model=sys.argv[1],
                           vector_kwargs={"context": context} if context else {})
        obs, _ = env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step(np.ones((2, 2), dtype=np.int64))
        env.close()
        print(type(env).__name__, obs.shape, reward.shape)
""")


def run_async(context: str | None, timeout_s: float = 180.0) -> str:
    """Runs ASYNC_RUN in a new process group and returns its stdout; a hang is killed with its workers."""
    args = [sys.executable, "-c", ASYNC_RUN, tiny_world_dir()] + ([context] if context else [])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"the async vector env did not reset, step and close within {timeout_s:.0f} s (a hang)")
    assert proc.returncode == 0, err[-3000:]
    return out


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forked workers need fork (Linux, macOS)")
def test_async_vector_env_with_forked_workers_resets_steps_and_closes():
    assert "AsyncVectorEnv (2, 64, 64, 3) (2,)" in run_async("fork")


@pytest.mark.slow
def test_async_vector_env_with_spawned_workers_resets_steps_and_closes():
    assert "AsyncVectorEnv (2, 64, 64, 3) (2,)" in run_async("spawn")


def test_a_forked_worker_refuses_cuda_and_names_the_spawn_context(monkeypatch):
    from yume_env.env import forking

    monkeypatch.setattr(forking, "_forked", True)
    with pytest.raises(RuntimeError, match=r"forked worker.*vector_kwargs=\{\"context\": \"spawn\"\}"):
        forking.check_device("cuda:0")
    forking.check_device("cpu")  # the CPU runs, on one thread
