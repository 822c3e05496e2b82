"""The action the simulator's camera actually performed in one step, read from its poses.

The inverse-dynamics probe is trained, and scored, on these effective actions rather than on the
commanded ones: a tilt at the pitch limit or a walk into a wall moves nothing, and no probe can see
an action that left no trace. Poses are 4x4 camera-to-world matrices, OpenCV camera axes
(x right, y down, z forward).
"""

from __future__ import annotations

import numpy as np

from yume_env.actions import CAMERA_MOTION, KEY_MOTION, MOVE_SPEED, TILT_SPEED, TURN_SPEED

# Fractions of the per-step speeds above which a component counts as moved. Diagonal keys move
# 0.71 x MOVE_SPEED per axis, pitched cameras see cos(35 deg) of a yaw; 10 deg of yaw during a step
# leaks at most sin(10 deg) = 0.17 of a forward move into x. The thresholds sit between.
MOVE_FRACTION = 0.3
TURN_FRACTION = 0.4

_KEY_BY_SIGNS = {(int(np.sign(x)), int(np.sign(z))): k for k, (x, z) in enumerate(KEY_MOTION)}
_CAMERA_BY_SIGNS = {(int(yaw), int(pitch)): c for c, (yaw, pitch) in enumerate(CAMERA_MOTION)}


def _rotation_vector(r: np.ndarray) -> np.ndarray:
    """Log map of rotations (N, 3, 3) -> axis * angle (N, 3)."""
    cos = np.clip((np.trace(r, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    skew = np.stack([r[:, 2, 1] - r[:, 1, 2], r[:, 0, 2] - r[:, 2, 0], r[:, 1, 0] - r[:, 0, 1]], axis=1)
    sin = np.sin(angle)
    scale = np.where(sin > 1e-8, angle / (2.0 * np.maximum(sin, 1e-8)), 0.5)
    return skew * scale[:, None]


def effective_actions(pose_before: np.ndarray, pose_after: np.ndarray) -> np.ndarray:
    """(N, 4, 4) poses before and after a step -> (N, 2) int64 (key, camera) actually performed."""
    p0 = np.asarray(pose_before, dtype=np.float64).reshape(-1, 4, 4)
    p1 = np.asarray(pose_after, dtype=np.float64).reshape(-1, 4, 4)
    r0, r1 = p0[:, :3, :3], p1[:, :3, :3]
    # Translation in the start camera's frame: x right, z forward.
    move = np.einsum("nji,nj->ni", r0, p1[:, :3, 3] - p0[:, :3, 3])
    moved = np.abs(move) > MOVE_FRACTION * MOVE_SPEED
    sx = np.where(moved[:, 0], np.sign(move[:, 0]), 0).astype(int)
    sz = np.where(moved[:, 2], np.sign(move[:, 2]), 0).astype(int)
    # Relative rotation in the start camera's frame: +y (down axis) pans right, +x tilts up.
    rot = _rotation_vector(np.einsum("nji,njk->nik", r0, r1))
    yaw = np.where(np.abs(rot[:, 1]) > TURN_FRACTION * TURN_SPEED, np.sign(rot[:, 1]), 0).astype(int)
    pitch = np.where(np.abs(rot[:, 0]) > TURN_FRACTION * TILT_SPEED, np.sign(rot[:, 0]), 0).astype(int)
    keys = [_KEY_BY_SIGNS[(x, z)] for x, z in zip(sx, sz)]
    cams = [_CAMERA_BY_SIGNS[(y, p)] for y, p in zip(yaw, pitch)]
    return np.stack([np.asarray(keys, dtype=np.int64), np.asarray(cams, dtype=np.int64)], axis=1).reshape(-1, 2)
