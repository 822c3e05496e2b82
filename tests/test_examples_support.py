"""Helpers of the agents/examples tests (no tests here): a tiny random world with a task head.

`WorldModel.from_config(WorldModelConfig.preset("tiny"))` with random weights, one denoising step,
a random beacon task head (so `reward_fn="beacon"` runs) and a few simulator start frames, saved
once per test process into a temp folder.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `agents` and `examples` live at the repo root
    sys.path.insert(0, str(REPO))


def sim_start_frames(count: int = 3, seed: int = 0) -> np.ndarray:
    """uint8 (count, 64, 64, 3) first frames of YumeSim-v0 episodes."""
    from yume_env.sim import Simulator

    sim = Simulator(64, 64, 2, seed=seed)
    return np.stack([sim.reset(seed=seed + k) for k in range(count)])


def build_tiny_world(folder: str | Path) -> str:
    """Saves the tiny random world with a task head and simulator start frames into `folder`."""
    import torch

    from yume_env.model import WorldModel, WorldModelConfig
    from yume_env.model.task_head import TaskHead

    config = dataclasses.replace(WorldModelConfig.preset("tiny"), sample_steps=1)
    model = WorldModel.from_config(config, seed=0)
    # parameters that start at zero (adaLN gates, output projections) get small random values, so
    # that actions and events change the frames of the untrained world
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.dit.parameters():
            if p.numel() and not p.detach().abs().amax().item():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    torch.manual_seed(0)
    model.task_head = TaskHead(config.latent_channels, config.latent_hw).eval()
    for text in ("", "it starts to snow", "night falls"):
        model.text.event_tokens(text)
    folder = Path(folder)
    model.save_pretrained(str(folder))
    np.savez(folder / "start_frames.npz", frames=sim_start_frames(), events=np.array(["", "", ""]))
    return str(folder)


@functools.cache
def tiny_world_dir() -> str:
    folder = Path(tempfile.mkdtemp(prefix="yume-agents-world-"))
    atexit.register(shutil.rmtree, folder, True)
    return build_tiny_world(folder / "world")
