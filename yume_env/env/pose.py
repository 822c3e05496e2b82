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


@dataclass
class Pose:
    """Position (x, y, z) in metres, yaw and pitch in radians; starts at the origin looking along +z."""

    position: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.float64))
    yaw: float = 0.0
    pitch: float = 0.0

    def matrix(self) -> np.ndarray:
        """The 4x4 camera-to-world matrix (float64, a fresh array)."""
        return matrices(self.position[None], np.array([self.yaw]), np.array([self.pitch]))[0]

    def to_list(self) -> list[float]:
        return [float(v) for v in self.position] + [self.yaw, self.pitch]

    @classmethod
    def from_list(cls, values) -> "Pose":
        values = [float(v) for v in values]
        if len(values) != 5:
            raise ValueError(f"a saved pose is 5 numbers (x, y, z, yaw, pitch), got {values!r}")
        return cls(np.array(values[:3], dtype=np.float64), values[3], values[4])


def matrices(position: np.ndarray, yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """(N, 4, 4) camera-to-world matrices of N poses given as arrays (N, 3), (N,), (N,): the
    rotation R_y(yaw) @ R_x(pitch) (yaw about the world's vertical axis, then pitch about camera x)."""
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    out = np.zeros((len(yaw), 4, 4), dtype=np.float64)
    # R_y(yaw) @ R_x(pitch), written out
    out[:, 0, 0], out[:, 0, 1], out[:, 0, 2] = cy, sy * sp, sy * cp
    out[:, 1, 1], out[:, 1, 2] = cp, -sp
    out[:, 2, 0], out[:, 2, 1], out[:, 2, 2] = -sy, cy * sp, cy * cp
    out[:, :3, 3] = position
    out[:, 3, 3] = 1.0
    return out


def advance(poses: list[Pose], keys: np.ndarray, cameras: np.ndarray, sub_frames: int = 1) -> np.ndarray:
    """Applies one env step of actions (keys[i], cameras[i]) to each pose in place, all worlds at
    once (the env steps hundreds of worlds per call on a GPU, where a per-world Python loop
    costs more than the model); returns the (N, 4, 4) matrices reached."""
    keys, cameras = np.asarray(keys, dtype=np.int64), np.asarray(cameras, dtype=np.int64)
    turn = A.CAMERA_MOTION[cameras] * (A.TURN_SPEED, A.TILT_SPEED) / sub_frames  # (N, 2) yaw, pitch
    move = A.KEY_MOTION[keys] * A.MOVE_SPEED / sub_frames  # (N, 2) right, forward
    position = np.array([p.position for p in poses], dtype=np.float64).reshape(len(poses), 3)
    yaw = np.array([p.yaw for p in poses], dtype=np.float64)
    pitch = np.array([p.pitch for p in poses], dtype=np.float64)
    zero = np.zeros_like(yaw)
    for _ in range(sub_frames):
        # walking stays horizontal: the heading is the yaw alone
        cy, sy = np.cos(yaw), np.sin(yaw)
        right, forward = np.stack([cy, zero, -sy], 1), np.stack([sy, zero, cy], 1)
        position = position + move[:, :1] * right + move[:, 1:] * forward
        yaw = np.remainder(yaw + turn[:, 0] + np.pi, 2 * np.pi) - np.pi
        pitch = np.clip(pitch + turn[:, 1], -A.MAX_PITCH, A.MAX_PITCH)
    for i, p in enumerate(poses):
        p.position, p.yaw, p.pitch = position[i].copy(), float(yaw[i]), float(pitch[i])
    return matrices(position, yaw, pitch)

