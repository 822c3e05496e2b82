"""From camera poses to keyboard labels: the Yume 1.0 quantizer (DESIGN.md section 4).

For each consecutive pair of camera-to-world matrices (optionally strided) take the relative
transform inv(T_i) @ T_{i+1}:
- translation in the current camera frame (OpenCV: x right, y down, z forward):
  z > thr -> "W", z < -thr -> "S", x > thr -> "D", x < -thr -> "A", joined W/S first ("W+A"),
  "None" when no key;
- rotation as extrinsic "xyz" Euler angles: y > thr -> "→", y < -thr -> "←", x > thr -> "↑",
  x < -thr -> "↓", joined up/down first ("↑→"), "·" when none.
Thresholds: 1e-4 (translation) and 1e-3 rad (rotation), both times the stride. A clip's label is
the most common key and the most common camera move. Plain numpy.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .actions import parse_camera, parse_key

TRANSLATION_THRESHOLD = 1e-4
ROTATION_THRESHOLD = 1e-3


def euler_xyz(R: np.ndarray) -> np.ndarray:
    """Extrinsic x-y-z Euler angles (radians) of rotation matrices (..., 3, 3) -> (..., 3).

    R = Rz(c) @ Ry(b) @ Rx(a) (rotate about the fixed x axis first, then y, then z), the
    convention of scipy's `Rotation.as_euler("xyz")`. b is in [-pi/2, pi/2]; at the gimbal lock
    (|b| = pi/2) c is set to 0.
    """
    R = np.asarray(R, dtype=np.float64)
    sb = np.clip(-R[..., 2, 0], -1.0, 1.0)
    b = np.arcsin(sb)
    cb = np.sqrt(R[..., 2, 1] ** 2 + R[..., 2, 2] ** 2)
    regular = cb > 1e-9
    a = np.where(regular, np.arctan2(R[..., 2, 1], R[..., 2, 2]), np.arctan2(-R[..., 1, 2], R[..., 1, 1]))
    c = np.where(regular, np.arctan2(R[..., 1, 0], R[..., 0, 0]), 0.0)
    return np.stack([a, b, c], axis=-1)


def _check(c2w) -> np.ndarray:
    c2w = np.asarray(c2w, dtype=np.float64)
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
        raise ValueError(f"c2w must be camera-to-world matrices of shape (N, 4, 4), got shape {c2w.shape}")
    return c2w


def relative_transforms(c2w, stride: int = 1) -> np.ndarray:
    """(M, 4, 4) inv(T_i) @ T_{i+stride} for i = 0, stride, 2*stride, ..."""
    c2w = _check(c2w)
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    T = c2w[::stride]
    return np.linalg.inv(T[:-1]) @ T[1:]


def _keys(t: np.ndarray, thr: float) -> str:
    fb = "W" if t[2] > thr else "S" if t[2] < -thr else ""
    lr = "D" if t[0] > thr else "A" if t[0] < -thr else ""
    name = "+".join(p for p in (fb, lr) if p)
    return name or "None"


def _camera(angles: np.ndarray, thr: float) -> str:
    ud = "↑" if angles[0] > thr else "↓" if angles[0] < -thr else ""
    lr = "→" if angles[1] > thr else "←" if angles[1] < -thr else ""
    return (ud + lr) or "·"


def quantize_trajectory(c2w, stride: int = 1) -> list[tuple[str, str]]:
    """One (keys, camera) label per step, e.g. [("W+A", "→"), ("None", "·"), ...]."""
    rel = relative_transforms(c2w, stride)
    angles = euler_xyz(rel[:, :3, :3])
    tt, rt = TRANSLATION_THRESHOLD * stride, ROTATION_THRESHOLD * stride
    return [(_keys(rel[i, :3, 3], tt), _camera(angles[i], rt)) for i in range(len(rel))]


def clip_label(c2w, stride: int = 1) -> tuple[str, str]:
    """The clip's (keys, camera): the most common per-step key and the most common camera move.

    Ties go to the label seen first. A clip of one pose has no steps and is ("None", "·").
    """
    steps = quantize_trajectory(c2w, stride)
    if not steps:
        return ("None", "·")
    keys = Counter(k for k, _ in steps).most_common(1)[0][0]
    camera = Counter(c for _, c in steps).most_common(1)[0][0]
    return keys, camera


def trajectory_actions(c2w, stride: int = 1) -> np.ndarray:
    """(N-1, 2) int64 action indices (key, camera) quantized from poses (for folders without actions)."""
    steps = quantize_trajectory(c2w, stride)
    return np.array([(parse_key(k), parse_camera(c)) for k, c in steps], dtype=np.int64).reshape(-1, 2)
