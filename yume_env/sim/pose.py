"""Camera poses: (x, z, yaw, pitch) <-> 4x4 camera-to-world matrices.

World frame: x east, y DOWN, z north, ground plane y = 0, so a camera with yaw = pitch = 0 has the
identity rotation in the OpenCV camera convention (x right, y down, z forward). Rotation
R = R_y(yaw) @ R_x(pitch): yaw > 0 turns the view toward +x (pans right), pitch > 0 tilts the view
up (toward -y). The eye is `EYE_HEIGHT` above the ground (y = -EYE_HEIGHT).
"""

from __future__ import annotations

import numpy as np

from .city import EYE_HEIGHT


def rotation(yaw, pitch) -> np.ndarray:
    """(..., 3, 3) float64 camera-to-world rotations."""
    yaw = np.asarray(yaw, dtype=np.float64)
    pitch = np.asarray(pitch, dtype=np.float64)
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    shape = np.broadcast_shapes(yaw.shape, pitch.shape)
    R = np.zeros(shape + (3, 3))
    # R_y(yaw) @ R_x(pitch) written out.
    R[..., 0, 0] = cy
    R[..., 0, 1] = sy * sp
    R[..., 0, 2] = sy * cp
    R[..., 1, 1] = cp
    R[..., 1, 2] = -sp
    R[..., 2, 0] = -sy
    R[..., 2, 1] = cy * sp
    R[..., 2, 2] = cy * cp
    return R


def c2w(x, z, yaw, pitch) -> np.ndarray:
    """(..., 4, 4) float64 camera-to-world matrices of cameras at ground position (x, z)."""
    R = rotation(yaw, pitch)
    T = np.zeros(R.shape[:-2] + (4, 4))
    T[..., :3, :3] = R
    T[..., 0, 3] = x
    T[..., 1, 3] = -EYE_HEIGHT
    T[..., 2, 3] = z
    T[..., 3, 3] = 1.0
    return T
