"""3-axis rotary position embedding (RoPE) as in Wan: the head dimension is split into a temporal,
a height and a width part, each rotated by its own position.

Unlike the published code (fixed 1024-entry tables, which is why it fails past 1,016 history
latents), angles are computed from the integer positions on the fly, so any position works.
Pairs are interleaved (x[2i], x[2i+1]) like Wan's `view_as_complex`, so published weights load.
"""

from __future__ import annotations

import torch


def rope_split(head_dim: int) -> tuple[int, int, int]:
    """Complex (pair) counts for the t, h, w axes: Wan's [c - 2*(c//3), c//3, c//3], c = head_dim/2."""
    c = head_dim // 2
    return c - 2 * (c // 3), c // 3, c // 3


def rope_inv_freqs(head_dim: int, theta: float = 10000.0, device=None) -> list[torch.Tensor]:
    """Per-axis inverse frequencies (float64), each part as in Wan's `rope_params(_, 2 * pairs)`."""
    out = []
    for pairs in rope_split(head_dim):
        part = 2 * pairs
        out.append(1.0 / theta ** (torch.arange(0, part, 2, dtype=torch.float64, device=device) / part))
    return out


def rope_cos_sin(
    positions: torch.Tensor, head_dim: int, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotation angles for integer positions.

    positions: (..., 3) long (t, h, w). Returns two float32 tensors (..., head_dim // 2).
    """
    inv = rope_inv_freqs(head_dim, theta, positions.device)
    pos = positions.to(torch.float64)
    angles = torch.cat([pos[..., i : i + 1] * inv[i] for i in range(3)], dim=-1)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, heads, S, head_dim) by cos/sin (B, S, head_dim/2); computed in float32."""
    dtype = x.dtype
    xf = x.float().unflatten(-1, (-1, 2))  # (B, H, S, d/2, 2)
    x0, x1 = xf[..., 0], xf[..., 1]
    c, s = cos.unsqueeze(1), sin.unsqueeze(1)  # broadcast over heads
    out = torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)
    return out.to(dtype)


def grid_positions(t0: int, frames: int, h: int, w: int, device=None) -> torch.Tensor:
    """(frames*h*w, 3) long positions of a frames x h x w token grid whose first frame is at t0
    (spatial indices restart at 0 on every grid, as in the published TSCM)."""
    t = torch.arange(t0, t0 + frames, device=device)
    hh = torch.arange(h, device=device)
    ww = torch.arange(w, device=device)
    grid = torch.stack(torch.meshgrid(t, hh, ww, indexing="ij"), dim=-1)
    return grid.reshape(-1, 3)
