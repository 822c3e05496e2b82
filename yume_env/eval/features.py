"""The features of the Fréchet distance: the event classifier's penultimate layer, projected to 64-d.

The event classifier (`probes.EventClassifier`) was trained on simulator frames only. Its 512-d
penultimate activations (after the hidden layer's SiLU) are mapped to `dim` dimensions by a fixed
random orthogonal projection (seed `seed`), so that the Gaussian fit of a few hundred frames is
well posed. A projection with orthonormal columns keeps distances on average (scaled by dim / 512);
the Fréchet distance does not depend on which orthonormal basis of its span is used, so the sign
conventions of the QR routine do not matter.
"""

from __future__ import annotations

import numpy as np
import torch

from yume_env.eval.probes import EventClassifier, Probes, prepare

FEATURE_DIM = 64
PROJECTION_SEED = 0


def projection(width: int, dim: int = FEATURE_DIM, seed: int = PROJECTION_SEED) -> np.ndarray:
    """(width, dim) float64 with orthonormal columns, from a seeded Gaussian matrix."""
    if not 1 <= dim <= width:
        raise ValueError(f"the projection keeps 1 to {width} dimensions, got {dim}")
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((width, dim)))
    return q


class FrechetFeatures:
    """uint8 frames -> `dim`-d features for the Fréchet distance (module docstring)."""

    def __init__(self, probes: Probes, dim: int = FEATURE_DIM, seed: int = PROJECTION_SEED) -> None:
        self.classifier: EventClassifier = probes.event_classifier
        self.width = int(self.classifier.head[0].out_features)
        self.dim, self.seed = int(dim), int(seed)
        self.matrix = projection(self.width, self.dim, self.seed)

    def describe(self) -> dict:
        """What the features are, for the results."""
        return {
            "network": "event classifier (probes), penultimate layer",
            "width": self.width,
            "dim": self.dim,
            "projection": f"random orthonormal, seed {self.seed}",
        }

    @torch.no_grad()
    def penultimate(self, frames: np.ndarray, batch: int = 256) -> np.ndarray:
        """uint8 frames (..., H, W, 3) -> (N, width) float64 activations of the hidden layer."""
        flat = np.asarray(frames).reshape(-1, *np.shape(frames)[-3:])
        device = next(self.classifier.parameters()).device
        hidden = self.classifier.head[:2]  # Linear, SiLU (the last Linear gives the logits)
        out = [
            hidden(self.classifier.encoder(prepare(flat[i : i + batch], device))).double().cpu()
            for i in range(0, len(flat), batch)
        ]
        return torch.cat(out).numpy() if out else np.zeros((0, self.width))

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """uint8 frames (..., H, W, 3) -> (N, dim) float64 features, N the frames in order."""
        return self.penultimate(frames) @ self.matrix
