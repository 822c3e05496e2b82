"""The action the player holds, turned into one action per chunk.

An action is one integer per component of the world's vocabulary (Yume's: key, camera). The page
sends the held action whenever a key or button goes down or up; nothing held is all zeros (Yume's
"None ·"). A chunk uses the action held when it starts, except that any change made since the last
chunk is latched: a tap that begins and ends between two chunks still moves the world once.
"""

from __future__ import annotations

import threading


class Controls:
    def __init__(self, components: int = 2):
        self._lock = threading.Lock()
        self.rest = (0,) * int(components)  # nothing held
        self._held = self.rest
        self._taken = self.rest  # the action the last chunk used
        self._latched: tuple[int, ...] | None = None

    def hold(self, action) -> None:
        with self._lock:
            self._held = tuple(int(v) for v in action)
            if self._held != self._taken:  # a change since the last chunk: that chunk must see it
                self._latched = self._held

    def take(self) -> tuple[int, ...]:
        """The action for the next chunk; clears the latch."""
        with self._lock:
            action = self._held if self._latched is None else self._latched
            self._latched, self._taken = None, action
            return action

    @property
    def held(self) -> tuple[int, ...]:
        with self._lock:
            return self._held

    def release(self) -> None:
        with self._lock:
            self._held, self._latched = self.rest, None
