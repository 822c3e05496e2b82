"""The evaluation's access to the ground truth: simulators, event names and a random policy.

Uses `yume_env.sim.Simulator` directly (never the Gymnasium env: train/ runs without gymnasium).
"""

from __future__ import annotations

import numpy as np

from yume_env.actions import NUM_ACTIONS, NUM_CAMERAS

NO_EVENT = "none"


def make_simulator(height: int, width: int, sub_frames: int, seed: int):
    """One `Simulator` rendering `sub_frames` frames per step at (height, width)."""
    from yume_env.sim import Simulator

    return Simulator(height=height, width=width, sub_frames=sub_frames, seed=seed)


def event_classes() -> list[str]:
    """["none", <the simulator's canonical event names in their table order>]."""
    from yume_env.sim.events import EVENTS

    return [NO_EVENT] + list(EVENTS)


def event_prompt(name: str, rng: np.random.Generator) -> str:
    """A text that prompts event `name`: one of its paraphrases ("" for "none")."""
    if name == NO_EVENT:
        return ""
    from yume_env.sim.events import EVENTS

    texts = EVENTS[name]
    texts = [texts] if isinstance(texts, str) else list(texts)
    return str(texts[int(rng.integers(len(texts)))]) if texts else name


def random_actions(rng: np.random.Generator, steps: int, stickiness: float = 0.5) -> np.ndarray:
    """(steps, 2) int64 actions, uniform over the 81 (key, camera) pairs; with probability
    `stickiness` a step repeats the previous action, so walks leave their start area."""
    flat = rng.integers(0, NUM_ACTIONS, size=steps)
    repeat = rng.random(steps) < stickiness
    for t in range(1, steps):
        if repeat[t]:
            flat[t] = flat[t - 1]
    return np.stack([flat // NUM_CAMERAS, flat % NUM_CAMERAS], axis=1).astype(np.int64)
