"""Stage `vae`: train the tiny video autoencoder on simulator frames.

Loss per clip of a few consecutive frames (the decoder also reads the previous frame's latent):
L1 + MSE reconstruction, an edge term (L1 between the images' spatial gradients: keeps window
grids and building edges sharp, a cheap stand-in for a perceptual loss) and a small latent L2
that keeps the latent scale bounded (no KL: the DiT sees latents normalised by their measured
per-channel statistics, set at the end with `TinyVAE.set_latent_stats`). Latent noise during
training makes the decoder tolerant of the DiT's slightly-off latents. Reports reconstruction PSNR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from yume_env.model.config import WorldModelConfig
from yume_env.model.vae import build_vae, frames_to_tensor
from yume_env.train import distributed as D
from yume_env.data.sim_clips import ClipPool, IndexedStream, SimClipSource, batch_seed
from yume_env.train.trainer import FitResult, Trainer, TrainerConfig


@dataclass
class VAEStageConfig:
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        lr=1e-3, warmup_steps=100, max_steps=4000, ema_decay=0.999, weight_decay=0.0))
    batch_size: int = 64  # clips per step
    clip_steps: int = 2  # env steps per clip (1 + 2 * 2 = 5 frames)
    pool_clips: int = 256  # see batches.ClipPool
    pool_reuse: float = 4.0  # a pool of 5-frame clips is cheap to encode but costs a render: reuse it
    l1_weight: float = 1.0
    mse_weight: float = 1.0
    edge_weight: float = 0.5
    latent_l2: float = 1e-4
    latent_noise: float = 0.05  # std of noise added to latents, relative to their batch std
    stats_batches: int = 8  # batches measured for the latent normalisation at the end
    seed: int = 0


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2), over the whole tensor."""
    mse = F.mse_loss(a.float().clamp(-1, 1), b.float().clamp(-1, 1))
    return 10.0 * torch.log10(4.0 / mse.clamp_min(1e-10))


def edge_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L1 between horizontal and vertical image differences (B, 3, T, H, W)."""
    dx = lambda v: v[..., :, 1:] - v[..., :, :-1]  # noqa: E731
    dy = lambda v: v[..., 1:, :] - v[..., :-1, :]  # noqa: E731
    return F.l1_loss(dx(x), dx(y)) + F.l1_loss(dy(x), dy(y))


class VAETrainModule(nn.Module):
    """forward(frames uint8 (B, T, H, W, 3)) -> (loss, metrics)."""

    def __init__(self, vae: nn.Module, cfg: VAEStageConfig):
        super().__init__()
        self.vae = vae
        self.cfg = cfg

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.cfg
        x = frames_to_tensor(frames, device=frames.device)  # (B, 3, T, H, W) in [-1, 1]
        z = self.vae.raw_encode(x)
        if c.latent_noise > 0:
            z_in = z + c.latent_noise * z.detach().std() * torch.randn_like(z)
        else:
            z_in = z
        rec = self.vae.raw_decode(z_in).float()
        loss = (c.l1_weight * F.l1_loss(rec, x) + c.mse_weight * F.mse_loss(rec, x)
                + c.edge_weight * edge_loss(rec, x) + c.latent_l2 * z.float().pow(2).mean())
        return loss, {"psnr": psnr(rec.detach(), x)}


def clip_stream(source: SimClipSource, cfg: VAEStageConfig, rank: int = 0) -> IndexedStream:
    pool = ClipPool(source, max(cfg.pool_clips, cfg.batch_size), cfg.clip_steps, cfg.batch_size, cfg.pool_reuse,
                    cfg.seed, rank)

    def make(i: int) -> torch.Tensor:
        clips, _, pick, _ = pool.draw(i)
        return clips.frames[pick]

    return IndexedStream(make)


@torch.no_grad()
def measure_latent_stats(vae: nn.Module, source: SimClipSource, cfg: VAEStageConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of raw latents over `stats_batches` fresh batches."""
    total, total_sq, count = 0.0, 0.0, 0
    for i in range(cfg.stats_batches):
        frames = source.render(cfg.batch_size, cfg.clip_steps, batch_seed(cfg.seed + 7919, i)).frames
        z = vae.raw_encode(frames_to_tensor(frames, device=frames.device)).float()
        total = total + z.sum(dim=(0, 2, 3, 4))
        total_sq = total_sq + z.pow(2).sum(dim=(0, 2, 3, 4))
        count += z.numel() // z.shape[1]
    mean = total / count
    std = (total_sq / count - mean.pow(2)).clamp_min(1e-8).sqrt()
    return mean, std


@torch.no_grad()
def evaluate(vae: nn.Module, source: SimClipSource, cfg: VAEStageConfig, batches: int = 4) -> dict[str, float]:
    """Reconstruction PSNR (dB) of normalised encode -> decode on held-out clips (no latent noise)."""
    vae.eval()
    values = []
    for i in range(batches):
        frames = source.render(cfg.batch_size, cfg.clip_steps, batch_seed(cfg.seed + 104729, i)).frames
        x = frames_to_tensor(frames, device=frames.device)
        values.append(float(psnr(vae.decode(vae.encode(x)), x)))
    return {"vae_psnr_db": sum(values) / len(values)}


def train_vae(model_config: WorldModelConfig, cfg: VAEStageConfig, out: str | Path, *, device: str = "auto",
              deadline: float | None = None, source: SimClipSource | None = None,
              info: D.DistInfo | None = None) -> tuple[nn.Module, FitResult, dict[str, Any]]:
    """Trains (or resumes) the VAE in `out/`; returns (vae with EMA weights and latent stats, fit, metrics).

    Metrics are empty while the stage is unfinished (stopped at `deadline`).
    """
    info = info or D.init_distributed(device)
    torch.manual_seed(cfg.seed)
    vae = build_vae(model_config.vae, model_config.latent_channels)
    source = source or SimClipSource(model_config.height, model_config.width,
                                     sub_frames=model_config.latent_frames_per_chunk * model_config.temporal_compression,
                                     device=info.device)
    stream = clip_stream(source, cfg, info.rank)
    trainer = Trainer(VAETrainModule(vae, cfg), cfg.trainer, Path(out), info=info, name="vae")
    trainer.resume(stream)
    result = trainer.fit(stream, deadline=deadline)
    metrics: dict[str, Any] = {}
    if result.finished:
        trainer.averaged_module()
        mean, std = measure_latent_stats(vae, source, cfg)
        vae.set_latent_stats(mean, std)
        metrics = evaluate(vae, source, cfg)
        metrics["vae_steps"] = result.step
        if not math.isfinite(metrics["vae_psnr_db"]):
            raise FloatingPointError("VAE reconstruction PSNR is not finite; the stage diverged")
    return vae, result, metrics
