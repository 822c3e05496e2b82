"""Image metrics over uint8 or float frames, in torch: PSNR and SSIM (gaussian window) between two
images, and the high-frequency energy of one (`laplacian_energy`, what sharpness ratios compare).

Frames are (..., H, W, 3) uint8 numpy arrays or torch tensors, or float tensors in [0, 1]. Every
metric returns one value per image (the leading dimensions kept), so callers average as they need.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PSNR_CAP_DB = 60.0
"""PSNR of identical images is infinite; we cap at 60 dB (MSE floor 1e-6 on [0, 1] pixels) so that
means and plots stay finite. 60 dB is far above anything a learned world reaches."""


def to_float(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, C) -> float32 in [0, 1]; float input is taken as already in [0, 1]."""
    t = torch.as_tensor(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if t.dtype == torch.uint8:
        return t.float() / 255.0
    return t.float()


def psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, cap_db: float = PSNR_CAP_DB) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, peak 1.0, over the last three dims (H, W, C)."""
    x, y = to_float(a), to_float(b)
    if x.shape != y.shape:
        raise ValueError(f"psnr needs two images of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() < 3:
        raise ValueError(f"psnr needs images shaped (..., H, W, C), got {tuple(x.shape)}")
    mse = (x - y).pow(2).mean(dim=(-3, -2, -1))
    floor = 10.0 ** (-cap_db / 10.0)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(floor))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """A normalised 1-D gaussian (size,), the SSIM paper's 11-tap, sigma 1.5 window by default."""
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2.0
    g = torch.exp(-(coords**2) / (2.0 * sigma**2))
    return g / g.sum()


def ssim(
    a: np.ndarray | torch.Tensor,
    b: np.ndarray | torch.Tensor,
    window: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) per image, mean over channels and valid positions.

    Separable gaussian filtering without padding ("valid"), the reference implementation's choice;
    the window shrinks to the image side for images smaller than `window`.
    """
    x, y = to_float(a), to_float(b)
    if x.shape != y.shape:
        raise ValueError(f"ssim needs two images of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() < 3:
        raise ValueError(f"ssim needs images shaped (..., H, W, C), got {tuple(x.shape)}")
    lead, (h, w, c) = x.shape[:-3], x.shape[-3:]
    size = min(window, h, w)
    g = gaussian_window(size, sigma).to(x.device)

    # (N, H, W, C) -> (N*C, 1, H, W): every channel filtered on its own.
    def planes(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(-1, h, w, c).permute(0, 3, 1, 2).reshape(-1, 1, h, w)

    def blur(t: torch.Tensor) -> torch.Tensor:
        t = F.conv2d(t, g.view(1, 1, -1, 1))
        return F.conv2d(t, g.view(1, 1, 1, -1))

    xp, yp = planes(x), planes(y)
    mu_x, mu_y = blur(xp), blur(yp)
    var_x = blur(xp * xp) - mu_x**2
    var_y = blur(yp * yp) - mu_y**2
    cov = blur(xp * yp) - mu_x * mu_y
    c1, c2 = k1**2, k2**2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    per_plane = (num / den).mean(dim=(-3, -2, -1))  # (N*C,)
    return per_plane.view(-1, c).mean(dim=1).view(lead)


LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights of R, G, B
LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


def laplacian_energy(frames: np.ndarray | torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """High-frequency energy per image: the mean squared response of the 4-neighbour Laplacian to
    the luminance (BT.601, [0, 1] pixels), over valid positions. Blur lowers it, a flat image reads 0.

    Batches of `batch` images keep the float copies small on long rollouts."""
    shape = tuple(frames.shape)
    if len(shape) < 3 or shape[-1] != 3:
        raise ValueError(f"laplacian_energy needs RGB images shaped (..., H, W, 3), got {shape}")
    lead, (h, w) = shape[:-3], shape[-3:-1]
    flat = frames.reshape(-1, h, w, 3)
    luma_w = torch.tensor(LUMA)
    kernel = torch.tensor(LAPLACIAN).view(1, 1, 3, 3)
    out = []
    for i in range(0, len(flat), batch):
        part = to_float(flat[i : i + batch])
        luma = part @ luma_w.to(part.device)
        out.append(F.conv2d(luma[:, None], kernel.to(part.device)).pow(2).mean(dim=(1, 2, 3)).cpu())
    return (torch.cat(out) if out else torch.zeros(0)).view(lead)
