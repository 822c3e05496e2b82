"""The action vocabulary: movement keys x camera moves, their captions and their motion.

Plain data and numpy only: every part of the package (model, simulator, env, training) reads the
same tables. Orders follow the published Yume captions (DESIGN.md section 3).
"""

from __future__ import annotations

import numpy as np

KEYS: tuple[str, ...] = ("None", "W", "A", "S", "D", "W+A", "W+D", "S+A", "S+D")
CAMERAS: tuple[str, ...] = ("·", "→", "←", "↑", "↓", "↑→", "↑←", "↓→", "↓←")
NUM_KEYS = len(KEYS)
NUM_CAMERAS = len(CAMERAS)
NUM_ACTIONS = NUM_KEYS * NUM_CAMERAS

# Movement per key in the camera frame: (x = right, z = forward), unit length for diagonals too.
_S = 1.0 / np.sqrt(2.0)
KEY_MOTION = np.array(
    [(0, 0), (0, 1), (-1, 0), (0, -1), (1, 0), (-_S, _S), (_S, _S), (-_S, -_S), (_S, -_S)],
    dtype=np.float64,
)
# Rotation per camera move: (yaw, pitch) signs; yaw > 0 pans right, pitch > 0 tilts up.
CAMERA_MOTION = np.array(
    [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1)],
    dtype=np.float64,
)

# Default speeds per env step, shared by the simulator and the env's dead reckoning.
MOVE_SPEED = 0.5  # metres per step
TURN_SPEED = np.deg2rad(10.0)  # yaw radians per step
TILT_SPEED = np.deg2rad(5.0)  # pitch radians per step
MAX_PITCH = np.deg2rad(35.0)

_KEY_CAPTIONS = {
    "W": "The camera pushes forward (W).",
    "A": "The camera moves to the left (A).",
    "S": "The camera pulls back (S).",
    "D": "The camera moves to the right (D).",
    "W+A": "The camera pushes forward and moves to the left (W+A).",
    "W+D": "The camera pushes forward and moves to the right (W+D).",
    "S+D": "The camera pulls back and moves to the right (S+D).",
    "S+A": "The camera pulls back and moves to the left (S+A).",
    "None": "The camera's movement direction remains stationary (·).",
}
_CAMERA_CAPTIONS = {
    "→": "The camera pans to the right (→).",
    "←": "The camera pans to the left (←).",
    "↑": "The camera tilts up (↑).",
    "↓": "The camera tilts down (↓).",
    "↑→": "The camera tilts up and pans to the right (↑→).",
    "↑←": "The camera tilts up and pans to the left (↑←).",
    "↓→": "The camera tilts down and pans to the right (↓→).",
    "↓←": "The camera tilts down and pans to the left (↓←).",
    "·": "The rotation direction of the camera remains stationary (·).",
}


def action_caption(key: int, camera: int) -> str:
    """The Yume-5B caption of one (key, camera) action."""
    return f"First-person perspective. {_KEY_CAPTIONS[KEYS[key]]} {_CAMERA_CAPTIONS[CAMERAS[camera]]}"


def action_vocabulary() -> list[str]:
    """All 81 action captions, indexed by `flatten_action(key, camera)`."""
    return [action_caption(k, c) for k in range(NUM_KEYS) for c in range(NUM_CAMERAS)]


def flatten_action(key: int, camera: int) -> int:
    return int(key) * NUM_CAMERAS + int(camera)


def unflatten_action(index: int) -> tuple[int, int]:
    if not 0 <= int(index) < NUM_ACTIONS:
        raise ValueError(f"flat action must be an integer in [0, {NUM_ACTIONS}), got {index!r}")
    return divmod(int(index), NUM_CAMERAS)


_KEY_ALIASES = {"": "None", "NONE": "None", "-": "None", "A+W": "W+A", "D+W": "W+D", "A+S": "S+A", "D+S": "S+D"}
_CAMERA_ALIASES = {
    "": "·",
    ".": "·",
    "NONE": "·",
    "RIGHT": "→",
    "LEFT": "←",
    "UP": "↑",
    "DOWN": "↓",
    "→↑": "↑→",
    "←↑": "↑←",
    "→↓": "↓→",
    "←↓": "↓←",
}


def parse_key(text: str) -> int:
    """'W+A' (or 'a+w', 'none') -> key index."""
    name = str(text).strip().upper().replace(" ", "")
    name = _KEY_ALIASES.get(name, name)
    if name not in KEYS:
        raise ValueError(f"unknown movement key {text!r}; expected one of {', '.join(KEYS)}")
    return KEYS.index(name)


def parse_camera(text: str) -> int:
    """'→' (or 'right', '.') -> camera index."""
    name = str(text).strip()
    name = _CAMERA_ALIASES.get(name.upper(), name)
    if name not in CAMERAS:
        raise ValueError(f"unknown camera move {text!r}; expected one of {' '.join(CAMERAS)} (or left/right/up/down)")
    return CAMERAS.index(name)


_TEXT_FORMS = "'KEY', 'CAMERA' or 'KEY CAMERA', e.g. 'W+A →' ('None' for no move)"


def parse_action(text: str) -> np.ndarray:
    """'W+A →', 'W', '→', 'W+A,↑' -> np.array([key, camera]).

    A single token is read as a key if it is one, else as a camera move. 'None' (or '·') is the
    action that does nothing; an empty or blank text is refused, not read as it.
    """
    if not isinstance(text, str):
        raise TypeError(f"action text must be a str, {_TEXT_FORMS}; got {type(text).__name__}")
    parts = [p for p in text.replace(",", " ").split() if p]
    if len(parts) == 0:
        raise ValueError(f"action text {text!r} is empty; write {_TEXT_FORMS}")
    if len(parts) == 1:
        try:
            return np.array([parse_key(parts[0]), 0], dtype=np.int64)
        except ValueError:
            return np.array([0, parse_camera(parts[0])], dtype=np.int64)
    if len(parts) == 2:
        return np.array([parse_key(parts[0]), parse_camera(parts[1])], dtype=np.int64)
    raise ValueError(f"action text {text!r} must be {_TEXT_FORMS}")


def action_to_str(action) -> str:
    """np.array([5, 1]) -> 'W+A →'."""
    key, camera = validate_action(action)
    return f"{KEYS[key]} {CAMERAS[camera]}"


_PAIR = f"two integers (key in [0, {NUM_KEYS}), camera in [0, {NUM_CAMERAS})), e.g. [5, 1]"


def as_action_array(action, expected: str) -> np.ndarray:
    """`np.asarray(action)` (one action or a batch), refusing what numpy would misread: a ragged
    nested list (numpy's own error names no action) or a list that mixes booleans in (numpy turns
    True into 1). ValueError naming the action and `expected` otherwise."""
    if isinstance(action, (list, tuple)) and _holds_bool(action):
        raise ValueError(f"action must be {expected}, got {action!r}: booleans are not actions")
    try:
        return np.asarray(action)
    except ValueError:  # "setting an array element with a sequence ... inhomogeneous shape"
        raise ValueError(f"action must be {expected}, got the ragged list {action!r}") from None


def _holds_bool(items: list | tuple) -> bool:
    """Whether a (nested) list holds a bool anywhere."""
    return any(_holds_bool(v) if isinstance(v, (list, tuple)) else isinstance(v, (bool, np.bool_)) for v in items)


def validate_action(action) -> tuple[int, int]:
    """Checks one MultiDiscrete([9, 9]) action and returns it as two Python ints."""
    arr = as_action_array(action, _PAIR)
    if arr.shape != (2,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"action must be {_PAIR}, got {action!r}")
    key, camera = int(arr[0]), int(arr[1])
    if not (0 <= key < NUM_KEYS and 0 <= camera < NUM_CAMERAS):
        raise ValueError(f"action must be {_PAIR}, got {action!r}")
    return key, camera
