"""Moving cameras by (key, camera) actions, with collisions against buildings.

The motion law is `yume_env.motion` (one sub-move: translate along the heading, then turn); the
simulator keeps only the part of each move that stays clear of walls: a blocked move slides along
the wall (only the free axis moves) or stops, so the camera never enters a building.
"""

from __future__ import annotations

from yume_env.motion import rotate, sub_move, translate

from .backend import Backend
from .city import is_free

BODY_RADIUS = 0.4  # metres kept between the camera and any wall


def sub_frame_move(b: Backend, x, z, yaw, pitch, keys, cams, seed, sub_frames: int):
    """One sub-frame of motion for B cameras (float64 state arrays, int64 action arrays)."""
    xp = b.xp
    right, forward, turn, tilt = sub_move(keys, cams, sub_frames, x)
    nx, nz = translate(x, z, yaw, right, forward)
    # The full move, the x part and the z part, checked together: (B, 3).
    free = is_free(b, b.stack([nx, nx, x], -1), b.stack([nz, z, nz], -1), b.expand_dims(seed, -1), BODY_RADIUS)
    both, only_x, only_z = free[:, 0], free[:, 1], free[:, 2]
    new_x = xp.where(both | only_x, nx, x)
    new_z = xp.where(both | (~only_x & only_z), nz, z)
    new_yaw, new_pitch = rotate(yaw, pitch, turn, tilt)
    return new_x, new_z, new_yaw, new_pitch
