"""Per-env model settings that must not leak into other envs sharing the same cached model."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any


def configure_sampling(model: Any, sample_steps: int | None, spread_gain_max: float | None = None) -> Any:
    """The model with `sample_steps` denoising steps per chunk and `spread_gain_max` (the cap on
    rescaling a new chunk's spread, `yume_env.model.spread`; 1 = off); None keeps the world's own.

    Models are cached and shared between envs, so a different setting gets a shallow copy of the
    model (same weights, its own config) instead of changing the shared one.
    """
    changes: dict[str, Any] = {}
    if sample_steps is not None:
        if isinstance(sample_steps, bool) or not isinstance(sample_steps, int) or sample_steps < 1:
            raise ValueError(f"sample_steps must be a positive integer or None, got {sample_steps!r}")
        changes["sample_steps"] = sample_steps
    if spread_gain_max is not None:
        if (
            isinstance(spread_gain_max, bool)
            or not isinstance(spread_gain_max, (int, float))
            or not spread_gain_max >= 1
        ):
            raise ValueError(f"spread_gain_max must be a number >= 1 (1 = off) or None, got {spread_gain_max!r}")
        changes["spread_gain_max"] = float(spread_gain_max)
    if all(getattr(model.config, k) == v for k, v in changes.items()):
        return model
    view = copy.copy(model)
    view.config = dataclasses.replace(model.config, **changes)
    return view
