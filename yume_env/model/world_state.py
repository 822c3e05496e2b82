"""`WorldState`: everything a batch of worlds remembers between steps, bounded for unbounded episodes.

One object for B worlds (rows are worlds; `init_state` makes a batch of one):

- `history`: the `History` the DiT reads (kept latents, channel-stream sums, poses, recall banks);
- `vae_cache`: the streaming decoder's state, so the next chunk joins the last without a seam;
- `pose`: each world's dead-reckoned camera pose (x, z, yaw, pitch) at its newest frame
  (`yume_env.motion`), the one pose pose memory reads and the env reports, seen from `origin`
  (the pose of the newest start frame: each episode's frame of reference);
- `events`, `step_count`, `chunks_since_event` per world.

`rows` / `cat` / `set_rows` take, join and overwrite worlds; `split` gives one state per world;
`clone()` branches a rollout; `to_dict()` / `from_dict()` give plain tensors and Python values
(savable with `torch.save`, loadable with `torch.load(weights_only=True)`), one dict per world.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from yume_env.host_to_device import to_device
from yume_env.model import tscm
from yume_env.model.config import WorldModelConfig
from yume_env.model.config_checks import config_fingerprint
from yume_env.model.history import History
from yume_env.model.state_checks import ANY_CACHE, STATE_FORMAT, check_world_dict
from yume_env.model.vae import split_cache, stack_caches

SETTLED = 1 << 30  # `chunks_since_event` of a world whose event has not changed since it began


def _clone_cache(cache: Any) -> Any:
    if cache is None:
        return None
    if isinstance(cache, dict):
        return {k: v.clone() for k, v in cache.items()}
    return cache.clone()  # a VAE's own cache type (e.g. the Wan2.2 VAE's DecodeCache)


@dataclass
class WorldState:
    history: History
    vae_cache: Any  # the VAE stream cache after each world's last decoded latent (batched)
    pose: torch.Tensor  # (B, 4) float32 (x, z, yaw, pitch) of each world's newest frame
    origin: torch.Tensor  # (B, 4) float32: each world's pose at its newest start frame
    events: list[str]
    step_count: list[int]  # chunks generated since init_state, per world
    chunks_since_event: list[int]  # chunks since the event text last changed (spread.py waits on it)
    cache_ops: tuple[Callable, Callable] = (stack_caches, split_cache)  # the VAE's (stack, split)

    @property
    def batch_size(self) -> int:
        return self.history.batch_size

    @property
    def config(self) -> WorldModelConfig:
        return self.history.config

    # ---- worlds ----------------------------------------------------------------------------------
    def rows(self, idx: list[int]) -> "WorldState":
        """Worlds `idx` as a new state (tensors shared where they are not copied by indexing)."""
        index = to_device(idx, self.pose.device, torch.long)
        return WorldState(
            self.history.rows(idx),
            self._cache_rows(idx),
            self.pose[index],
            self.origin[index],
            [self.events[i] for i in idx],
            [self.step_count[i] for i in idx],
            [self.chunks_since_event[i] for i in idx],
            self.cache_ops,
        )

    def split(self) -> list["WorldState"]:
        """One state per world."""
        return [self.rows([i]) for i in range(self.batch_size)]

    @staticmethod
    def cat(states: list["WorldState"]) -> "WorldState":
        """The worlds of several states of one model, in order."""
        if not states:
            raise ValueError("WorldState.cat needs at least one state")
        if len(states) == 1:
            return states[0]
        stack, split = states[0].cache_ops
        caches = [c for s in states for c in split(s.vae_cache, s.batch_size)]
        return WorldState(
            History.cat([s.history for s in states]),
            stack(caches),
            torch.cat([s.pose for s in states]),
            torch.cat([s.origin for s in states]),
            [e for s in states for e in s.events],
            [n for s in states for n in s.step_count],
            [n for s in states for n in s.chunks_since_event],
            states[0].cache_ops,
        )

    def set_rows(self, idx: list[int], other: "WorldState") -> None:
        """Overwrites worlds `idx` with the worlds of `other`, in place."""
        self.history.set_rows(idx, other.history)
        self._set_cache_rows(idx, other.vae_cache, other.batch_size)
        for j, i in enumerate(idx):
            self.events[i] = other.events[j]
            self.step_count[i] = other.step_count[j]
            self.chunks_since_event[i] = other.chunks_since_event[j]
        index = to_device(idx, self.pose.device, torch.long)
        self.pose, self.origin = self.pose.clone(), self.origin.clone()
        self.pose[index], self.origin[index] = other.pose.to(self.pose), other.origin.to(self.origin)

    def _cache_rows(self, idx: list[int]) -> Any:
        """The VAE stream cache of worlds `idx` (a copy): one index per tensor for dict caches."""
        if self.vae_cache is None:
            return None
        if isinstance(self.vae_cache, dict):
            return {k: v[to_device(idx, v.device, torch.long)] for k, v in self.vae_cache.items()}
        stack, split = self.cache_ops
        caches = split(self.vae_cache, self.batch_size)
        return stack([caches[i] for i in idx])

    def _set_cache_rows(self, idx: list[int], theirs: Any, their_batch: int) -> None:
        """Worlds `idx` of the VAE stream cache replaced by `theirs` (a new cache: caches are never
        changed in place); one `index_copy` per tensor for dict caches, whatever the batch."""
        if self.vae_cache is None and theirs is None:
            return
        if isinstance(self.vae_cache, dict) and isinstance(theirs, dict):
            self.vae_cache = {
                k: v.index_copy(0, to_device(idx, v.device, torch.long), theirs[k].to(v))
                for k, v in self.vae_cache.items()
            }
            return
        stack, split = self.cache_ops
        caches, parts = split(self.vae_cache, self.batch_size), split(theirs, their_batch)
        for j, i in enumerate(idx):
            caches[i] = parts[j]
        self.vae_cache = stack(caches)

    def assign(self, other: "WorldState") -> None:
        """Makes this state hold `other`'s worlds (in place: callers holding this object see them)."""
        self.__dict__.update(other.__dict__)

    def clone(self) -> "WorldState":
        """An independent copy (stepping one never changes the other)."""
        return WorldState(
            self.history.clone(),
            _clone_cache(self.vae_cache),
            self.pose.clone(),
            self.origin.clone(),
            list(self.events),
            list(self.step_count),
            list(self.chunks_since_event),
            self.cache_ops,
        )

    # ---- reports ---------------------------------------------------------------------------------
    def memory_stats(self, worlds: list[int] | None = None) -> list[dict[str, int]]:
        """Per world, sizes that show the memory stays bounded: history_chunks (chunks since init),
        history_latents (latents in the whole history, grows), stored_latents (kept, bounded),
        memory_tokens (history tokens the DiT reads, bounded), channel_tokens (tokens summarised by
        the channel stream, grows in O(1) storage). `worlds`: only these (default: all)."""
        h = self.history
        worlds = list(range(self.batch_size)) if worlds is None else list(worlds)
        schedule, tokens = h.config.tscm_schedule, h.tokens(worlds)
        return [
            {
                "history_chunks": int(self.step_count[i]),
                "history_latents": int(h.n_history[i]),
                "stored_latents": tscm.kept_count(schedule, h.n_history[i]),
                "memory_tokens": int(t),
                "channel_tokens": int(h.memory[i].n_tokens) if h.memory is not None and h.memory[i] is not None else 0,
            }
            for i, t in zip(worlds, tokens)
        ]

    # ---- saving ----------------------------------------------------------------------------------
    def to_dict(self) -> list[dict[str, Any]]:
        """One dict of plain tensors and Python values per world (fresh copies), with the fingerprint
        of the config that made it (`config_checks.config_fingerprint`: only that model loads it)."""
        stack, split = self.cache_ops
        caches = split(self.vae_cache, self.batch_size)
        fingerprint = config_fingerprint(self.config)
        return [
            {
                "format": STATE_FORMAT,
                "config_fingerprint": fingerprint,
                **self.history.world_dict(i),
                "vae_cache": _clone_cache(caches[i]),
                "pose": self.pose[i].clone(),
                "origin": self.origin[i].clone(),
                "event": self.events[i],
                "step_count": int(self.step_count[i]),
                "chunks_since_event": int(self.chunks_since_event[i]),
            }
            for i in range(self.batch_size)
        ]

    @classmethod
    def from_dict(
        cls,
        config: WorldModelConfig,
        worlds: list[dict[str, Any]] | dict[str, Any],
        cache_ops: tuple[Callable, Callable] = (stack_caches, split_cache),
        where: str = "saved world",
        cache_layout: Any = ANY_CACHE,
    ) -> "WorldState":
        """The state of worlds saved by `to_dict` (a list of dicts, or one). Every world is checked
        first (`state_checks.check_world_dict`: made by this config's model, shapes, finite values,
        the VAE stream cache against `cache_layout` if given); errors name `where` (with the
        world's index when there are several) and the field."""
        worlds = [worlds] if isinstance(worlds, dict) else list(worlds)
        if not worlds:
            raise ValueError(f"{where}: no worlds to load; pass what WorldState.to_dict() returned")
        for i, d in enumerate(worlds):
            check_world_dict(config, d, where if len(worlds) == 1 else f"{where} {i}", cache_layout)
        stack, _ = cache_ops
        return cls(
            History.from_world_dicts(config, worlds),
            stack([_clone_cache(d["vae_cache"]) for d in worlds]),
            torch.stack([torch.as_tensor(d["pose"], dtype=torch.float32) for d in worlds]),
            torch.stack([torch.as_tensor(d["origin"], dtype=torch.float32) for d in worlds]),
            [str(d["event"]) for d in worlds],
            [int(d["step_count"]) for d in worlds],
            [int(d.get("chunks_since_event", SETTLED)) for d in worlds],
            cache_ops,
        )
