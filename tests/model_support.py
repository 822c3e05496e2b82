"""Helpers for tests of models with random weights."""

import torch


def awake(model, seed=0):
    """Fills the zero-initialised parameters (Wan's output head, memory gates, biases) with small
    noise: a fresh model's zero head makes every output ignore its inputs, which would hide bugs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.dit.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model
