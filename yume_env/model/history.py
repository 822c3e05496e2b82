"""`History`: what a batch of worlds remembers for the DiT, as one object (rows are worlds).

Per world: the kept history latents (the frames the TSCM layout can still read,
`tscm.frames_to_keep`; older ones are dropped for good), how many latents the whole history holds,
the channel stream's running sums (`MemoryState`, O(1) in the history length), and, for worlds
with pose memory, each kept latent's dead-reckoned pose and a bank of old views by pose
(`recall.RecallBank`). Two operations matter:

    context = history.read(dit, context=text, target=poses[:, -1])   # tokens for this chunk
    history.append(dit, latents, poses)                               # the chunk, remembered

Worlds at different history lengths are grouped inside (by the frames they keep, by their pose
count), a few tensor ops per group, never per world; inference, training rollouts and evaluation
all go through these two calls. Rows are taken, joined and overwritten with `rows`, `cat` and
`set_rows` (an env resetting one world of many).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from yume_env.model import tscm
from yume_env.model.config import WorldModelConfig
from yume_env.model.dit import HistoryContext, host_tensor
from yume_env.model.pose_memory import relative_features
from yume_env.model.recall import RecallBank, has_entries, sharp_frames
from yume_env.model.tscm_memory import MemoryState


@dataclass
class History:
    """The memory of B worlds (see the module docstring). Build with `History.empty` (then
    `append` the start latents) or `History.from_dict`."""

    config: WorldModelConfig
    latents: list[torch.Tensor]  # per world (C, K_i, h, w): the kept latents, oldest first
    n_history: list[int]  # per world: latents in the whole history (K_i <= n_history[i])
    memory: list[MemoryState | None] | None = None  # channel-stream sums (models with memory_enabled)
    poses: list[torch.Tensor] | None = None  # per world (K_i, 4): poses of the kept latents (pose memory)
    recall: RecallBank | None = None  # the B banks of old views (models with recall_frames)

    # ---- construction and rows -------------------------------------------------------------------
    @classmethod
    def empty(cls, config: WorldModelConfig, like: torch.Tensor, batch: int = 1) -> "History":
        """B worlds with no history, for latents shaped like `like` (C, h, w) (its dtype and device)."""
        C, h, w = like.shape
        return cls(
            config,
            [like.new_zeros(C, 0, h, w) for _ in range(batch)],
            [0] * batch,
            [None] * batch if config.memory_enabled else None,
            [like.new_zeros(0, 4) for _ in range(batch)] if config.pose_memory else None,
            RecallBank.empty(batch, like) if config.recall_frames else None,
        )

    @property
    def batch_size(self) -> int:
        return len(self.latents)

    def rows(self, idx: list[int]) -> "History":
        """The worlds `idx` as a new History (its tensors are shared, its banks copied)."""
        pick = lambda xs: None if xs is None else [xs[i] for i in idx]  # noqa: E731
        bank = None if self.recall is None else self.recall.rows(idx)
        return History(self.config, pick(self.latents), pick(self.n_history), pick(self.memory), pick(self.poses), bank)

    @staticmethod
    def cat(histories: list["History"]) -> "History":
        """The worlds of several Histories of one model, in order."""
        if not histories:
            raise ValueError("History.cat needs at least one History")
        first = histories[0]
        join = lambda name: None if getattr(first, name) is None else [x for h in histories for x in getattr(h, name)]  # noqa: E731
        bank = None if first.recall is None else RecallBank.stack([h.recall for h in histories])
        return History(first.config, join("latents"), join("n_history"), join("memory"), join("poses"), bank)

    def set_rows(self, idx: list[int], other: "History") -> None:
        """Overwrites worlds `idx` with the worlds of `other` (same count, same model), in place."""
        if len(idx) != other.batch_size:
            raise ValueError(f"set_rows got {len(idx)} rows for a History of {other.batch_size} worlds")
        for name in ("latents", "n_history", "memory", "poses"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None:
                for j, i in enumerate(idx):
                    mine[i] = theirs[j]
        if self.recall is not None:
            self.recall.set_rows(idx, other.recall)

    def clone(self) -> "History":
        """An independent copy (appending to one never changes the other)."""
        copy = lambda xs: None if xs is None else [None if x is None else x.clone() for x in xs]  # noqa: E731
        return History(
            self.config,
            copy(self.latents),
            list(self.n_history),
            copy(self.memory),
            copy(self.poses),
            None if self.recall is None else self.recall.clone(),
        )

    def to(self, device: torch.device | str) -> "History":
        move = lambda xs: None if xs is None else [None if x is None else x.to(device) for x in xs]  # noqa: E731
        return History(
            self.config,
            move(self.latents),
            list(self.n_history),
            move(self.memory),
            move(self.poses),
            None if self.recall is None else self.recall.to(device),
        )

    # ---- what the DiT reads ----------------------------------------------------------------------
    def tokens(self) -> list[int]:
        """History tokens the DiT reads at the next step, per world (TSCM bands and recalled views)."""
        c = self.config
        out = [tscm.history_token_count(c.tscm_schedule, n, c.latent_hw) for n in self.n_history]
        if c.recall_frames:
            p = c.patch_size[1]
            per_view = -(-c.latent_hw[0] // p) * -(-c.latent_hw[1] // p)
            out = [
                t + c.recall_frames * per_view * has_entries(n, c.tscm_schedule) for t, n in zip(out, self.n_history)
            ]
        return out

    def tail(self, frames: int) -> list[torch.Tensor]:
        """Each world's newest `frames` kept latents (C, frames, h, w)."""
        return [lat[:, -int(frames) :] for lat in self.latents]

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
            has = [has_entries(n, c.tscm_schedule) for n in self.n_history]
            recalled = [None] * self.batch_size
            if any(has):
                latents, feats = self.recall.recall(target, c.recall_frames)  # gathered copies
                recalled = [(lat, f) if h else None for lat, f, h in zip(latents.unbind(0), feats.unbind(0), has)]
        return dit.encode_history(
            self.latents,
            self.memory,
            context=context,
            n_history=self.n_history,
            poses=features,
            recall=recalled,
            noise_level=noise_level,
        )

    def _pose_features(self, target: torch.Tensor) -> list[torch.Tensor]:
        """Each world's kept poses seen from its target pose, per group of worlds that keep as many
        poses (a few ops per group, not per world)."""
        groups: dict[int, list[int]] = {}
        for i, p in enumerate(self.poses):
            groups.setdefault(p.shape[0], []).append(i)
        features: list[torch.Tensor] = [None] * self.batch_size  # type: ignore[list-item]
        for members in groups.values():
            whole = len(members) == self.batch_size
            kept = torch.stack([self.poses[i] for i in members]).to(target.device)
            rows = relative_features(kept, target if whole else target[host_tensor(members, target.device)])
            for i, f in zip(members, rows.unbind(0)):
                features[i] = f
        return features

    # ---- remembering a chunk ---------------------------------------------------------------------
    def append(self, dit: torch.nn.Module, latents: torch.Tensor, poses: torch.Tensor | None = None) -> None:
        """Remembers each world's new latents (B, C, n, h, w) (and their poses (B, n, 4), models with
        pose memory): one channel-stream update for all worlds, the banks offered the latents that
        leave the sharp window, one bounded append per group of worlds that keep the same frames."""
        c, B, n = self.config, self.batch_size, latents.shape[2]
        if latents.shape[0] != B:
            raise ValueError(f"append got latents of {latents.shape[0]} worlds for a History of {B}")
        if c.pose_memory and poses is None:
            raise ValueError("this model has pose memory: append(..., poses=(B, n, 4)) needs the latents' poses")
        if self.memory is not None:
            self.memory = dit.update_memories(self.memory, latents)
        if c.recall_frames:  # before the append below replaces the stored histories it reads
            self._offer_recall(latents, poses)
        groups: dict[tuple, list[int]] = {}
        for i, (kept, count) in enumerate(zip(self.latents, self.n_history)):
            # grouped by the positions kept, not by length: once the oldest band is thinned, histories
            # of many lengths keep the same positions
            take = tscm.keep_positions(c.tscm_schedule, count, n)
            groups.setdefault((take, tuple(kept.shape)), []).append(i)
        for members in groups.values():
            if len(members) == B:
                new = latents
            elif len(members) == 1:
                new = latents[members[0] : members[0] + 1]
            else:
                new = latents[host_tensor(members, latents.device)]
            kept = torch.stack([self.latents[i].to(latents) for i in members])
            # equal positions and shapes: the first member's length stands for the group
            grown = tscm.append_history(c.tscm_schedule, kept, self.n_history[members[0]], new)
            for i, lat in zip(members, grown.unbind(0)):
                self.latents[i] = lat
            if poses is not None:  # kept and dropped exactly like the latents
                new_poses = poses if len(members) == B else poses[host_tensor(members, poses.device)]
                kept_poses = torch.stack([self.poses[i] for i in members]).to(new_poses)
                take = host_tensor(
                    list(tscm.keep_positions(c.tscm_schedule, self.n_history[members[0]], n)), poses.device
                )
                grown = torch.cat([kept_poses, new_poses], 1).index_select(1, take)
                for i, p in zip(members, grown.unbind(0)):
                    self.poses[i] = p
        self.n_history = [count + n for count in self.n_history]

    def _offer_recall(self, latents: torch.Tensor, poses: torch.Tensor) -> None:
        """Offers each world's bank the latents that leave the schedule's sharp window with this
        append (`recall.py`), read from the stored tail and the new latents; worlds that read the same
        slots go together (once past the sharp window, all of them)."""
        sharp, n, B = sharp_frames(self.config.tscm_schedule), latents.shape[2], self.batch_size
        groups: dict[tuple, list[int]] = {}
        offered: dict[tuple, int] = {}  # the most frames any member's bank was offered so far
        for i, (stored, count) in enumerate(zip(self.latents, self.n_history)):
            lo, hi = max(0, count - sharp), max(0, count + n - sharp)
            if hi > lo:
                kept = min(count, sharp)  # the stored tail covers latents count - kept ..
                key = (kept, lo - (count - kept), hi - lo, stored.shape[1])
                groups.setdefault(key, []).append(i)
                offered[key] = max(offered.get(key, 0), lo)
        for key, members in groups.items():
            kept, first, count, stored = key
            whole = len(members) == B
            idx = None if whole else host_tensor(members, latents.device)
            new_lat = latents if idx is None else latents[idx]
            new_pos = poses if idx is None else poses[idx]
            # stacked whole, then sliced once (every member stores as many latents): no op per world
            tail = torch.cat(
                [torch.stack([self.latents[i] for i in members])[:, :, stored - kept :].to(latents), new_lat], 2
            )
            tail_poses = torch.cat(
                [torch.stack([self.poses[i] for i in members])[:, stored - kept :].to(poses), new_pos], 1
            )
            bank = self.recall if whole else self.recall.rows(members)
            bank.insert_many(tail[:, :, first : first + count], tail_poses[:, first : first + count], offered[key])
            if not whole:
                self.recall.set_rows(members, bank)

    # ---- saving ----------------------------------------------------------------------------------
    def world_dict(self, i: int) -> dict[str, Any]:
        """World i as plain tensors and ints (fresh copies)."""
        return {
            "history": self.latents[i].clone(),
            "n_history": int(self.n_history[i]),
            "memory": None
            if self.memory is None or self.memory[i] is None
            else {k: (v.clone() if torch.is_tensor(v) else v) for k, v in self.memory[i].to_dict().items()},
            "poses": None if self.poses is None else self.poses[i].clone(),
            "recall": None if self.recall is None else self.recall.rows([i]).to_dict(),
        }

    @classmethod
    def from_world_dicts(cls, config: WorldModelConfig, worlds: list[dict[str, Any]]) -> "History":
        """The History of worlds saved by `world_dict`."""
        latents = [torch.as_tensor(w["history"]).clone() for w in worlds]
        memory = [None if w.get("memory") is None else MemoryState.from_dict(w["memory"]).clone() for w in worlds]
        poses = [None if w.get("poses") is None else torch.as_tensor(w["poses"]).clone() for w in worlds]
        banks = [w.get("recall") for w in worlds]
        return cls(
            config,
            latents,
            [int(w["n_history"]) for w in worlds],
            memory if config.memory_enabled else None,
            poses if config.pose_memory else None,
            RecallBank.stack([RecallBank.from_dict(b) for b in banks]) if config.recall_frames else None,
        )
