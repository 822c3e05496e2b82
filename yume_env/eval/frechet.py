"""The Fréchet distance between two sets of feature vectors, each fitted with a Gaussian (FID-style).

    d² = |mu_a - mu_b|² + tr(S_a) + tr(S_b) - 2 tr((S_a^½ S_b S_a^½)^½)

In float64 numpy, without scipy: the square roots of the two symmetric PSD covariances come from
`eigh` (negative round-off eigenvalues clipped to 0), and tr((S_a^½ S_b S_a^½)^½) is the sum of the
singular values of S_a^½ S_b^½ (the same quantity, and symmetric in a and b by construction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Gaussian:
    """A Gaussian fit of N feature vectors: mean (D,), covariance (D, D) (unbiased), count N."""

    mean: np.ndarray
    cov: np.ndarray
    count: int

    @classmethod
    def fit(cls, features: np.ndarray) -> "Gaussian":
        """(N, D) features -> their Gaussian; one vector gives a zero covariance (a point mass)."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or len(x) == 0:
            raise ValueError(f"a Gaussian fit needs features shaped (N >= 1, D), got {x.shape}")
        mean = x.mean(0)
        cov = np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1]) if len(x) > 1 else np.zeros((x.shape[1],) * 2)
        return cls(mean, cov, len(x))


def sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix, by `eigh`."""
    sym = (np.asarray(matrix, dtype=np.float64) + np.asarray(matrix, dtype=np.float64).T) / 2
    values, vectors = np.linalg.eigh(sym)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(a: Gaussian | np.ndarray, b: Gaussian | np.ndarray) -> float:
    """The Fréchet distance (squared, as FID reports it) between two Gaussians or two feature sets
    (N, D); 0 for a set with itself, symmetric, never negative."""
    ga = a if isinstance(a, Gaussian) else Gaussian.fit(a)
    gb = b if isinstance(b, Gaussian) else Gaussian.fit(b)
    if ga.mean.shape != gb.mean.shape:
        raise ValueError(f"feature sizes differ: {ga.mean.shape[0]} and {gb.mean.shape[0]}")
    cross = np.linalg.svd(sqrtm_psd(ga.cov) @ sqrtm_psd(gb.cov), compute_uv=False).sum()
    d2 = float(((ga.mean - gb.mean) ** 2).sum() + np.trace(ga.cov) + np.trace(gb.cov) - 2.0 * cross)
    return max(d2, 0.0)
