"""3-axis rotary position embedding (RoPE) as in Wan: the head dimension is split into a temporal,
a height and a width part, each rotated by its own position.

Unlike the published code (fixed 1024-entry tables, which is why it fails past 1,016 history
latents), angles are computed from the integer positions on the fly, so any position works.
Pairs are interleaved (x[2i], x[2i+1]) like Wan's `view_as_complex`, so published weights load.
"""

from __future__ import annotations

import functools

import torch


def rope_split(head_dim: int) -> tuple[int, int, int]:
    """Complex (pair) counts for the t, h, w axes: Wan's [c - 2*(c//3), c//3, c//3], c = head_dim/2."""
    c = head_dim // 2
    return c - 2 * (c // 3), c // 3, c // 3


@functools.lru_cache(maxsize=64)
def _inv_freqs(head_dim: int, theta: float, device: str) -> tuple[torch.Tensor, ...]:
    out = []
    for pairs in rope_split(head_dim):
        part = 2 * pairs
        out.append(1.0 / theta ** (torch.arange(0, part, 2, dtype=torch.float64, device=device) / part))
    return tuple(out)


def rope_inv_freqs(head_dim: int, theta: float = 10000.0, device=None) -> tuple[torch.Tensor, ...]:
    """Per-axis inverse frequencies (float64), each part as in Wan's `rope_params(_, 2 * pairs)`."""
    with torch.inference_mode(False), torch.no_grad():  # cached: must be usable in any mode
        return _inv_freqs(head_dim, float(theta), str(torch.device(device or "cpu")))


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """Rotation angles (float64, (..., head_dim // 2)) for integer positions (..., 3) = (t, h, w)."""
    inv = rope_inv_freqs(head_dim, theta, positions.device)
    pos = positions.to(torch.float64)
    return torch.cat([pos[..., i : i + 1] * inv[i] for i in range(3)], dim=-1)


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (float32, (..., head_dim // 2)) of the angles for positions (..., 3)."""
    angles = rope_angles(positions, head_dim, theta)
    return angles.cos().float(), angles.sin().float()


def rope_freqs(positions: torch.Tensor, head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """Unit complex rotations (complex64, (..., head_dim // 2)) for positions (..., 3)."""
    angles = rope_angles(positions, head_dim, theta)
    return torch.polar(torch.ones_like(angles), angles).to(torch.complex64)


def apply_rope(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, heads, S, head_dim) by freqs (B, S, head_dim/2) complex; computed in float32."""
    xc = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(xc * freqs.unsqueeze(1)).flatten(-2).to(x.dtype)


def grid_positions(t0: int, frames: int, h: int, w: int, device=None) -> torch.Tensor:
    """(frames*h*w, 3) long positions of a frames x h x w token grid whose first frame is at t0
    (spatial indices restart at 0 on every grid, as in the published TSCM)."""
    t = torch.arange(t0, t0 + frames, device=device)
    hh = torch.arange(h, device=device)
    ww = torch.arange(w, device=device)
    grid = torch.stack(torch.meshgrid(t, hh, ww, indexing="ij"), dim=-1)
    return grid.reshape(-1, 3)


def layout_positions(grids: tuple[tuple[int, int, int, int], ...], device=None) -> torch.Tensor:
    """(T, 3) long positions of consecutive token grids, each given as (t0, frames, h, w), as one
    cached tensor (a history layout's positions never change; rebuilding them took ~5 small ops per
    band, layout and step). Shared: do not modify it in place."""
    with torch.inference_mode(False), torch.no_grad():  # cached: must be usable in any mode
        return _layout_positions(tuple(tuple(int(v) for v in g) for g in grids), str(torch.device(device or "cpu")))


@functools.lru_cache(maxsize=256)
def _layout_positions(grids: tuple[tuple[int, int, int, int], ...], device: str) -> torch.Tensor:
    parts = [grid_positions(*g, device=device) for g in grids]
    return torch.cat(parts) if parts else torch.zeros(0, 3, dtype=torch.long, device=device)
