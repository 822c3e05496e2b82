"""`WorldState`: everything one world remembers between env steps, bounded for unbounded episodes.

- `history`: the history latents the TSCM layout can still read (`tscm.frames_to_keep`); older
  ones are dropped for good (the thinning is stable, so a dropped latent is never needed again);
- `memory`: the channel stream's running sums (`MemoryState`), which summarise every latent ever
  added in O(1) space;
- `vae_cache`: the streaming decoder's state, so the next chunk joins the last without a seam;
- `poses`: with pose memory, the dead-reckoned camera pose (x, z, yaw, pitch) of each kept
  history latent, as a (4, K, 1, 1) tensor so it is kept and dropped exactly like `history`;
- `recall`: with recall (`config.recall_frames`), the bank of old views by pose (`recall.py`);
- `event`, counters.
`clone()` branches a rollout; `to_dict()` / `from_dict()` give plain tensors and Python values
(savable with `torch.save`, loadable with `torch.load(weights_only=True)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from yume_env.model.recall import RecallBank
from yume_env.model.tscm_memory import MemoryState

STATE_FORMAT = 1
SETTLED = 1 << 30  # `chunks_since_event` of a world whose event has not changed since it began


def _clone_cache(cache: Any) -> Any:
    if cache is None:
        return None
    if isinstance(cache, dict):
        return {k: v.clone() for k, v in cache.items()}
    return cache.clone()  # a VAE's own cache type (e.g. the Wan2.2 VAE's DecodeCache)


@dataclass
class WorldState:
    history: torch.Tensor  # (C, K, h, w): the kept history latents, oldest first
    n_history: int  # latents in the whole history (K <= n_history)
    memory: MemoryState | None  # channel-stream sums (None when the model has no channel stream)
    vae_cache: Any  # the VAE stream cache after the last decoded latent (batch of 1)
    event: str = ""
    step_count: int = 0  # chunks generated since init_state
    history_tokens: int = 0  # tokens the DiT's history attention reads at the next step
    chunks_since_event: int = SETTLED  # chunks generated since the event text last changed (spread.py waits on it)
    poses: torch.Tensor | None = None  # (4, K, 1, 1) poses of the kept latents (models with pose memory)
    recall: RecallBank | None = None  # old views by pose, a bank of one world (models with recall_frames)

    def clone(self) -> "WorldState":
        """An independent copy (stepping one never changes the other)."""
        return WorldState(
            self.history.clone(), self.n_history, None if self.memory is None else self.memory.clone(),
            _clone_cache(self.vae_cache), self.event, self.step_count, self.history_tokens, self.chunks_since_event,
            None if self.poses is None else self.poses.clone(),
            None if self.recall is None else self.recall.clone(),
        )

    def memory_stats(self) -> dict[str, int]:
        """Sizes that show the memory stays bounded.

        history_chunks: chunks generated since init; history_latents: latents in the whole history
        (grows); stored_latents: latents kept (bounded); memory_tokens: history tokens the DiT attends
        to (bounded); channel_tokens: tokens summarised by the channel stream (grows, O(1) storage).
        """
        return {
            "history_chunks": int(self.step_count),
            "history_latents": int(self.n_history),
            "stored_latents": int(self.history.shape[1]),
            "memory_tokens": int(self.history_tokens),
            "channel_tokens": int(self.memory.n_tokens) if self.memory is not None else 0,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain tensors and Python values (a fresh copy)."""
        cache = self.vae_cache
        if cache is not None and not isinstance(cache, dict):
            cache = _clone_cache(cache)  # a VAE-specific object; fine in process, not a plain dict
        elif cache is not None:
            cache = {k: v.clone() for k, v in cache.items()}
        return {
            "format": STATE_FORMAT,
            "history": self.history.clone(),
            "n_history": int(self.n_history),
            "memory": None if self.memory is None else {k: (v.clone() if torch.is_tensor(v) else v)
                                                         for k, v in self.memory.to_dict().items()},
            "vae_cache": cache,
            "event": self.event,
            "step_count": int(self.step_count),
            "history_tokens": int(self.history_tokens),
            "chunks_since_event": int(self.chunks_since_event),
            "poses": None if self.poses is None else self.poses.clone(),
            "recall": None if self.recall is None else self.recall.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "WorldState":
        required = {"history", "n_history", "memory", "vae_cache", "event", "step_count"}
        missing = sorted(required - set(d))
        if missing:
            raise ValueError(f"WorldState dict lacks {missing}; pass what WorldState.to_dict() returned")
        if d.get("format", STATE_FORMAT) != STATE_FORMAT:
            raise ValueError(f"WorldState format {d['format']} is not supported (this version reads {STATE_FORMAT})")
        history = torch.as_tensor(d["history"])
        if history.ndim != 4:
            raise ValueError(f"WorldState history must be (C, K, h, w), got {tuple(history.shape)}")
        memory = None if d["memory"] is None else MemoryState.from_dict(d["memory"])
        return cls(
            history.clone(), int(d["n_history"]), None if memory is None else memory.clone(),
            _clone_cache(d["vae_cache"]), str(d["event"]), int(d["step_count"]), int(d.get("history_tokens", 0)),
            int(d.get("chunks_since_event", SETTLED)),  # states saved before the field: settled
            None if d.get("poses") is None else torch.as_tensor(d["poses"]).clone(),
            None if d.get("recall") is None else RecallBank.from_dict(d["recall"]),
        )
