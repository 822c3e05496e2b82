"""Per-env model settings that must not leak into other envs sharing the same cached model."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any


def configure_sampling(model: Any, sample_steps: int | None) -> Any:
    """The model with `sample_steps` denoising steps per chunk (None = the world's default).

    Models are cached and shared between envs, so a different step count gets a shallow copy of the
    model (same weights, its own config) instead of changing the shared one.
    """
    if sample_steps is None:
        return model
    if isinstance(sample_steps, bool) or not isinstance(sample_steps, int) or sample_steps < 1:
        raise ValueError(f"sample_steps must be a positive integer or None, got {sample_steps!r}")
    if model.config.sample_steps == sample_steps:
        return model
    view = copy.copy(model)
    view.config = dataclasses.replace(model.config, sample_steps=sample_steps)
    return view
