"""Shared helpers of the env/record/bench tests (no tests here): one tiny random world per session.

The tiny preset with random weights (`WorldModel.from_config(..., seed=0)`) is saved once per test
process into a temp folder, with a few start frames, so the tests exercise the real loading path
(`model="folder"`) without depending on the trained default world.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np

START_EVENTS = ("", "it starts to snow", "")
# every event text the tests use, embedded before saving so the saved text cache holds them (like a
# shipped world's) and loading the folder never needs the text encoder
TEST_EVENTS = ("", "it starts to snow", "night falls", "thick fog rolls in", "a ghost suddenly appears")


def start_views(frame_size: tuple[int, int], count: int = 3) -> np.ndarray:
    """Deterministic, structured start frames (sky/ground gradients with a block), uint8 (K, H, W, 3)."""
    h, w = frame_size
    ys, xs = np.mgrid[0:h, 0:w]
    frames = np.zeros((count, h, w, 3), dtype=np.uint8)
    for k in range(count):
        sky = ys < h // 2
        frames[k, ..., 0] = np.where(sky, 90 + 30 * k, 70)
        frames[k, ..., 1] = np.where(sky, 150, 60 + 40 * k)
        frames[k, ..., 2] = np.where(sky, 230, 50)
        x0 = (w // 4) * (k + 1) % w
        frames[k, h // 4 : h // 2 + 8, x0 : x0 + w // 6] = (180, 120 - 30 * k, 90)
        frames[k, ..., :] = np.clip(frames[k].astype(int) + (xs[..., None] % 7), 0, 255).astype(np.uint8)
    return frames


def wake_zero_parameters(module, seed: int = 0, std: float = 0.05) -> None:
    """Gives small random values to parameters initialised at exactly zero (adaLN / gate / output
    projections, zero at init for training), so that in an untrained world every input (action,
    event, history) changes the frames, which the tests check."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.numel() and not p.detach().abs().amax().item():
                p.copy_(torch.randn(p.shape, generator=gen) * std)


@functools.cache
def tiny_world_dir() -> str:
    """A saved tiny world with random weights and start frames (built once per process)."""

    from yume_env.model import WorldModel, WorldModelConfig

    # one denoising step keeps the suite fast; the env code paths are the same for any step count
    config = dataclasses.replace(WorldModelConfig.preset("tiny"), sample_steps=1)
    model = WorldModel.from_config(config, seed=0)
    wake_zero_parameters(model.dit, seed=0)
    for text in TEST_EVENTS:
        model.text.event_tokens(text)
    folder = Path(tempfile.mkdtemp(prefix="yume-tiny-world-"))
    atexit.register(shutil.rmtree, folder, True)
    model.save_pretrained(str(folder))
    frames = start_views(tuple(model.frame_size))
    np.savez(folder / "start_frames.npz", frames=frames, events=np.array(START_EVENTS))
    return str(folder)


def tiny_world():
    """The tiny world, loaded once per process through the env's model cache."""
    from yume_env.env.model_cache import load_world_model

    return load_world_model(tiny_world_dir())


def world_with_head(kind: str, ends: bool = False):
    """The tiny world with a random task head of `kind` (a shallow copy: the cached world keeps none);
    `ends`: its second signal (episode end / arrival logit) is raised far above 0."""
    import copy

    import torch

    from yume_env.model.task_head import TaskHead

    model = copy.copy(tiny_world())
    c = model.config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model.task_head = TaskHead(c.latent_channels, c.latent_hw, kind=kind).eval()
    if ends:
        with torch.no_grad():
            model.task_head.fc2.bias[1] += 10.0
    return model
