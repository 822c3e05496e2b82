"""Camera motion: the one law by which actions move the walker, for the simulator, the learned
world's pose memory and the env's `info["pose"]`.

A pose is (x, z, yaw, pitch): the position on the ground plane in metres (world x east, y down,
z north), yaw > 0 pans right, pitch > 0 tilts up. An env step is `sub_frames` equal sub-moves, one
per frame: move along the heading (right, forward), then turn; yaw wraps to [-pi, pi), pitch is
clipped to +-MAX_PITCH. The simulator keeps only the part of a move that stays clear of walls
(`yume_env.sim.motion`); a learned world cannot know walls and dead-reckons (`dead_reckon`).
Every function takes numpy arrays or torch tensors and returns the same kind.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from yume_env.actions import CAMERA_MOTION, KEY_MOTION, MAX_PITCH, MOVE_SPEED, TILT_SPEED, TURN_SPEED
from yume_env.host_to_device import to_device


def _xp(a):
    return torch if isinstance(a, torch.Tensor) else np


@functools.lru_cache(maxsize=16)
def _motion_tables(dtype: torch.dtype, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """KEY_MOTION and CAMERA_MOTION as tensors on `device`, made once (not copied every step)."""
    with torch.inference_mode(False), torch.no_grad():  # cached: usable in any mode
        return (
            to_device(np.asarray(KEY_MOTION), device, dtype),
            to_device(np.asarray(CAMERA_MOTION), device, dtype),
        )


def sub_move(keys, cameras, sub_frames: int, like):
    """The (right, forward, turn, tilt) of one sub-move of actions keys (B,), cameras (B,), as arrays
    of `like`'s kind, dtype and device."""
    if isinstance(like, torch.Tensor):
        key_table, camera_table = _motion_tables(like.dtype, str(like.device))
        km, cm = key_table[keys], camera_table[cameras]
    else:
        km, cm = np.asarray(KEY_MOTION, dtype=like.dtype)[keys], np.asarray(CAMERA_MOTION, dtype=like.dtype)[cameras]
    step = MOVE_SPEED / sub_frames
    return km[:, 0] * step, km[:, 1] * step, cm[:, 0] * (TURN_SPEED / sub_frames), cm[:, 1] * (TILT_SPEED / sub_frames)


def translate(x, z, yaw, right, forward):
    """The position after moving (right, forward) metres in the frame of heading `yaw`."""
    xp = _xp(yaw)
    s, c = xp.sin(yaw), xp.cos(yaw)
    return x + s * forward + c * right, z + c * forward - s * right


def rotate(yaw, pitch, turn, tilt):
    """The heading after turning: yaw wrapped to [-pi, pi), pitch clipped to +-MAX_PITCH."""
    xp = _xp(yaw)
    return xp.remainder(yaw + turn + math.pi, 2 * math.pi) - math.pi, xp.clip(pitch + tilt, -MAX_PITCH, MAX_PITCH)


def dead_reckon(pose, actions, sub_frames: int, moves: int | None = None):
    """Poses (B, moves, 4) after each of `moves` sub-moves (default `sub_frames`: one env step) of
    actions (B, 2) (key, camera) from poses (B, 4), with no walls."""
    moves = sub_frames if moves is None else moves
    right, forward, turn, tilt = sub_move(actions[:, 0], actions[:, 1], sub_frames, pose)
    xp = _xp(pose)
    x, z, yaw, pitch = (pose[:, i] for i in range(4))
    out = []
    for _ in range(moves):
        x, z = translate(x, z, yaw, right, forward)
        yaw, pitch = rotate(yaw, pitch, turn, tilt)
        out.append(xp.stack([x, z, yaw, pitch], 1))
    return xp.stack(out, 1)


def clip_poses(actions, sub_frames: int):
    """Poses (B, 1 + S * sub_frames, 4) of a clip's frames from its step actions (B, S, 2); the first
    frame is the origin (float32 for tensors, float64 for numpy)."""
    xp = _xp(actions)
    B, S = actions.shape[:2]
    if xp is torch:
        pose = torch.zeros(B, 4, dtype=torch.float32, device=actions.device)
    else:
        pose = np.zeros((B, 4), dtype=np.float64)
    out = [pose[:, None]]
    for s in range(S):
        step = dead_reckon(pose, actions[:, s], sub_frames)
        out.append(step)
        pose = step[:, -1]
    return xp.concatenate(out, 1) if xp is np else torch.cat(out, 1)


def relative_to(origin, poses):
    """Poses (N, 4) seen from origin poses (N, 4): position in the origin's heading frame (x right,
    z forward), yaw from the origin's heading (wrapped), pitch as it is."""
    xp = _xp(poses)
    dx, dz = poses[:, 0] - origin[:, 0], poses[:, 1] - origin[:, 1]
    s, c = xp.sin(origin[:, 2]), xp.cos(origin[:, 2])
    yaw = xp.remainder(poses[:, 2] - origin[:, 2] + math.pi, 2 * math.pi) - math.pi
    return xp.stack([c * dx - s * dz, s * dx + c * dz, yaw, poses[:, 3]], 1)


def camera_to_world(x, y, z, yaw, pitch):
    """(..., 4, 4) camera-to-world matrices: rotation R_y(yaw) @ R_x(pitch) (OpenCV camera: x right,
    y down, z forward), translation (x, y, z)."""
    xp = _xp(yaw)
    cy, sy, cp, sp = xp.cos(yaw), xp.sin(yaw), xp.cos(pitch), xp.sin(pitch)
    zero = cy * 0
    x, y, z = x + zero, y + zero, z + zero  # broadcast scalars to the batch
    rows = [[cy, sy * sp, sy * cp, x], [zero, cp, -sp, y], [-sy, cy * sp, cy * cp, z], [zero, zero, zero, zero + 1]]
    return xp.stack([xp.stack(r, -1) for r in rows], -2)
