"""Write a Sekai-layout dataset of simulator clips from mixed policies, with event injections.

Each clip: a fresh world (seeded), one policy of `yume_env.sim.policies` (random with persistence,
walks with turns, loop-backs, look-arounds), `frames` frames at `sub_frames` frames per action, and
with probability `event_prob` one event (random event, random paraphrase) starting at a random step.
The clip's class folder is its label from the camera quantizer (`yume_env.camera.clip_label`).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from yume_env.atomic import atomic_write_text

from ..actions import action_caption, parse_camera, parse_key
from ..camera import clip_label
from ..sim import Simulator
from ..sim.policies import MixedPolicy
from ..sim.stream import random_events
from .layout import DEFAULT_FPS, ClipMeta, class_folder, write_clip


def record_clip(
    sim: Simulator,
    policy: MixedPolicy,
    frames: int,
    rng: np.random.Generator,
    seed: int,
    event: str = "",
    event_step: int = -1,
) -> dict:
    """Roll one clip of `frames` frames in `sim`: frames, poses, per-transition actions, event info."""
    F = sim.sub_frames
    steps = math.ceil((frames - 1) / F)
    views = [sim.reset(seed)[None]]
    poses = [sim.pose[None]]
    policy.reset()
    actions = []
    for k in range(steps):
        if k == event_step:
            sim.set_event(event)
        a = policy.act()[0]
        out = sim.step(a)
        views.append(out.frames)
        poses.append(out.poses)
        actions.append(np.repeat(a[None], F, 0))
    event_start = 1 + event_step * F if event_step >= 0 else -1
    if event_start >= frames:
        event, event_start = "", -1
    return {
        "frames": np.concatenate(views)[:frames],
        "poses": np.concatenate(poses)[:frames],
        "actions": np.concatenate(actions)[: frames - 1].astype(np.int64),
        "event": event if event_start >= 0 else "",
        "event_start": event_start,
        "policy": policy.policy_names()[0],
    }


def generate_dataset(
    out: str | os.PathLike,
    clips: int,
    frames: int = 33,
    height: int = 64,
    width: int = 64,
    seed: int = 0,
    sub_frames: int = 2,
    event_prob: float = 0.35,
    fps: int = DEFAULT_FPS,
    progress: bool = True,
) -> dict:
    """Write `clips` clips under `out`; returns (and writes as `out/dataset.json`) a summary."""
    if clips < 1:
        raise ValueError(f"clips must be at least 1, got {clips}")
    if frames < 2:
        raise ValueError(f"frames must be at least 2 (a first view and one transition), got {frames}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sim = Simulator(height, width, sub_frames, seed=seed)
    policy = MixedPolicy(1, rng)
    steps = math.ceil((frames - 1) / sub_frames)
    classes, events, policies = Counter(), Counter(), Counter()
    for i in tqdm(range(clips), desc="clips", unit="clip", disable=not progress):
        clip_seed = int(rng.integers(0, 2**31 - 1))
        event, event_step = "", -1
        if rng.random() < event_prob:
            event, event_step = random_events(rng, 1)[0], int(rng.integers(0, steps))
        c = record_clip(sim, policy, frames, rng, clip_seed, event, event_step)
        keys, mouse = clip_label(c["poses"])
        meta = ClipMeta(
            0,
            frames - 1,
            frames,
            keys=keys,
            mouse=mouse,
            caption=action_caption(parse_key(keys), parse_camera(mouse)),
            event=c["event"],
            event_start=c["event_start"],
            extra={"Policy": c["policy"], "Seed": str(clip_seed), "Sub Frames": str(sub_frames)},
        )
        folder = class_folder(keys, mouse)
        write_clip(out / folder, f"clip_{i:06d}", c["frames"], c["poses"], meta, c["actions"], fps)
        classes[folder] += 1
        events[c["event"] or "(none)"] += 1
        policies[c["policy"]] += 1
    summary = {
        "clips": clips,
        "frames": frames,
        "height": height,
        "width": width,
        "sub_frames": sub_frames,
        "fps": fps,
        "seed": seed,
        "event_prob": event_prob,
        "classes": dict(sorted(classes.items())),
        "events": dict(sorted(events.items())),
        "policies": dict(sorted(policies.items())),
    }
    atomic_write_text(out / "dataset.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary
