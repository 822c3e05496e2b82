"""Moving cameras by (key, camera) actions, with collisions against buildings.

Each env step is split into `sub_frames` equal sub-moves. Within a sub-frame the camera first
translates along its current heading (so the relative pose of a pure "W" sub-frame has zero x,
which is what the camera quantizer reads), then turns. A blocked move slides along the wall
(only the free axis moves) or stops; the camera never enters a building.
"""

from __future__ import annotations

import numpy as np

from ..actions import CAMERA_MOTION, KEY_MOTION, MAX_PITCH, MOVE_SPEED, TILT_SPEED, TURN_SPEED
from .backend import Backend
from .city import is_free

BODY_RADIUS = 0.4  # metres kept between the camera and any wall


def sub_frame_move(b: Backend, x, z, yaw, pitch, keys, cams, seed, sub_frames: int,
                   move_speed: float = MOVE_SPEED, turn_speed: float = TURN_SPEED, tilt_speed: float = TILT_SPEED):
    """One sub-frame of motion for B cameras (float64 state arrays, int64 action arrays)."""
    xp = b.xp
    km = b.asarray(KEY_MOTION)[keys]  # (B, 2): right, forward
    cm = b.asarray(CAMERA_MOTION)[cams]  # (B, 2): yaw, pitch signs
    step = move_speed / sub_frames
    right, fwd = km[:, 0] * step, km[:, 1] * step
    sy, cy = xp.sin(yaw), xp.cos(yaw)
    nx = x + sy * fwd + cy * right
    nz = z + cy * fwd - sy * right
    # The full move, the x part and the z part, checked together: (B, 3).
    free = is_free(b, b.stack([nx, nx, x], -1), b.stack([nz, z, nz], -1), b.expand_dims(seed, -1), BODY_RADIUS)
    both, only_x, only_z = free[:, 0], free[:, 1], free[:, 2]
    new_x = xp.where(both | only_x, nx, x)
    new_z = xp.where(both | (~only_x & only_z), nz, z)
    new_yaw = yaw + cm[:, 0] * (turn_speed / sub_frames)
    new_yaw = xp.remainder(new_yaw + np.pi, 2 * np.pi) - np.pi
    new_pitch = b.clip(pitch + cm[:, 1] * (tilt_speed / sub_frames), -MAX_PITCH, MAX_PITCH)
    return new_x, new_z, new_yaw, new_pitch
