"""The tiny VAE of the default world: 64x64 RGB <-> 16 x 8 x 8 latents, one latent per frame.

A small convolutional autoencoder (about 0.4 M parameters, a few ms per frame on a CPU core):
8x spatial compression, no temporal compression. The encoder works per frame; the decoder's first
layer also sees the previous frame's latent (causal in time, the first frame of a stream sees
itself), which smooths flicker between frames. Streaming decode therefore caches the last latent
of each chunk. Latents are normalised with per-channel statistics stored as buffers (set by the
VAE training stage with `set_latent_stats`), so the DiT sees roughly unit-variance latents.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from yume_env.model.vae import VAECache, VideoVAE

DEFAULT_CHANNELS = (32, 48, 64)  # feature widths at 1x, 1/2 (and 1/4, 1/8) resolution


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, ch), nn.Conv2d(ch, ch, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(8, ch), nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


class Encoder(nn.Module):
    def __init__(self, latent_channels: int, channels: Sequence[int]):
        super().__init__()
        c0, c1, c2 = channels
        self.net = nn.Sequential(
            nn.Conv2d(3, c0, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(c0, c1, 4, stride=2, padding=1),
            nn.SiLU(),  # H/2
            nn.Conv2d(c1, c2, 4, stride=2, padding=1),
            nn.SiLU(),  # H/4
            nn.Conv2d(c2, c2, 4, stride=2, padding=1),  # H/8
            ResBlock(c2),
            nn.SiLU(),
            nn.Conv2d(c2, latent_channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) -> (N, C, H/8, W/8)
        return self.net(x)


class Decoder(nn.Module):
    """Upsamples with sub-pixel convolutions (PixelShuffle): no full-resolution feature maps, for CPU speed."""

    def __init__(self, latent_channels: int, channels: Sequence[int]):
        super().__init__()
        c0, c1, c2 = channels
        self.conv_in = nn.Conv2d(2 * latent_channels, c2, 3, padding=1)  # [previous latent, latent]
        self.net = nn.Sequential(
            ResBlock(c2),
            nn.SiLU(),
            nn.Conv2d(c2, 4 * c1, 3, padding=1),
            nn.PixelShuffle(2),  # H/4
            ResBlock(c1),
            nn.SiLU(),
            nn.Conv2d(c1, 4 * c0, 3, padding=1),
            nn.PixelShuffle(2),
            nn.SiLU(),  # H/2
            nn.Conv2d(c0, c0, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(c0, 4 * 3, 3, padding=1),
            nn.PixelShuffle(2),  # H
        )

    def forward(self, z: torch.Tensor, z_prev: torch.Tensor) -> torch.Tensor:  # (N, C, h, w) x2 -> (N, 3, H, W)
        return self.net(self.conv_in(torch.cat([z_prev, z], dim=1)))


class TinyVAE(VideoVAE):
    """8x spatial, 1x temporal; `encode`/`decode` take and give (B, 3, T, H, W) in [-1, 1]."""

    spatial_compression = 8
    temporal_compression = 1

    def __init__(self, latent_channels: int = 16, channels: Sequence[int] = DEFAULT_CHANNELS):
        super().__init__()
        if len(channels) != 3 or any(int(c) % 8 for c in channels):
            raise ValueError(f"tiny VAE channels must be three multiples of 8, got {channels!r}")
        self.latent_channels = int(latent_channels)
        self.channels = tuple(int(c) for c in channels)
        self.encoder = Encoder(self.latent_channels, self.channels)
        self.decoder = Decoder(self.latent_channels, self.channels)
        self.register_buffer("latent_mean", torch.zeros(self.latent_channels))
        self.register_buffer("latent_std", torch.ones(self.latent_channels))

    @classmethod
    def from_config(cls, vae_config: dict, latent_channels: int) -> "TinyVAE":
        """From `config.vae` ({"type": "tiny", "spatial_compression": 8, "temporal_compression": 1,
        "channels": [c0, c1, c2], "latent_channels": C}); widths default to DEFAULT_CHANNELS."""
        for key, want in (
            ("spatial_compression", cls.spatial_compression),
            ("temporal_compression", cls.temporal_compression),
            ("latent_channels", latent_channels),
        ):
            if int(vae_config.get(key, want)) != want:
                raise ValueError(f"the tiny VAE has {key} {want}, config.vae asks for {vae_config[key]}")
        return cls(latent_channels, vae_config.get("channels", DEFAULT_CHANNELS))

    def set_latent_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-channel statistics of raw latents (the VAE training stage measures them)."""
        self.latent_mean.copy_(mean.reshape(-1))
        self.latent_std.copy_(std.reshape(-1).clamp_min(1e-6))

    # raw (unnormalised) per-frame maps, for the VAE training stage
    def raw_encode(self, frames: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = frames.shape
        if h % 8 or w % 8:
            raise ValueError(f"tiny VAE frames need sides divisible by 8, got {h}x{w}")
        z = self.encoder(frames.transpose(1, 2).reshape(b * t, 3, h, w).to(self._dtype))
        return z.reshape(b, t, *z.shape[1:]).transpose(1, 2)

    def raw_decode(self, z: torch.Tensor, z_before: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, T, h, w) raw latents -> frames; `z_before` (B, C, h, w) is the latent before the first."""
        b, c, t, h, w = z.shape
        first = z[:, :, :1] if z_before is None else z_before.unsqueeze(2)
        prev = torch.cat([first, z[:, :, :-1]], dim=2)
        fold = lambda v: v.transpose(1, 2).reshape(b * t, c, h, w)  # noqa: E731
        x = self.decoder(fold(z).to(self._dtype), fold(prev).to(self._dtype))
        return x.reshape(b, t, *x.shape[1:]).transpose(1, 2)

    @property
    def _dtype(self) -> torch.dtype:  # inputs follow the weights (e.g. bf16 on a GPU)
        return self.decoder.conv_in.weight.dtype

    def _stats(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1, 1)  # statistics in float32 whatever the weights' dtype
        return self.latent_mean.float().view(shape), self.latent_std.float().view(shape)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        z = self.raw_encode(frames).float()
        mean, std = self._stats(z)
        return (z - mean) / std

    def start_stream(self, latents: torch.Tensor) -> VAECache:
        latents = latents.float()
        mean, std = self._stats(latents)
        return {"last_latent": (latents[:, :, -1] * std[:, :, 0] + mean[:, :, 0]).contiguous()}

    def decode_chunk(self, latents: torch.Tensor, cache: VAECache | None) -> tuple[torch.Tensor, VAECache]:
        latents = latents.float()
        mean, std = self._stats(latents)
        z = latents * std + mean
        z_before = None if cache is None else cache["last_latent"].to(z)
        # contiguous copy: a view would keep the whole chunk alive, and a clone of it (different
        # strides) would convolve with different rounding than the original
        return self.raw_decode(z, z_before).float(), {"last_latent": z[:, :, -1].contiguous()}
