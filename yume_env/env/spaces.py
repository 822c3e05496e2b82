"""The action and observation spaces shared by YumeWorld-v0 and YumeSim-v0, and action checking.

Actions follow the world's vocabulary (`yume_env.vocabulary`): Yume's keys x camera moves
(`MultiDiscrete([9, 9])`, action strings like "W+A →" too), or a recorded env's (`Discrete(n)` for
one component, `MultiDiscrete(nvec)` for several); `flatten_actions=True` numbers the combinations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from yume_env import actions as A
from yume_env.vocabulary import YUME, ActionVocabulary


def action_space(flatten_actions: bool = False, vocabulary: ActionVocabulary = YUME) -> spaces.Space:
    """`MultiDiscrete(nvec)` (Yume: [9, 9], key and camera), or `Discrete(n)` for a one-component
    vocabulary or when flattened (Yume: index key * 9 + camera)."""
    if flatten_actions or vocabulary.components == 1:
        return spaces.Discrete(vocabulary.size)
    return spaces.MultiDiscrete(list(vocabulary.nvec))


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
            raise ValueError(
                f"action must be one integer in [0, {A.NUM_ACTIONS}) (flatten_actions=True), got {action!r}"
            )
        index = int(arr.reshape(-1)[0])
        if not 0 <= index < A.NUM_ACTIONS:
            raise ValueError(
                f"action must be one integer in [0, {A.NUM_ACTIONS}) (flatten_actions=True), got {action!r}"
            )
        return A.unflatten_action(index)
    return A.validate_action(action)


def to_action(action: Any, flatten_actions: bool = False, vocabulary: ActionVocabulary = YUME) -> np.ndarray:
    """Checks one action of the env's action space -> int64 (components,); Yume's also as a string."""
    if vocabulary.is_yume:
        return np.array(to_key_camera(action, flatten_actions), dtype=np.int64)
    if isinstance(action, str):
        raise ValueError(
            f"action {action!r}: this world's actions are integers (nvec {list(vocabulary.nvec)}), not text"
        )
    if flatten_actions or vocabulary.components == 1:
        expected = f"one integer in [0, {vocabulary.size})"
        arr = A.as_action_array(action, expected)
        if (
            arr.shape not in ((), (1,))
            or not np.issubdtype(arr.dtype, np.integer)
            or not 0 <= int(arr.reshape(-1)[0]) < vocabulary.size
        ):
            raise ValueError(f"action must be {expected}, got {action!r}")
        return vocabulary.unflat(int(arr.reshape(-1)[0]))
    arr = A.as_action_array(action, f"{vocabulary.components} integers")
    return vocabulary.check(arr.reshape(1, -1) if arr.ndim == 1 else arr, "action", rows=1)[0]


def to_actions(
    actions: Any, num_envs: int, flatten_actions: bool = False, vocabulary: ActionVocabulary = YUME
) -> np.ndarray:
    """Checks a batch of actions of a vector env -> int64 (num_envs, components)."""
    one = flatten_actions or vocabulary.components == 1
    expected = (
        f"{num_envs} integers in [0, {vocabulary.size})"
        if one
        else f"integers of shape ({num_envs}, {vocabulary.components}) with component i in [0, nvec[i]) for nvec {list(vocabulary.nvec)}"
    )
    arr = A.as_action_array(actions, expected)
    if one:
        if arr.shape == (num_envs, 1):
            arr = arr[:, 0]
        if (
            arr.shape != (num_envs,)
            or not np.issubdtype(arr.dtype, np.integer)
            or ((arr < 0) | (arr >= vocabulary.size)).any()
        ):
            raise ValueError(
                f"actions must be {expected}{' (flatten_actions=True)' if flatten_actions else ''}, got {actions!r}"
            )
        return (
            np.stack([vocabulary.unflat(int(i)) for i in arr])
            if vocabulary.components > 1
            else arr.astype(np.int64)[:, None]
        )
    try:
        return vocabulary.check(arr, "actions", rows=num_envs)
    except ValueError:
        raise ValueError(f"actions must be {expected}, got {actions!r}") from None


def actions_from_strings(texts: list[str] | str) -> np.ndarray:
    """ "W,W,W+A →" or ["W", "W+A →"] -> int (T, 2) actions (comma-separated string or a list)."""
    if isinstance(texts, str):
        texts = [t for t in texts.split(",")]
    rows = []
    for n, text in enumerate(texts):
        try:
            rows.append(A.parse_action(text))
        except (TypeError, ValueError) as err:
            raise type(err)(f"action {n} of {texts!r}: {err}") from None
    return np.stack(rows).astype(np.int64) if rows else np.zeros((0, 2), np.int64)
