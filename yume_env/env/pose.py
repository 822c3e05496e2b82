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
import torch



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
    costs more than the model); returns the (N, 4, 4) matrices reached. The motion is
    `yume_env.model.pose_memory.advance`, the one a world with pose memory reads its history by
    (in float64 here)."""
    from yume_env.model.pose_memory import advance as advance_level  # (x, z, yaw, pitch) rows

    acts = np.stack([np.asarray(keys, dtype=np.int64), np.asarray(cameras, dtype=np.int64)], 1)
    position = np.array([p.position for p in poses], dtype=np.float64).reshape(len(poses), 3)
    rows = np.stack([position[:, 0], position[:, 2], [p.yaw for p in poses], [p.pitch for p in poses]], 1)
    x, z, yaw, pitch = advance_level(torch.as_tensor(rows), torch.as_tensor(acts), sub_frames)[:, -1].numpy().T
    position[:, 0], position[:, 2] = x, z  # walking stays level: y is unchanged
    for i, p in enumerate(poses):
        p.position, p.yaw, p.pitch = position[i].copy(), float(yaw[i]), float(pitch[i])
    return matrices(position, yaw, pitch)

