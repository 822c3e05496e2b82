"""The spread term: ask each generated chunk for the truth's spread, band by band.

A one-step world scored by MSE predicts the mean of the futures it cannot tell apart, and a mean
varies less than any one of them; fed back as history, the shrink compounds into a blur
(`yume_env.model.spread`, docs/training.md "Keeping the spread"). The env's guard rescales each
chunk's spread after the fact; this term trains the world to keep it.

Each chunk's latents are split into spatial bands, finest first: the detail below 2x2 cells, the
detail between 2x2 and 4x4 cells, and what is left around the chunk's mean (fewer bands when the
latent grid does not divide). The term is the squared log ratio of the generated and the true
root-mean-square of each (world, channel, band), averaged. It asks for as much structure as the
truth has in each band and says nothing about where; MSE keeps the where. A floor in the log
keeps flat bands (a plain sky) from dominating.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

POOLS = (2, 4)  # band edges in latent cells: detail below 2x2, between 2x2 and 4x4, then the rest
FLOOR = 0.02  # added to each band's RMS before the log: latents spread ~0.5-1, a flat band ~0


def band_rms(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, F, h, w) -> (B, C, bands): the RMS of each spatial band of each (world, channel)."""
    if latents.dim() != 5:
        raise ValueError(f"latents (B, C, F, h, w) expected, got {tuple(latents.shape)}")
    B, C, Fr, h, w = latents.shape
    x = latents.float().transpose(1, 2).reshape(B * Fr, C, h, w)
    levels = [x]
    for k in POOLS:
        if h % k == 0 and w % k == 0 and k < max(h, w):
            levels.append(F.interpolate(F.avg_pool2d(x, k), scale_factor=k, mode="nearest"))
    levels.append(x.mean(dim=(2, 3), keepdim=True).expand_as(x))
    bands = torch.stack([fine - coarse for fine, coarse in zip(levels[:-1], levels[1:])], dim=-1)  # (B*F, C, h, w, n)
    power = bands.square().reshape(B, Fr, C, h * w, -1).mean(dim=(1, 3))  # (B, C, n)
    return (power + 1e-12).sqrt()  # the epsilon keeps the gradient finite at a flat band


def band_spread_loss(generated: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean squared log ratio of the bands' RMS, generated (with grad) against truth; latents (B, C, F, h, w)."""
    if generated.shape != truth.shape:
        raise ValueError(f"generated {tuple(generated.shape)} and truth {tuple(truth.shape)} must match")
    with torch.no_grad():
        target = torch.log(band_rms(truth) + FLOOR)
    return (torch.log(band_rms(generated) + FLOOR) - target).square().mean()
