"""One player at a time: a lease on the world held by one browser tab.

A tab claims the world and gets a token; every control request carries it. The lease stays with its
tab while the tab's event stream is open, and for `grace_s` seconds after it closes (a reload keeps
its token in the tab's sessionStorage and claims it back). A second tab is refused with a message
until the first one is gone, so it can never step, reset or read the first tab's world.
"""

from __future__ import annotations

import secrets
import threading
import time


class WorldBusy(Exception):
    """Another tab holds the world (HTTP 409)."""


BUSY_MESSAGE = (
    "This world is being played in another browser tab (one player at a time). "
    "Close that tab (or wait until it is closed); this page connects by itself when the world is free."
)
STALE_MESSAGE = "Another tab took over this world after this page was away; reload the page to play again."


class Owner:
    def __init__(self, grace_s: float = 10.0, clock=time.monotonic):
        self.grace_s = float(grace_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._streams = 0
        self._last_seen = 0.0

    def claim(self, previous: str | None = None) -> str:
        """Returns the lease token, or raises `WorldBusy` while another live tab holds it."""
        with self._lock:
            now = self._clock()
            free = self._token is None or (self._streams == 0 and now - self._last_seen > self.grace_s)
            reclaim = previous is not None and previous == self._token and self._streams == 0
            if not (free or reclaim):
                raise WorldBusy(BUSY_MESSAGE)
            if not reclaim:
                self._token = secrets.token_urlsafe(18)
            self._last_seen = now
            return self._token

    def check(self, token: str | None) -> None:
        """Raises `WorldBusy` unless `token` is the current lease."""
        with self._lock:
            if self._token is None or token != self._token:
                raise WorldBusy(STALE_MESSAGE if token else BUSY_MESSAGE)
            self._last_seen = self._clock()

    def stream_opened(self, token: str | None) -> None:
        with self._lock:
            if self._token is None or token != self._token:
                raise WorldBusy(STALE_MESSAGE if token else BUSY_MESSAGE)
            self._streams += 1
            self._last_seen = self._clock()

    def stream_closed(self) -> None:
        with self._lock:
            self._streams = max(0, self._streams - 1)
            self._last_seen = self._clock()

    def holds(self, token: str | None) -> bool:
        with self._lock:
            return token is not None and token == self._token

    @property
    def watching(self) -> bool:
        """True while the owner's page has its event stream open (the world only runs then)."""
        with self._lock:
            return self._streams > 0
