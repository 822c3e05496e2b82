"""The action and observation spaces shared by YumeWorld-v0 and YumeSim-v0, and action checking."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from yume_env import actions as A


def action_space(flatten_actions: bool = False) -> spaces.Space:
    """`MultiDiscrete([9, 9])` (key, camera), or `Discrete(81)` (index key * 9 + camera) when flattened."""
    return spaces.Discrete(A.NUM_ACTIONS) if flatten_actions else spaces.MultiDiscrete([A.NUM_KEYS, A.NUM_CAMERAS])


def observation_space(size: tuple[int, int]) -> spaces.Box:
    h, w = size
    return spaces.Box(low=0, high=255, shape=(int(h), int(w), 3), dtype=np.uint8)


def check_obs_size(size) -> tuple[int, int] | None:
    """`obs_size` argument -> (height, width) or None."""
    if size is None:
        return None
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"obs_size must be (height, width) positive integers or None, got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"obs_size must be (height, width) positive integers or None, got {size!r}")
    return h, w


def to_key_camera(action: Any, flatten_actions: bool = False) -> tuple[int, int]:
    """Checks one action of the env's action space (or an action string like "W+A →") -> (key, camera)."""
    if isinstance(action, str):
        return tuple(int(v) for v in A.parse_action(action))
    if flatten_actions:
        arr = A.as_action_array(action, f"one integer in [0, {A.NUM_ACTIONS}) (flatten_actions=True)")
        if arr.shape not in ((), (1,)) or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"action must be one integer in [0, {A.NUM_ACTIONS}) (flatten_actions=True), got {action!r}")
        index = int(arr.reshape(-1)[0])
        if not 0 <= index < A.NUM_ACTIONS:
            raise ValueError(f"action must be one integer in [0, {A.NUM_ACTIONS}) (flatten_actions=True), got {action!r}")
        return A.unflatten_action(index)
    return A.validate_action(action)


def actions_from_strings(texts: list[str] | str) -> np.ndarray:
    """"W,W,W+A →" or ["W", "W+A →"] -> int (T, 2) actions (comma-separated string or a list)."""
    if isinstance(texts, str):
        texts = [t for t in texts.split(",")]
    rows = []
    for n, text in enumerate(texts):
        try:
            rows.append(A.parse_action(text))
        except (TypeError, ValueError) as err:
            raise type(err)(f"action {n} of {texts!r}: {err}") from None
    return np.stack(rows).astype(np.int64) if rows else np.zeros((0, 2), np.int64)
