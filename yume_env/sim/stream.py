"""Endless training batches straight from the `BatchSimulator` (no disk): frames, actions, events.

    for batch in clip_stream(batch=32, frames=17, device="cuda", seed=0):
        batch["frames"]   # (B, T, H, W, 3) uint8 torch, on the device
        batch["actions"]  # (B, T-1, 2) int64: the action that led from frame t to frame t+1
        batch["events"]   # list of B event texts ("" for none)
        batch["event_start"]  # (B,) int64 first frame showing the event, -1 for none

Each clip starts from a fresh world; a share `event_prob` of clips gets a random event (random
paraphrase) starting at a random step. Frames come `sub_frames` per action, as in the data on disk.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from .batch import BatchSimulator
from .events import EVENTS
from .policies import Policy, make_policy


def random_events(rng: np.random.Generator, n: int) -> list[str]:
    """n random event texts: a random event, then a random paraphrase of it."""
    names = list(EVENTS)
    out = []
    for _ in range(n):
        phrases = EVENTS[names[rng.integers(len(names))]]
        out.append(phrases[rng.integers(len(phrases))])
    return out


def rollout_batch(
    sim: BatchSimulator, policy: Policy, frames: int, rng: np.random.Generator, event_prob: float = 0.3
) -> dict:
    """Reset every world of `sim` and roll `frames` frames (T) with `policy`; see the module doc."""
    if frames < 2:
        raise ValueError(f"frames must be at least 2 (a first view and one transition), got {frames}")
    B, F = sim.batch, sim.sub_frames
    steps = math.ceil((frames - 1) / F)
    views = [sim.reset()[:, None]]
    poses = [sim.poses[:, None]]
    policy.reset()
    inject = rng.random(B) < event_prob
    at = rng.integers(0, steps, B)
    texts = random_events(rng, B)
    actions = []
    for k in range(steps):
        idx = np.nonzero(inject & (at == k))[0]
        if len(idx):
            sim.set_event([texts[i] for i in idx], idx)
        a = policy.act()
        out = sim.step(a)
        views.append(out.frames)
        poses.append(out.poses)
        actions.append(np.repeat(a[:, None], F, 1))
    event_start = np.where(inject, 1 + at * F, -1)
    event_start = np.where(event_start < frames, event_start, -1)
    return {
        "frames": torch.cat(views, 1)[:, :frames],
        "actions": torch.as_tensor(np.concatenate(actions, 1)[:, : frames - 1], device=sim.device),
        "poses": torch.cat(poses, 1)[:, :frames],
        "events": [texts[i] if event_start[i] >= 0 else "" for i in range(B)],
        "event_start": torch.as_tensor(event_start, device=sim.device),
    }


def clip_stream(
    batch: int,
    frames: int,
    height: int = 64,
    width: int = 64,
    sub_frames: int = 2,
    device: str | torch.device = "cpu",
    seed: int | None = None,
    event_prob: float = 0.3,
    policy: str = "mixed",
) -> Iterator[dict]:
    """Yield `rollout_batch` dicts forever (deterministic from `seed`)."""
    rng = np.random.default_rng(seed)
    sim = BatchSimulator(batch, height, width, sub_frames, device=device, seed=int(rng.integers(2**31)))
    pol = make_policy(policy, batch, rng)
    while True:
        yield rollout_batch(sim, pol, frames, rng, event_prob)
