"""Fan-out of updates from the env thread to the page's Server-Sent Events stream.

The env thread publishes each update once; stream handlers wait for newer ones. Only the newest
`keep` updates are held: a stream that falls further behind skips ahead (live view, not a replay).
"""

from __future__ import annotations

import json
import threading
from collections import deque


class Hub:
    def __init__(self, keep: int = 64):
        self._cond = threading.Condition()
        self._items: deque[tuple[int, str]] = deque(maxlen=keep)
        self._seq = 0
        self._closed = False

    def publish(self, update: dict) -> int:
        with self._cond:
            self._seq += 1
            self._items.append((self._seq, json.dumps({**update, "seq": self._seq})))
            self._cond.notify_all()
            return self._seq

    @property
    def seq(self) -> int:
        with self._cond:
            return self._seq

    def wait(self, after: int, timeout: float) -> list[tuple[int, str]]:
        """Updates newer than `after` (possibly none after `timeout` seconds or on close)."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > after or self._closed, timeout)
            return [item for item in self._items if item[0] > after]

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
