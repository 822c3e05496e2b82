"""Pose recall: a bank of old views indexed by camera pose, and the view to show the DiT again.

Why: the TSCM layout keeps old frames coarse (tiny-fine: one token per frame past 7 steps), so a
world that comes back to a place it saw 20 steps ago has only that view's colour to go by, and
pose memory alone did not bring recall (docs/history/training-2026-11.md, *Training recall*). Worlds that revisit
places (WorldMem, Context-as-Memory) keep old views and retrieve them by where the camera was.
This is that, bounded:

- **The bank.** A frame enters when it leaves the schedule's sharp window (the bands before the
  oldest, `sharp_frames`), with its dead-reckoned pose. Poses fall into fixed cells (`pose_cell`:
  one sub-move, a quarter metre and 5 degrees); a frame replaces the entry of its cell (standing
  still or coming back to a pose keeps one, the latest, view; fixed cells, so a slow turn cannot
  drag one entry along), otherwise it takes an empty slot or the oldest entry's. At most
  `BANK_SIZE` entries per world: a loop of 48 steps (96 latents) still finds its start view.
- **Recall.** For each generated chunk, the `count` entries nearest (`pose_distance`) to the pose
  of its last frame are embedded at the current chunk's patch size, with their pose seen from that frame
  (`pose_memory.PoseEmbedding`), and read by the DiT beside the TSCM bands
  (`WanDiT.encode_history(recall=...)`).

The env and the trainer fill the banks through `History.append` with this one rule (`insert_many`:
a chunk's frames at once, equal to inserting them one by one), so training sees the recall the env
gives.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch

from yume_env.host_to_device import to_device
from yume_env.model.pose_memory import relative_features
from yume_env.model.tscm import get_schedule

BANK_SIZE = 128  # entries per world: 128 x (C, h, w) latents (512 KB for the tiny world's 16 x 8 x 8)
# the units of `pose_distance`: 15 degrees of yaw is a quarter of the tiny world's 60-degree view
YAW_TOLERANCE = math.radians(15.0)
PITCH_TOLERANCE = math.radians(10.0)
POSITION_TOLERANCE = 1.0  # metres: two steps
# the bank's cells: one sub-move of a two-frame step (MOVE_SPEED / 2, TURN_SPEED / 2, TILT_SPEED)
POSITION_CELL, YAW_CELL, PITCH_CELL = 0.25, math.radians(5.0), math.radians(5.0)
_FIELDS = ("latents", "poses", "stamp", "inserted")


def pose_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance of poses (..., 4) (x, z, yaw, pitch) in units of the tolerances (< 1: the same place)."""
    d = a - b
    dyaw = torch.remainder(d[..., 2] + math.pi, 2 * math.pi) - math.pi
    return (
        dyaw.abs() / YAW_TOLERANCE
        + d[..., 3].abs() / PITCH_TOLERANCE
        + torch.hypot(d[..., 0], d[..., 1]) / POSITION_TOLERANCE
    )


def pose_cell(poses: torch.Tensor) -> torch.Tensor:
    """The bank cell (..., 4) long of poses (..., 4): position on a grid, yaw and pitch in bins
    (a pose dead-reckoned onto a cell's edge stays in the cell above it despite rounding)."""
    yaw = torch.remainder(poses[..., 2], 2 * math.pi)
    parts = [
        poses[..., 0] / POSITION_CELL,
        poses[..., 1] / POSITION_CELL,
        torch.remainder(torch.floor(yaw / YAW_CELL + 1e-3), round(2 * math.pi / YAW_CELL)),
        poses[..., 3] / PITCH_CELL,
    ]
    return torch.stack([torch.floor(p + 1e-3) for p in parts], -1).long()


@functools.lru_cache(maxsize=64)
def sharp_frames(schedule) -> int:
    """History latents in the schedule's bands before the oldest (the last tier's): those the DiT
    still sees finely, so they enter the bank only once they leave them."""
    tier = get_schedule(schedule).tiers[-1]
    return sum(b.frames for b in tier.bands if b.frames is not None)


@dataclass
class RecallBank:
    """The banks of B worlds: latents (B, C, K, h, w), poses (B, K, 4), stamp (B, K) (insertion
    count of each entry, -1: empty), inserted (B,): frames offered to each bank so far."""

    latents: torch.Tensor
    poses: torch.Tensor
    stamp: torch.Tensor
    inserted: torch.Tensor

    @classmethod
    def empty(cls, batch: int, like: torch.Tensor, size: int = BANK_SIZE) -> "RecallBank":
        """Empty banks for latents shaped like `like` (C, h, w) (its dtype and device)."""
        C, h, w = like.shape
        return cls(
            like.new_zeros(batch, C, size, h, w),
            like.new_zeros(batch, size, 4, dtype=torch.float32),
            torch.full((batch, size), -1, dtype=torch.long, device=like.device),
            torch.zeros(batch, dtype=torch.long, device=like.device),
        )

    @property
    def batch_size(self) -> int:
        return self.latents.shape[0]

    def filled(self) -> torch.Tensor:
        return self.stamp >= 0

    def insert(self, latents: torch.Tensor, poses: torch.Tensor) -> "RecallBank":
        """Offers one frame per world, latents (B, C, h, w) with poses (B, 4): it replaces the nearest
        entry of its cell, else fills an empty slot, else the oldest entry. In place (a world's
        bank is only changed through a fresh `stack` of it); returns self."""
        B = self.batch_size
        poses = poses.to(self.poses)
        same = (pose_cell(self.poses) == pose_cell(poses)[:, None]).all(-1) & self.filled()  # (B, K): at most one
        oldest = self.stamp.argmin(1)  # an empty slot (-1) first
        slot = torch.where(same.any(1), same.long().argmax(1), oldest)
        rows = torch.arange(B, device=slot.device)
        self.latents[rows, :, slot] = latents.to(self.latents)
        self.poses[rows, slot] = poses
        self.stamp[rows, slot] = self.inserted
        self.inserted += 1
        return self

    def insert_many(self, latents: torch.Tensor, poses: torch.Tensor, offered_before: int) -> "RecallBank":
        """Offers n frames per world in order, latents (B, C, n, h, w) with poses (B, n, 4): the same
        banks as n `insert` calls. `offered_before`: at most how many frames any of these banks was
        offered so far (host-side). While that plus n fits the bank, no entry can be evicted and the
        n inserts are one batch of tensor ops (each cell's last frame takes its cell's entry, or the
        empty slot its first frame would take); otherwise they run one by one. In place; returns self."""
        B, n, K = self.batch_size, latents.shape[2], self.stamp.shape[1]
        if n == 0:
            return self
        if offered_before + n > K:
            for t in range(n):
                self.insert(latents[:, :, t], poses[:, t])
            return self
        poses = poses.to(self.poses)
        dev = self.stamp.device
        cells = pose_cell(poses)  # (B, n, 4)
        filled = self.filled()
        in_bank = (cells[:, :, None] == pose_cell(self.poses)[:, None]).all(-1) & filled[:, None]  # (B, n, K)
        same = (cells[:, :, None] == cells[:, None]).all(-1)  # (B, n, n): frames of one cell
        j = torch.arange(n, device=dev)
        first = same.long().argmax(2)  # the first frame of each frame's cell
        last = (n - 1) - same.flip(2).long().argmax(2)  # ... and its last
        has_entry = in_bank.any(2)
        opens = (first == j) & ~has_entry  # frames that open a slot: their cell's first, not in the bank
        rank = (opens.long().cumsum(1) - 1).gather(1, first)  # which empty slot each cell takes, in order
        empty = ~filled
        empty_rank = empty.long().cumsum(1) - 1  # (B, K)
        empty_slot = (empty[:, None] & (empty_rank[:, None] == rank[:, :, None])).long().argmax(2)
        slot = torch.where(has_entry, in_bank.long().argmax(2), empty_slot)  # (B, n)
        rows = torch.arange(B, device=dev)[:, None].expand(B, n)
        # every frame of a cell writes its cell's last frame: duplicate writes carry equal values
        self.latents[rows, :, slot] = latents.to(self.latents)[rows, :, last]
        self.poses[rows, slot] = poses[rows, last]
        self.stamp[rows, slot] = self.inserted[:, None] + last
        self.inserted += n
        return self

    def recall(self, target: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The `count` entries nearest to each world's target pose (B, 4): latents (B, C, count, h, w)
        and their pose features seen from the target (B, count, POSE_FEATURES), nearest first; a bank
        with fewer entries repeats its nearest. Meaningless for an empty bank: callers know from
        their host-side counts (`has_entries`) which worlds recall, so no device sync is needed."""
        target = target.to(self.poses)
        near = self._distances(target).topk(count, dim=1, largest=False)  # (B, count), nearest first
        idx = torch.where(torch.isinf(near.values), near.indices[:, :1], near.indices)
        rows = torch.arange(self.batch_size, device=idx.device)[:, None]
        latents = self.latents[rows, :, idx].permute(0, 2, 1, 3, 4)  # (B, count, C, h, w) -> (B, C, count, h, w)
        return latents, relative_features(self.poses[rows, idx], target)

    def nearest_distance(self, target: torch.Tensor) -> torch.Tensor:
        """Each world's `pose_distance` (B,) from its target pose (B, 4) to its nearest entry (< 1: the
        bank holds a view of that place; inf: an empty bank)."""
        return self._distances(target.to(self.poses)).amin(1)

    def _distances(self, target: torch.Tensor) -> torch.Tensor:
        return pose_distance(self.poses, target[:, None]).masked_fill(~self.filled(), math.inf)

    # ---- one world's bank inside a WorldState, and batches of them ----------------------------------
    @staticmethod
    def stack(banks: list["RecallBank"]) -> "RecallBank":
        """A new batch of the banks (copies: inserting into it changes none of them)."""
        return RecallBank(*(torch.cat([getattr(b, f) for b in banks]) for f in _FIELDS))

    def unbind(self) -> list["RecallBank"]:
        """One bank per world (views: B slices of each field)."""
        if self.batch_size == 1:
            return [self]
        parts = [getattr(self, f).split(1) for f in _FIELDS]
        return [RecallBank(*p) for p in zip(*parts)]

    def rows(self, idx: list[int]) -> "RecallBank":
        """The banks of worlds `idx` (copies)."""
        index = to_device(idx, self.latents.device, torch.long)
        return RecallBank(*(getattr(self, f)[index] for f in _FIELDS))

    def set_rows(self, idx: list[int], other: "RecallBank") -> None:
        """Overwrites the banks of worlds `idx` with `other`'s, in place."""
        index = to_device(idx, self.latents.device, torch.long)
        for f in _FIELDS:
            getattr(self, f)[index] = getattr(other, f).to(getattr(self, f))

    def to(self, device) -> "RecallBank":
        return RecallBank(*(getattr(self, f).to(device) for f in _FIELDS))

    def clone(self) -> "RecallBank":
        return RecallBank(self.latents.clone(), self.poses.clone(), self.stamp.clone(), self.inserted.clone())

    def to_dict(self) -> dict[str, Any]:
        return {
            "latents": self.latents.clone(),
            "poses": self.poses.clone(),
            "stamp": self.stamp.clone(),
            "inserted": self.inserted.clone(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RecallBank":
        return cls(*(torch.as_tensor(d[f]).clone() for f in _FIELDS))


def has_entries(n_history, schedule):
    """Whether a world with `n_history` latents has offered its bank a frame (so it recalls one):
    a host-side test, the same for the env and the trainer (an int, or a numpy array of them)."""
    return n_history > sharp_frames(schedule)
