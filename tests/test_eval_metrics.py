"""PSNR and SSIM of the evaluation against values known in closed form or computed by brute force."""

import numpy as np
import pytest
import torch

from yume_env.eval.metrics import PSNR_CAP_DB, gaussian_window, psnr, ssim


def test_psnr_of_known_mse_is_exact():
    a = torch.zeros(2, 8, 8, 3)
    b = torch.full((2, 8, 8, 3), 0.1)  # MSE 0.01 -> 20 dB
    assert torch.allclose(psnr(a, b), torch.tensor([20.0, 20.0]), atol=1e-4)


def test_psnr_reads_uint8_as_0_to_255():
    a = np.zeros((4, 4, 3), dtype=np.uint8)
    b = np.full((4, 4, 3), 255, dtype=np.uint8)
    assert float(psnr(a, b)) == pytest.approx(0.0, abs=1e-5)


def test_psnr_of_identical_images_is_capped():
    a = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    assert torch.allclose(psnr(a, a), torch.full((3,), PSNR_CAP_DB))


def test_ssim_of_identical_images_is_one():
    a = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    assert torch.allclose(ssim(a, a), torch.ones(2), atol=1e-5)


def test_ssim_of_constant_images_matches_closed_form():
    # No variance: SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1).
    x, y = 0.2, 0.7
    c1 = 0.01**2
    want = (2 * x * y + c1) / (x * x + y * y + c1)
    got = ssim(torch.full((16, 16, 3), x), torch.full((16, 16, 3), y))
    assert float(got) == pytest.approx(want, rel=1e-4)


def _brute_force_ssim(x: np.ndarray, y: np.ndarray, size: int = 11, sigma: float = 1.5) -> float:
    """Wang et al. 2004 by explicit windows (valid positions, one channel)."""
    g = gaussian_window(size, sigma).numpy().astype(np.float64)
    w = np.outer(g, g)
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            px, py = x[i : i + size, j : j + size], y[i : i + size, j : j + size]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * px * px).sum() - mx * mx, (w * py * py).sum() - my * my
            cov = (w * px * py).sum() - mx * my
            vals.append(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
    return float(np.mean(vals))


def test_ssim_matches_brute_force_windows():
    rng = np.random.default_rng(2)
    x = rng.random((20, 20, 1))
    y = np.clip(x + 0.2 * rng.standard_normal(x.shape), 0, 1)
    got = float(ssim(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)))
    assert got == pytest.approx(_brute_force_ssim(x[..., 0], y[..., 0]), abs=1e-4)


def test_ssim_drops_with_noise_and_keeps_leading_dims():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (2, 3, 32, 32, 3)).astype(np.uint8)
    noise = rng.integers(-60, 60, a.shape)
    mild = ssim(a, np.clip(a.astype(int) + noise // 4, 0, 255).astype(np.uint8))
    strong = ssim(a, np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8))
    assert mild.shape == strong.shape == (2, 3)
    assert (strong < mild).all() and (mild < 1).all()


def test_metrics_name_shape_mismatch():
    with pytest.raises(ValueError, match="one shape"):
        psnr(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(ValueError, match="one shape"):
        ssim(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))
