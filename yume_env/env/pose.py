"""Dead reckoning: the camera pose implied by a sequence of actions.

The learned world has no ground-truth camera, so the env integrates the actions with the speeds of
`yume_env.actions` (the ones the simulator moves with). Conventions (docs/INTERFACES.md): OpenCV
camera frame (x right, y down, z forward); the world's y axis points down too, so the walker moves
in the x-z plane; yaw > 0 pans right (rotation about +y), pitch > 0 tilts up (rotation about +x of
the camera, which turns +z towards -y); R = R_y(yaw) @ R_x(pitch). As in the simulator
(`yume_env/sim/motion.py`, minus collisions, which the learned world cannot know), each env step is
split into `sub_frames` equal parts, one per generated frame: move along the current heading, then
turn; yaw wraps to [-pi, pi), pitch is clipped to +-MAX_PITCH. The pose starts at the origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from yume_env import actions as A


def rotation(yaw: float, pitch: float) -> np.ndarray:
    """Camera-to-world rotation: yaw about the world's vertical (y) axis, then pitch about camera x."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    r_yaw = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    r_pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    return r_yaw @ r_pitch


@dataclass
class Pose:
    """Position (x, y, z) in metres, yaw and pitch in radians; starts at the origin looking along +z."""

    position: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.float64))
    yaw: float = 0.0
    pitch: float = 0.0

    def matrix(self) -> np.ndarray:
        """The 4x4 camera-to-world matrix (float64, a fresh array)."""
        c2w = np.eye(4, dtype=np.float64)
        c2w[:3, :3] = rotation(self.yaw, self.pitch)
        c2w[:3, 3] = self.position
        return c2w

    def advance(self, key: int, camera: int, sub_frames: int = 1) -> np.ndarray:
        """Applies one env step of action (key, camera); returns the (sub_frames, 4, 4) poses reached."""
        d_yaw, d_pitch = A.CAMERA_MOTION[camera] * (A.TURN_SPEED, A.TILT_SPEED) / sub_frames
        move_x, move_z = A.KEY_MOTION[key] * A.MOVE_SPEED / sub_frames
        poses = np.empty((sub_frames, 4, 4), dtype=np.float64)
        for f in range(sub_frames):
            # walking stays horizontal: the heading is the yaw alone
            cy, sy = np.cos(self.yaw), np.sin(self.yaw)
            right = np.array([cy, 0.0, -sy])
            forward = np.array([sy, 0.0, cy])
            self.position = self.position + move_x * right + move_z * forward
            self.yaw = float(np.remainder(self.yaw + d_yaw + np.pi, 2 * np.pi) - np.pi)
            self.pitch = float(np.clip(self.pitch + d_pitch, -A.MAX_PITCH, A.MAX_PITCH))
            poses[f] = self.matrix()
        return poses

    def to_list(self) -> list[float]:
        return [float(v) for v in self.position] + [self.yaw, self.pitch]

    @classmethod
    def from_list(cls, values) -> "Pose":
        values = [float(v) for v in values]
        if len(values) != 5:
            raise ValueError(f"a saved pose is 5 numbers (x, y, z, yaw, pitch), got {values!r}")
        return cls(np.array(values[:3], dtype=np.float64), values[3], values[4])
