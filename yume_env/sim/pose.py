"""Simulator camera poses: (x, z, yaw, pitch) -> 4x4 camera-to-world matrices (`yume_env.motion`),
with the eye `EYE_HEIGHT` above the ground (world y down, so y = -EYE_HEIGHT)."""

from __future__ import annotations

from yume_env.motion import camera_to_world

from .city import EYE_HEIGHT


def c2w(x, z, yaw, pitch):
    """(..., 4, 4) camera-to-world matrices of cameras at ground position (x, z) (numpy or torch)."""
    return camera_to_world(x, -EYE_HEIGHT, z, yaw, pitch)
