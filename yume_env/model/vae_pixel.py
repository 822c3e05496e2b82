"""The pixel codec: frames as they are, rearranged into a grid of patches (no learned weights).

A world that denoises pixels has no autoencoder to cap its sharpness: `encode` folds each
`spatial_compression` x `spatial_compression` block of an RGB frame into the channels of one latent
pixel (space-to-depth, 3 * s * s channels, values in [-1, 1]), `decode` unfolds them. The round trip
is exact, no state joins one chunk to the next, and it costs two reshapes.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from yume_env.model.vae import VAECache, VideoVAE


class PixelCodec(VideoVAE):
    """Space-to-depth by `spatial_compression`; `latent_channels` = 3 * s * s, no temporal compression."""

    temporal_compression = 1

    def __init__(self, spatial_compression: int):
        super().__init__()
        self.spatial_compression = int(spatial_compression)
        self.latent_channels = 3 * self.spatial_compression**2

    @classmethod
    def from_config(cls, vae_config: dict, latent_channels: int) -> "PixelCodec":
        codec = cls(int(vae_config.get("spatial_compression", 8)))
        if codec.latent_channels != latent_channels:
            raise ValueError(
                f"a pixel codec with spatial_compression {codec.spatial_compression} makes "
                f"{codec.latent_channels} latent channels (3 x s x s); set latent_channels to that, "
                f"got {latent_channels}"
            )
        return codec

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> (B, 3*s*s, T, H/s, W/s)."""
        B, C, T, H, W = frames.shape
        x = frames.transpose(1, 2).reshape(B * T, C, H, W)
        z = F.pixel_unshuffle(x, self.spatial_compression)
        return z.reshape(B, T, *z.shape[1:]).transpose(1, 2)

    def decode_chunk(self, latents: torch.Tensor, cache: VAECache | None) -> tuple[torch.Tensor, VAECache | None]:
        """(B, 3*s*s, T, h, w) -> frames (B, 3, T, h*s, w*s); no cache (frames stand alone)."""
        B, C, T, h, w = latents.shape
        x = F.pixel_shuffle(latents.transpose(1, 2).reshape(B * T, C, h, w).float(), self.spatial_compression)
        return x.reshape(B, T, *x.shape[1:]).transpose(1, 2), None
