"""The keys the player holds, turned into one (key, camera) action per chunk.

The page sends the held action whenever a key goes down or up. A chunk uses the action held when it
starts; a tap that begins and ends between two chunks is latched, so it still moves the world once.
"""

from __future__ import annotations

import threading


class Controls:
    def __init__(self):
        self._lock = threading.Lock()
        self._held = (0, 0)
        self._latched: tuple[int, int] | None = None

    def hold(self, action: tuple[int, int]) -> None:
        with self._lock:
            self._held = (int(action[0]), int(action[1]))
            if self._held != (0, 0):
                self._latched = self._held

    def take(self) -> tuple[int, int]:
        """The action for the next chunk; clears the latch."""
        with self._lock:
            action = self._held if self._held != (0, 0) or self._latched is None else self._latched
            self._latched = None
            return action

    @property
    def held(self) -> tuple[int, int]:
        with self._lock:
            return self._held

    def release(self) -> None:
        with self._lock:
            self._held, self._latched = (0, 0), None
