"""`SekaiClipDataset`: training windows of (frames, actions, poses, captions, event) from a folder.

    ds = SekaiClipDataset("data/sim", window=17, stride=8)
    item = ds[0]
    item["frames"]      # (T, H, W, 3) uint8 torch (or float32 in [0, 1] with frames="float")
    item["actions"]     # (T-1, 2) int64: (key, camera) from frame t to t+1
    item["poses"]       # (T, 4, 4) float32 camera-to-world
    item["captions"]    # T-1 action captions (`yume_env.actions.action_caption`)
    item["event"]       # event text if the event shows in this window, else ""
    item["event_start"] # first window frame showing the event (0 if it began earlier), -1 for none

Works on our generated folders, on real Sekai-layout folders (actions are then re-derived from
the poses with the camera quantizer) and on plain video folders whose clips have no poses but a
`.txt` with `Keys:` / `Mouse:` labels (that action on every frame; poses dead-reckoned from it, see
`yume_env.data.layout`). For episodes recorded from a Gymnasium env see `yume_env.data.shards`. Nothing is skipped silently: a bad clip raises `ClipError`
naming the file, or with `skip_bad=True` is left out and listed in `ds.report["bad"]`.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..actions import action_caption
from ..camera import trajectory_actions
from .layout import ClipError, find_clips, read_clip, read_video


class SekaiClipDataset(Dataset):
    """Windows of `window` frames every `stride` frames over every clip under `root`.

    window=None gives whole clips (one item per clip). `verify=True` decodes every video at
    construction (catches truncated videos up front); otherwise videos are checked when read.
    `cache` decoded clips are kept in memory (LRU).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        window: int | None = 17,
        stride: int | None = None,
        frames: str = "uint8",
        skip_bad: bool = False,
        verify: bool = True,
        cache: int = 64,
    ):
        if frames not in ("uint8", "float"):
            raise ValueError(f"frames must be 'uint8' or 'float', got {frames!r}")
        if window is not None and window < 2:
            raise ValueError(f"window must be at least 2 frames (or None for whole clips), got {window}")
        self.root, self.window, self.frames_format = Path(root), window, frames
        self.stride = stride or window or 1
        self.cache_size = int(cache)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        mp4s, orphans = find_clips(self.root)
        bad: list[dict] = [
            {"path": str(p), "error": f"{p}: clip file without a matching .mp4 (or left by an interrupted write)"}
            for p in orphans
        ]
        if orphans and not skip_bad:
            raise ClipError(bad[0]["error"] + f" ({len(orphans)} such files; pass skip_bad=True to list and skip them)")
        self.clips = []
        for p in mp4s:
            try:
                clip = read_clip(p, decode=verify)
                if clip.actions is None:  # a real Sekai folder: quantize the poses
                    clip.actions = trajectory_actions(clip.poses)
                if verify and self.cache_size:
                    self._remember(len(self.clips), clip.frames)
                clip.frames = None
                self.clips.append(clip)
            except ClipError as e:
                if not skip_bad:
                    raise
                bad.append({"path": str(p), "error": str(e)})
        self.index: list[tuple[int, int]] = []
        for ci, clip in enumerate(self.clips):
            n = clip.meta.duration
            if window is None:
                self.index.append((ci, 0))
            else:
                self.index.extend((ci, s) for s in range(0, n - window + 1, self.stride))
        self.report = {"clips": len(self.clips), "windows": len(self.index), "bad": bad}

    def __len__(self) -> int:
        return len(self.index)

    def _remember(self, ci: int, frames: np.ndarray) -> None:
        self._cache[ci] = frames
        self._cache.move_to_end(ci)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def clip_frames(self, ci: int) -> np.ndarray:
        """Decoded frames of clip `ci` (checked against the .txt Duration)."""
        if ci in self._cache:
            self._cache.move_to_end(ci)
            return self._cache[ci]
        clip = self.clips[ci]
        frames = read_video(clip.path)
        if len(frames) != clip.meta.duration:
            raise ClipError(
                f"{clip.path}: video has {len(frames)} frames but the .txt says Duration: "
                f"{clip.meta.duration} frames (truncated or mismatched clip)"
            )
        if self.cache_size:
            self._remember(ci, frames)
        return frames

    def __getitem__(self, i: int) -> dict:
        ci, start = self.index[i]
        clip = self.clips[ci]
        T = clip.meta.duration if self.window is None else self.window
        sl = slice(start, start + T)
        frames = torch.from_numpy(self.clip_frames(ci)[sl].copy())
        if self.frames_format == "float":
            frames = frames.float() / 255.0
        actions = clip.actions[start : start + T - 1]
        ev_start = clip.meta.event_start
        shows = clip.meta.event and 0 <= ev_start < start + T
        return {
            "frames": frames,
            "actions": torch.from_numpy(actions.copy()),
            "poses": torch.from_numpy(clip.poses[sl].copy()),
            "captions": [action_caption(int(k), int(c)) for k, c in actions],
            "event": clip.meta.event if shows else "",
            "event_start": max(ev_start - start, 0) if shows else -1,
            "clip": str(clip.path),
            "start": start,
        }


def collate_windows(items: list[dict]) -> dict:
    """Batch items: tensors stacked, `captions` as a list of per-item lists, strings as lists."""
    out = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        if torch.is_tensor(vals[0]):
            out[k] = torch.stack(vals)
        elif isinstance(vals[0], int):
            out[k] = torch.tensor(vals)
        else:
            out[k] = vals
    return out
