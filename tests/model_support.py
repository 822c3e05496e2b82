"""Helpers for tests of models with random weights (and `CountOps`, the op counter they share)."""

import torch

from yume_env.model.bench import CountOps  # noqa: F401


def awake(model, seed=0):
    """Fills the zero-initialised parameters (Wan's output head, memory gates, biases) with small
    noise: a fresh model's zero head makes every output ignore its inputs, which would hide bugs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.dit.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def synthetic_text(dim: int):
    """A text conditioner with synthetic embeddings for every action caption and simulator event
    (no text encoder needed)."""
    from yume_env.actions import NUM_ACTIONS
    from yume_env.model.text_cache import TextConditioner
    from yume_env.train.text_cache import event_texts

    g = torch.Generator().manual_seed(0)
    return TextConditioner(
        name="minilm",
        model_id="sentence-transformers/all-MiniLM-L6-v2",
        dim=dim,
        tokens_per_text=1,
        actions=[torch.randn(1, dim, generator=g) for _ in range(NUM_ACTIONS)],
        events={e: torch.randn(1, dim, generator=g) for e in event_texts()},
    )


def small_config(**changes):
    """A 32x32 world of the tiny design with a 2-block DiT: fast enough for many steps in a test."""
    from yume_env.model.config import WorldModelConfig

    tiny = WorldModelConfig.preset("tiny")
    return tiny.replace(
        height=32,
        width=32,
        dim=64,
        ffn_dim=128,
        num_layers=2,
        num_heads=2,
        vae={**tiny.vae, "channels": [8, 8, 8]},
        **changes,
    )
