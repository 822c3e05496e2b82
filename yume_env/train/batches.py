"""Training batches as resumable streams.

A stream's position is its whole state: batch `i` is a pure function of `i` (and of the seed and
rank the stream was built with), so a resumed run continues with exactly the batches it would have
seen, and nothing is stored on disk. The simulator streams live in `sim_batches.py`; the Sekai
folder stream in `folder_batches.py`.
"""

from __future__ import annotations

from typing import Any, Callable


class IndexedStream:
    """`next()` returns `make_batch(i)` for i = 0, 1, 2, ...; the state is `i`."""

    def __init__(self, make_batch: Callable[[int], Any], start: int = 0):
        self.make_batch = make_batch
        self.index = int(start)

    def next(self) -> Any:
        batch = self.make_batch(self.index)
        self.index += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"index": self.index}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.index = int(state["index"])


def batch_seed(seed: int, index: int, rank: int = 0) -> int:
    """A distinct 63-bit seed per (run seed, batch index, rank)."""
    x = (int(seed) * 0x9E3779B97F4A7C15 + int(index) * 0xBF58476D1CE4E5B9 + int(rank) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    x ^= x >> 31
    return x & ((1 << 63) - 1)
