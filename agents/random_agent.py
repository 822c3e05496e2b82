"""`RandomAgent`: uniform random (key, camera) actions, optionally held for a few steps."""

from __future__ import annotations

import numpy as np

from agents.base import Agent
from yume_env import actions as A


class RandomAgent(Agent):
    """Draws a uniform action from the 81; `hold` > 1 keeps each draw for that many steps
    (persistent random actions explore further than per-step noise). Seeded: same seed, same actions."""

    name = "random"

    def __init__(self, seed: int | None = None, hold: int = 1):
        if hold < 1:
            raise ValueError(f"hold must be a positive number of steps, got {hold}")
        self.rng = np.random.default_rng(seed)
        self.hold = int(hold)
        self._current = np.zeros(2, np.int64)
        self._left = 0

    def reset(self, obs, info) -> None:
        self._left = 0

    def act(self, obs, info) -> np.ndarray:
        if self._left == 0:
            self._current = np.array([self.rng.integers(A.NUM_KEYS), self.rng.integers(A.NUM_CAMERAS)], np.int64)
            self._left = self.hold
        self._left -= 1
        return self._current.copy()
