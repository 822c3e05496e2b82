"""The video VAE interface the pipeline uses, pixel conversions, and the builder by config.

Shapes: frames are float (B, 3, T, H, W) in [-1, 1]; latents are (B, C, t, h, w), already
normalised (zero mean, unit std per channel), with h = H / spatial_compression and, for a causal
temporal VAE, t = 1 + (T - 1) / temporal_compression (t = T when temporal_compression == 1).

Streaming decode: `decode_chunk(latents, cache) -> (frames, cache)` decodes each latent exactly
once; the cache carries what the next chunk's decode needs from earlier latents (temporal
context), so consecutive chunks join without seams and
`cat(decode_chunk(a, None)[0], decode_chunk(b, cache_a)[0]) == decode(cat(a, b))`.
A cache is `None` (nothing decoded yet) or, by default, a dict of tensors whose dim 0 is the batch,
so the pipeline can stack the caches of several worlds into one batched call and split them again;
a VAE with another cache type provides `stack_caches`, `split_cache` (and `clone_cache`,
`cache_to_dict`/`cache_from_dict` for saving world states) itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
from torch import nn

VAECache = dict[str, torch.Tensor]


class VideoVAE(nn.Module, ABC):
    """What the pipeline needs from a VAE (the tiny VAE here; the Wan2.2 VAE in `model/wan/`)."""

    latent_channels: int
    spatial_compression: int
    temporal_compression: int

    @abstractmethod
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> normalised latents (B, C, t, h, w)."""

    @abstractmethod
    def decode_chunk(self, latents: torch.Tensor, cache: VAECache | None) -> tuple[torch.Tensor, VAECache | None]:
        """Decodes the next latents of a stream: (frames (B, 3, T, H, W), cache for the next chunk)."""

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Decodes a whole latent video (as one stream from its start)."""
        return self.decode_chunk(latents, None)[0]

    def start_stream(self, latents: torch.Tensor) -> VAECache | None:
        """The cache after `latents` (B, C, t, h, w) opened a stream, as if decoded (the pipeline
        primes each world with its start frames, so every step decodes with a cache)."""
        return self.decode_chunk(latents, None)[1]

    def stack_caches(self, caches: list[VAECache | None]) -> VAECache | None:
        return stack_caches(caches)

    def split_cache(self, cache: VAECache | None, batch: int) -> list[VAECache | None]:
        return split_cache(cache, batch)

    def latent_frames(self, n_frames: int) -> int:
        """How many latents `n_frames` pixel frames encode to (first frame alone, then groups)."""
        k = self.temporal_compression
        if n_frames < 1 or (n_frames - 1) % k:
            raise ValueError(f"this VAE encodes 1 + {k}*n frames, got {n_frames}")
        return 1 + (n_frames - 1) // k


def split_cache(cache: VAECache | None, batch: int) -> list[VAECache | None]:
    """Per-world caches from a batched one (one world: the cache itself, whatever its type).

    Views, not copies (B small copies per key made a batched step launch-bound on a GPU), and one
    `split` per key rather than one slice per world and key: caches are never changed in place,
    `stack_caches` copies them, and `WorldState.clone/to_dict` clone."""
    if batch == 1:
        return [cache]
    if cache is None:
        return [None] * batch
    parts = {k: v.split(1) for k, v in cache.items()}
    return [{k: p[i] for k, p in parts.items()} for i in range(batch)]


def stack_caches(caches: list[VAECache | None]) -> VAECache | None:
    """One batched cache from per-world caches (all None -> None; a mix is a bug; one world: as is)."""
    if len(caches) == 1:
        return caches[0]
    if all(c is None for c in caches):
        return None
    if any(c is None for c in caches):
        raise ValueError("cannot batch worlds with and without a VAE stream cache; init_state primes every cache")
    return {k: torch.cat([c[k] for c in caches]) for k in caches[0]}


def frames_to_tensor(frames: np.ndarray | torch.Tensor, device=None, dtype=torch.float32) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, 3, T, H, W) in [-1, 1]."""
    x = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    if x.dtype != torch.uint8 or x.ndim != 5 or x.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (B, T, H, W, 3), got {tuple(x.shape)} {x.dtype}")
    x = x.to(device=device).permute(0, 4, 1, 2, 3).to(dtype)
    return x / 127.5 - 1.0


def tensor_to_pixels(x: torch.Tensor) -> torch.Tensor:
    """float (B, 3, T, H, W) in [-1, 1] -> uint8 (B, T, H, W, 3), contiguous, on x's device."""
    x = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    # contiguous before leaving the device: a channel-last *view* made every later per-world copy a
    # strided gather (50 ms per step at 1,024 worlds for the newest-frame copies alone)
    return x.permute(0, 2, 3, 4, 1).contiguous()


def tensor_to_frames(x: torch.Tensor) -> np.ndarray:
    """float (B, 3, T, H, W) in [-1, 1] -> uint8 numpy (B, T, H, W, 3)."""
    return tensor_to_pixels(x).cpu().numpy()


@torch.no_grad()
def encode_clips(vae: nn.Module, frames: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """uint8 (n, T, H, W, 3) -> normalised latents (n, C, T, h, w) (1x temporal VAE), float32."""
    n, T = frames.shape[:2]
    flat = frames.reshape(n * T, 1, *frames.shape[2:])
    parts = [vae.encode(frames_to_tensor(flat[i : i + chunk], device=frames.device)) for i in range(0, n * T, chunk)]
    z = torch.cat(parts)[:, :, 0]  # (n*T, C, h, w)
    return z.reshape(n, T, *z.shape[1:]).transpose(1, 2).float().contiguous()
