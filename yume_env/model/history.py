"""`History`: what a batch of worlds remembers for the DiT, as one object of batched tensors (rows are worlds).

Per world: the kept history latents (the frames the TSCM layout can still read,
`tscm.frames_to_keep`; older ones are dropped for good), how many latents the whole history holds,
the channel stream's running sums (`MemoryState`, O(1) in the history length), and, for worlds
with pose memory, each kept latent's dead-reckoned pose and a bank of old views by pose
(`recall.RecallBank`). Two operations matter:

    context = history.read(dit, context=text, target=poses[:, -1])   # tokens for this chunk
    history.append(dit, latents, poses)                               # the chunk, remembered

The kept latents of all worlds are one tensor (B, C, K, h, w), world i's in its first
`kept[i] = tscm.kept_count(n_history[i])` columns (K = the most any world keeps; the rest is
padding), and their poses one (B, K, 4). Worlds at different history lengths are handled per
distinct length (`rows.group_rows`), a few tensor ops each, never per world; once past the
schedule's warm-up every world keeps the same positions and a step is whole-batch ops only.
Inference, training rollouts and evaluation all go through these two calls. Rows are taken, joined
and overwritten with `rows`, `cat` and `set_rows` (an env resetting one world of many).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from yume_env.host_to_device import to_device
from yume_env.model import tscm
from yume_env.model.config import WorldModelConfig
from yume_env.model.dit import HistoryContext
from yume_env.model.pose_memory import relative_features
from yume_env.model.recall import RecallBank, has_entries, sharp_frames
from yume_env.model.rows import group_rows, row_index, take_rows
from yume_env.model.tscm_memory import MemoryBatch, MemoryState


def _pad_columns(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """x zero-padded along `dim` to `size` (x itself when it is that long already)."""
    if x.shape[dim] >= size:
        return x
    shape = list(x.shape)
    shape[dim] = size - x.shape[dim]
    return torch.cat([x, x.new_zeros(shape)], dim)


@dataclass
class History:
    """The memory of B worlds (see the module docstring). Build with `History.empty` (then
    `append` the start latents) or `History.from_world_dicts`."""

    config: WorldModelConfig
    latents: torch.Tensor  # (B, C, K, h, w): world i's kept latents in [:, :, :kept[i]], oldest first
    n_history: list[int]  # per world: latents in the whole history (kept[i] <= n_history[i])
    memory: MemoryBatch | None = None  # channel-stream sums (models with memory_enabled)
    poses: torch.Tensor | None = None  # (B, K, 4): poses of the kept latents (pose memory)
    recall: RecallBank | None = None  # the B banks of old views (models with recall_frames)

    # ---- construction and rows -------------------------------------------------------------------
    @classmethod
    def empty(cls, config: WorldModelConfig, like: torch.Tensor, batch: int = 1) -> "History":
        """B worlds with no history, for latents shaped like `like` (C, h, w) (its dtype and device)."""
        C, h, w = like.shape
        return cls(
            config,
            like.new_zeros(batch, C, 0, h, w),
            [0] * batch,
            MemoryBatch.empty(config, batch, like.device) if config.memory_enabled else None,
            like.new_zeros(batch, 0, 4) if config.pose_memory else None,
            RecallBank.empty(batch, like) if config.recall_frames else None,
        )

    @property
    def batch_size(self) -> int:
        return len(self.n_history)

    @property
    def kept(self) -> list[int]:
        """Per world: how many latents it stores (`tscm.kept_count` of its history length)."""
        return [self._kept(i) for i in range(self.batch_size)]

    def _kept(self, i: int) -> int:
        return tscm.kept_count(self.config.tscm_schedule, self.n_history[i])

    def world_latents(self, i: int) -> torch.Tensor:
        """World i's kept latents (C, kept[i], h, w) (a view)."""
        return self.latents[i, :, : self._kept(i)]

    def world_poses(self, i: int) -> torch.Tensor:
        """World i's kept poses (kept[i], 4) (a view; models with pose memory)."""
        return self.poses[i, : self._kept(i)]

    def rows(self, idx: list[int]) -> "History":
        """The worlds `idx` as a new History (copies)."""
        index = to_device(list(idx), self.latents.device, torch.long)
        n_history = [self.n_history[i] for i in idx]
        K = max((self._kept(i) for i in idx), default=0)
        return History(
            self.config,
            self.latents[:, :, :K].index_select(0, index),
            n_history,
            None if self.memory is None else self.memory.rows(list(idx)),
            None if self.poses is None else self.poses[:, :K].index_select(0, index.to(self.poses.device)),
            None if self.recall is None else self.recall.rows(idx),
        )

    @staticmethod
    def cat(histories: list["History"]) -> "History":
        """The worlds of several Histories of one model, in order (copies)."""
        if not histories:
            raise ValueError("History.cat needs at least one History")
        first = histories[0]
        K = max(h.latents.shape[2] for h in histories)
        return History(
            first.config,
            torch.cat([_pad_columns(h.latents.to(first.latents), 2, K) for h in histories]),
            [n for h in histories for n in h.n_history],
            None if first.memory is None else MemoryBatch.cat([h.memory for h in histories]),
            None
            if first.poses is None
            else torch.cat([_pad_columns(h.poses.to(first.poses), 1, K) for h in histories]),
            None if first.recall is None else RecallBank.stack([h.recall for h in histories]),
        )

    def set_rows(self, idx: list[int], other: "History") -> None:
        """Overwrites worlds `idx` with the worlds of `other` (same count, same model), in place."""
        if len(idx) != other.batch_size:
            raise ValueError(f"set_rows got {len(idx)} rows for a History of {other.batch_size} worlds")
        K = other.latents.shape[2]
        if K > self.latents.shape[2]:
            self.latents = _pad_columns(self.latents, 2, K)
            if self.poses is not None:
                self.poses = _pad_columns(self.poses, 1, K)
        index = to_device(list(idx), self.latents.device, torch.long)
        self.latents[index, :, :K] = other.latents.to(self.latents)
        if self.poses is not None:
            self.poses[index.to(self.poses.device), :K] = other.poses.to(self.poses)
        for j, i in enumerate(idx):
            self.n_history[i] = other.n_history[j]
        if self.memory is not None:
            self.memory.set_rows(list(idx), other.memory)
        if self.recall is not None:
            self.recall.set_rows(idx, other.recall)

    def clone(self) -> "History":
        """An independent copy (appending to one never changes the other)."""
        return History(
            self.config,
            self.latents.clone(),
            list(self.n_history),
            None if self.memory is None else self.memory.clone(),
            None if self.poses is None else self.poses.clone(),
            None if self.recall is None else self.recall.clone(),
        )

    def to(self, device: torch.device | str) -> "History":
        """A copy on `device` (always a copy: `set_rows` writes in place)."""
        return History(
            self.config,
            self.latents.to(device, copy=True),
            list(self.n_history),
            None if self.memory is None else self.memory.to(device),
            None if self.poses is None else self.poses.to(device, copy=True),
            None if self.recall is None else self.recall.to(device),
        )

    # ---- what the DiT reads ----------------------------------------------------------------------
    def tokens(self, worlds: list[int] | None = None) -> list[int]:
        """History tokens the DiT reads at the next step, per world (TSCM bands and recalled views);
        `worlds`: only these (default: all)."""
        c = self.config
        counts = self.n_history if worlds is None else [self.n_history[i] for i in worlds]
        out = [tscm.history_token_count(c.tscm_schedule, n, c.latent_hw) for n in counts]
        if c.recall_frames:
            p = c.patch_size[1]
            per_view = -(-c.latent_hw[0] // p) * -(-c.latent_hw[1] // p)
            out = [t + c.recall_frames * per_view * has_entries(n, c.tscm_schedule) for t, n in zip(out, counts)]
        return out

    def newest(self, frames: int) -> torch.Tensor:
        """Each world's newest `frames` kept latents as one tensor (B, C, frames, h, w) (fewer
        frames where every world keeps fewer; worlds that keep different counts below `frames` do
        not fit one tensor: use `tail`)."""
        frames = int(frames)
        kept = self.kept
        groups = group_rows(kept)
        if len(groups) == 1:
            K = groups[0][0][0]
            return self.latents[:, :, max(K - frames, 0) : K]
        if min(kept) < frames:
            raise ValueError(f"some worlds keep fewer than {frames} latents, and not equally many: use History.tail")
        B, C, _, h, w = self.latents.shape
        first = to_device([k - frames for k in kept], self.latents.device, torch.long)
        cols = first[:, None] + torch.arange(frames, device=self.latents.device)
        return self.latents.gather(2, cols.view(B, 1, frames, 1, 1).expand(B, C, frames, h, w))

    def tail(self, frames: int) -> list[torch.Tensor]:
        """Each world's newest `frames` kept latents (C, min(frames, kept[i]), h, w) (views)."""
        return [self.latents[i, :, max(k - int(frames), 0) : k] for i, k in enumerate(self.kept)]

    def read(
        self,
        dit: torch.nn.Module,
        context: torch.Tensor | None = None,
        target: torch.Tensor | None = None,
        noise_level: torch.Tensor | None = None,
    ) -> HistoryContext:
        """The DiT's history tokens for the next chunk (`WanDiT.encode_history`).

        target (B, 4): the pose of the chunk's last frame (models with pose memory: each kept
        latent's pose is given relative to it, and the banks recall the views nearest to it).
        context: the chunk's text, so causal-mode DiTs precompute the history keys/values now.
        noise_level (B,): how noisy the kept latents are (training; None: clean)."""
        c = self.config
        features = recalled = None
        if c.pose_memory:
            if target is None:
                raise ValueError(
                    "this model has pose memory: read(target=...) needs the pose of the chunk's last frame"
                )
            features = self._pose_features(target)
        if c.recall_frames:
            has = has_entries(np.asarray(self.n_history), c.tscm_schedule).tolist()
            if any(has):
                latents, feats = self.recall.recall(target, c.recall_frames)  # gathered copies
                recalled = (latents, feats, has)
        return dit.encode_history(
            self.latents,
            self.memory,
            context=context,
            n_history=self.n_history,
            poses=features,
            recall=recalled,
            noise_level=noise_level,
            stored=self.kept,
        )

    def _pose_features(self, target: torch.Tensor) -> torch.Tensor:
        """(B, K, F): each world's kept poses seen from its target pose, computed per distinct kept
        count on exactly those poses (vectorised sin/cos round the last bit by where an element
        falls, so padding would change a world's features); one call once every world keeps as many."""
        poses = self.poses.to(target.device)
        groups = group_rows(self.kept)
        if len(groups) == 1:
            (k,), _ = groups[0]
            return relative_features(poses[:, :k], target)
        out = None
        for (k,), members in groups:
            index = to_device(members, target.device, torch.long)
            rows = relative_features(poses[index, :k], target[index])
            if out is None:
                out = rows.new_zeros(self.batch_size, poses.shape[1], rows.shape[-1])
            out[index, :k] = rows
        return out

    # ---- remembering a chunk ---------------------------------------------------------------------
    def append(self, dit: torch.nn.Module, latents: torch.Tensor, poses: torch.Tensor | None = None) -> None:
        """Remembers each world's new latents (B, C, n, h, w) (and their poses (B, n, 4), models with
        pose memory): one channel-stream update for all worlds, the banks offered the latents that
        leave the sharp window, and one gather of [kept, new] for all worlds."""
        c, B, n = self.config, self.batch_size, latents.shape[2]
        if latents.shape[0] != B:
            raise ValueError(f"append got latents of {latents.shape[0]} worlds for a History of {B}")
        if c.pose_memory and poses is None:
            raise ValueError("this model has pose memory: append(..., poses=(B, n, 4)) needs the latents' poses")
        if self.memory is not None:
            self.memory = dit.update_memories(self.memory, latents)
        if c.recall_frames:  # before the append below replaces the stored histories it reads
            self._offer_recall(latents, poses)
        schedule, K = c.tscm_schedule, self.latents.shape[2]
        groups = group_rows(self.n_history)
        plans = [
            (members, tscm.kept_count(schedule, m), tscm.keep_positions(schedule, m, n)) for (m,), members in groups
        ]
        grown_K = max(len(take) for _, _, take in plans)
        every = torch.cat([self.latents.to(latents), latents], 2)  # [K columns (padded), then the n new]
        pose_every = None if poses is None else torch.cat([self.poses.to(poses), poses], 1)
        if len(plans) == 1 and plans[0][1] == K:  # every world keeps the same positions
            take = to_device(list(plans[0][2]), latents.device, torch.long)
            self.latents = every.index_select(2, take)
            if poses is not None:
                self.poses = pose_every.index_select(1, take.to(poses.device))
        else:  # one gather, each world's columns from its own plan (padding reads column 0)
            index = np.zeros((B, grown_K), dtype=np.int64)
            for members, kept, take in plans:
                cols = np.asarray(take, dtype=np.int64)
                index[members, : len(take)] = np.where(cols < kept, cols, K + cols - kept)
            idx = to_device(index, latents.device)
            _, C, _, h, w = every.shape
            self.latents = every.gather(2, idx.view(B, 1, grown_K, 1, 1).expand(B, C, grown_K, h, w))
            if poses is not None:
                pidx = idx.to(poses.device)
                self.poses = pose_every.gather(1, pidx.view(B, grown_K, 1).expand(B, grown_K, 4))
        self.n_history = [count + n for count in self.n_history]

    def _offer_recall(self, latents: torch.Tensor, poses: torch.Tensor) -> None:
        """Offers each world's bank the latents that leave the schedule's sharp window with this
        append (`recall.py`), read from the stored tail and the new latents; worlds that read the same
        slots go together (once past the sharp window, all of them)."""
        schedule = self.config.tscm_schedule
        sharp, n, B = sharp_frames(schedule), latents.shape[2], self.batch_size
        merged: dict[tuple, list] = {}  # slots read -> [members, the most frames any was offered]
        for (count,), members in group_rows(self.n_history):
            lo, hi = max(0, count - sharp), max(0, count + n - sharp)
            if hi > lo:
                kept = min(count, sharp)  # the stored tail covers latents count - kept ..
                key = (kept, lo - (count - kept), hi - lo, tscm.kept_count(schedule, count))
                entry = merged.setdefault(key, [[], 0])
                entry[0].append(members)
                entry[1] = max(entry[1], lo)
        for (kept, first, count, stored), (parts, offered) in merged.items():
            members = np.sort(np.concatenate(parts))
            index = row_index(members, B, latents.device)
            tail = torch.cat(
                [take_rows(self.latents, index)[:, :, stored - kept : stored].to(latents), take_rows(latents, index)], 2
            )
            pidx = None if index is None else index.to(poses.device)
            tail_poses = torch.cat(
                [take_rows(self.poses, pidx)[:, stored - kept : stored].to(poses), take_rows(poses, pidx)], 1
            )
            bank = self.recall if index is None else self.recall.rows(members.tolist())
            bank.insert_many(tail[:, :, first : first + count], tail_poses[:, first : first + count], offered)
            if index is not None:
                self.recall.set_rows(members.tolist(), bank)

    # ---- saving ----------------------------------------------------------------------------------
    def world_dict(self, i: int) -> dict[str, Any]:
        """World i as plain tensors and ints (fresh copies)."""
        return {
            "history": self.world_latents(i).clone(),
            "n_history": int(self.n_history[i]),
            "memory": None if self.memory is None else self.memory[i].clone().to_dict(),
            "poses": None if self.poses is None else self.world_poses(i).clone(),
            "recall": None if self.recall is None else self.recall.rows([i]).to_dict(),
        }

    @classmethod
    def from_world_dicts(cls, config: WorldModelConfig, worlds: list[dict[str, Any]]) -> "History":
        """The History of worlds saved by `world_dict`."""
        latents = [torch.as_tensor(w["history"]) for w in worlds]
        K = max(x.shape[1] for x in latents)
        memory = None
        if config.memory_enabled:
            empty = MemoryBatch.empty(config, 1, latents[0].device)[0]
            states = [None if w.get("memory") is None else MemoryState.from_dict(w["memory"]) for w in worlds]
            memory = MemoryBatch.from_states(states, empty)
        poses = None
        if config.pose_memory:
            poses = torch.stack([_pad_columns(torch.as_tensor(w["poses"]), 0, K) for w in worlds])
        banks = [w.get("recall") for w in worlds]
        return cls(
            config,
            torch.stack([_pad_columns(x, 1, K) for x in latents]),
            [int(w["n_history"]) for w in worlds],
            memory,
            poses,
            RecallBank.stack([RecallBank.from_dict(b) for b in banks]) if config.recall_frames else None,
        )
