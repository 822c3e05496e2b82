"""`KeyboardAgent`: the keys a person holds -> one (key, camera) action per step.

Key names are browser `KeyboardEvent.code`s, as on the `yume-env play` page: W/A/S/D move
(`KeyW`...), the arrow keys pan and tilt (`ArrowLeft`...). Opposite keys held together cancel.
Single letters ("w", "a") and "left"/"right"/"up"/"down" work too, for terminal front ends.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from agents.base import Agent
from yume_env import actions as A

_ALIASES = {
    "w": "KeyW",
    "a": "KeyA",
    "s": "KeyS",
    "d": "KeyD",
    "left": "ArrowLeft",
    "right": "ArrowRight",
    "up": "ArrowUp",
    "down": "ArrowDown",
}
KNOWN_KEYS = ("KeyW", "KeyA", "KeyS", "KeyD", "ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight")


def _normalise(name: str) -> str:
    code = _ALIASES.get(name.lower(), name) if len(name) == 1 or name.lower() in _ALIASES else name
    if code not in KNOWN_KEYS:
        raise ValueError(f"unknown key {name!r}; expected one of {list(KNOWN_KEYS)} (or w/a/s/d, left/right/up/down)")
    return code


def keys_to_action(held: Iterable[str]) -> np.ndarray:
    """{"KeyW", "ArrowRight"} -> array([1, 1]) ("W →"); the same rule as the play page."""
    h = {_normalise(k) for k in held}
    fw, bw = "KeyW" in h and "KeyS" not in h, "KeyS" in h and "KeyW" not in h
    lf, rt = "KeyA" in h and "KeyD" not in h, "KeyD" in h and "KeyA" not in h
    key = "+".join(p for p in ("W" if fw else "S" if bw else "", "A" if lf else "D" if rt else "") if p) or "None"
    up, dn = "ArrowUp" in h and "ArrowDown" not in h, "ArrowDown" in h and "ArrowUp" not in h
    tl, tr = "ArrowLeft" in h and "ArrowRight" not in h, "ArrowRight" in h and "ArrowLeft" not in h
    camera = ("↑" if up else "↓" if dn else "") + ("→" if tr else "←" if tl else "") or "·"
    return np.array([A.KEYS.index(key), A.CAMERAS.index(camera)], dtype=np.int64)


class KeyboardAgent(Agent):
    """Acts with whatever keys are held now: call `press`/`release` (or `set_held`) from a UI thread.

    A key pressed and released between two steps still counts once (latched), so quick taps move.
    """

    name = "keyboard"

    def __init__(self):
        self.held: set[str] = set()
        self._tapped: set[str] = set()

    def press(self, key: str) -> None:
        code = _normalise(key)
        self.held.add(code)
        self._tapped.add(code)

    def release(self, key: str) -> None:
        self.held.discard(_normalise(key))

    def set_held(self, keys: Iterable[str]) -> None:
        self.held = {_normalise(k) for k in keys}
        self._tapped |= self.held

    def reset(self, obs, info) -> None:
        self.held.clear()
        self._tapped.clear()

    def act(self, obs, info) -> np.ndarray:
        action = keys_to_action(self.held | self._tapped)
        self._tapped.clear()
        return action
