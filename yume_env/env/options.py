"""Validation of `reset(options=...)` for the learned world.

Accepted keys (docs/env.md):
- `"event"`: str, the event text for the episode ("" for none);
- `"image"`: uint8 (H, W, 3), the start frame;
- `"frames"`: uint8 (T, H, W, 3) with `"actions"`: int (T-1, 2), a burn-in history (as DIAMOND does);
- `"state"`: a `WorldSnapshot` from `env.unwrapped.get_state()` (resume a saved world).
`image`, `frames` and `state` exclude each other. Errors say what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from yume_env import actions as A
from yume_env.model.text_cache import check_event_text

KNOWN_KEYS = ("event", "image", "frames", "actions", "state")


@dataclass
class ResetOptions:
    event: str | None = None
    image: np.ndarray | None = None
    frames: np.ndarray | None = None
    actions: np.ndarray | None = None
    state: Any = None


def _check_frames(name: str, value: Any, frame_size: tuple[int, int], ndim: int) -> np.ndarray:
    h, w = frame_size
    expected = f"uint8 ({h}, {w}, 3)" if ndim == 3 else f"uint8 (T, {h}, {w}, 3) with T >= 1"
    if not isinstance(value, np.ndarray):
        raise TypeError(f"reset option {name!r} must be a numpy array of {expected}, got {type(value).__name__}")
    if value.dtype != np.uint8:
        raise TypeError(f"reset option {name!r} must have dtype uint8 ({expected}), got dtype {value.dtype}")
    shape_ok = value.ndim == ndim and value.shape[-3:] == (h, w, 3) and (ndim == 3 or value.shape[0] >= 1)
    if not shape_ok:
        raise ValueError(
            f"reset option {name!r} must have shape {expected} (the world's frame size), got shape {value.shape}"
        )
    return np.array(value, dtype=np.uint8, copy=True)


def _check_actions(value: Any, num_frames: int) -> np.ndarray:
    expected = f"int ({num_frames - 1}, 2): one (key, camera) action between each pair of the {num_frames} frames"
    arr = np.asarray(value)
    if arr.size == 0 and num_frames == 1:
        return np.zeros((0, 2), dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"reset option 'actions' must be {expected}, got dtype {arr.dtype}")
    if arr.shape != (num_frames - 1, 2):
        raise ValueError(f"reset option 'actions' must be {expected}, got shape {arr.shape}")
    bad = (arr[:, 0] < 0) | (arr[:, 0] >= A.NUM_KEYS) | (arr[:, 1] < 0) | (arr[:, 1] >= A.NUM_CAMERAS)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"reset option 'actions' row {row} is {arr[row].tolist()}; each row must be (key in [0, {A.NUM_KEYS}), "
            f"camera in [0, {A.NUM_CAMERAS}))"
        )
    return arr.astype(np.int64, copy=True)


def parse_reset_options(options: dict | None, frame_size: tuple[int, int], snapshot_type: type) -> ResetOptions:
    """Checks `options` against the world's `frame_size`; returns copies of the arrays."""
    if options is None:
        return ResetOptions()
    if not isinstance(options, dict):
        raise TypeError(f"reset options must be a dict or None, got {type(options).__name__}")
    unknown = sorted(set(options) - set(KNOWN_KEYS))
    if unknown:
        raise ValueError(f"unknown reset option(s) {unknown}; expected keys among {list(KNOWN_KEYS)}")
    starts = [k for k in ("image", "frames", "state") if options.get(k) is not None]
    if len(starts) > 1:
        raise ValueError(f"reset options {starts} exclude each other: give one of 'image', 'frames' or 'state'")
    parsed = ResetOptions()
    if options.get("event") is not None:
        parsed.event = check_event_text(options["event"], "reset option 'event'")
    if options.get("image") is not None:
        parsed.image = _check_frames("image", options["image"], frame_size, ndim=3)
    if options.get("actions") is not None and options.get("frames") is None:
        raise ValueError("reset option 'actions' needs 'frames': the actions go between the burn-in frames")
    if options.get("frames") is not None:
        parsed.frames = _check_frames("frames", options["frames"], frame_size, ndim=4)
        t = parsed.frames.shape[0]
        if options.get("actions") is None:
            if t > 1:
                raise ValueError(f"reset option 'frames' with T={t} frames needs 'actions': int ({t - 1}, 2)")
            parsed.actions = np.zeros((0, 2), dtype=np.int64)
        else:
            parsed.actions = _check_actions(options["actions"], t)
    if options.get("state") is not None:
        if not isinstance(options["state"], snapshot_type):
            raise TypeError(
                f"reset option 'state' must be a {snapshot_type.__name__} from env.unwrapped.get_state() "
                f"(or load_state(path)), got {type(options['state']).__name__}"
            )
        parsed.state = options["state"]
    return parsed
