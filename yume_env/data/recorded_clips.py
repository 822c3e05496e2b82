"""`RecordedClipSource`: clips of recorded episodes (`yume-env data record`), the same interface as
the simulator's `SimClipSource.render`, for the training stages.

`render(n, steps, seed)` draws `n` windows of 1 + steps frames from the training episodes of a
shard folder (`ShardDataset`), seeded, and reads them through a `torch.utils.data.DataLoader` with
worker processes (the folder is never loaded whole). One frame per env step; the clips carry the
recorded rewards and episode ends (for the world's reward head) and no events.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from yume_env.data.shards import ShardDataset, read_index
from yume_env.data.sim_clips import Clips


class RecordedClipSource:
    """Windows of the recorded episodes in `root` (split "train" or "heldout")."""

    sub_frames = 1  # one frame per env step

    def __init__(self, root: str, device: str | torch.device = "cpu", split: str = "train", workers: int = 2):
        self.root, self.split, self.workers = str(root), split, int(workers)
        self.device = torch.device(device)
        self.index = read_index(root)
        self._datasets: dict[int, ShardDataset] = {}

    @property
    def frame_size(self) -> int:
        return int(self.index["frame_size"])

    def dataset(self, steps: int) -> ShardDataset:
        if steps not in self._datasets:
            ds = ShardDataset(self.root, window=1 + steps, split=self.split)
            if len(ds) == 0:
                longest = max((n for s in self.index["shards"] for n in s["episode_steps"]), default=0)
                raise ValueError(
                    f"{self.root}: no {self.split} episode has {steps} steps (the longest has {longest}); "
                    f"train with shorter clips (--set pretrain.clip_steps=N) or record longer episodes"
                )
            self._datasets[steps] = ds
        return self._datasets[steps]

    def render(self, n: int, steps: int, seed: int) -> Clips:
        ds = self.dataset(steps)
        picks = np.random.default_rng(seed).integers(0, len(ds), size=n).tolist()
        loader = DataLoader(
            Subset(ds, picks), batch_size=n, num_workers=self.workers if n > 8 else 0, persistent_workers=False
        )
        batch = next(iter(loader))
        dev = self.device
        return Clips(
            batch["frames"].to(dev),
            batch["actions"].long().to(dev),
            [[""] * steps for _ in range(n)],
            None,
            None,
            self.sub_frames,
            rewards=batch["rewards"].float().to(dev),
            terminated=batch["terminated"].bool().to(dev),
        )
