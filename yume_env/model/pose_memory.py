"""Pose memory: each history frame's camera pose relative to the chunk being generated, added to
that frame's history tokens, so the DiT can tell which old frame looked where it looks now.

Why: recalling a view needs to know that one is back where it was. Frames alone say it only by
integrating every turn since (36 steps for a loop), and the TSCM layout keeps old frames coarse,
so a world trained on frames alone did not recall (docs/eval.md, *What the memory recalls*). The
env knows the actions, so it can dead-reckon each frame's pose (as `yume_env.env.pose` does for
`info["pose"]`; collisions, which a learned world cannot know, are ignored) and tell the DiT.

- Poses are (x, z, yaw, pitch) rows, one per latent frame: the frame after each sub-move of an
  env step, as the simulator renders one frame per sub-move (`yume_env/sim/motion.py`): move along
  the heading, then turn; yaw wraps to [-pi, pi), pitch is clipped. The first frame is the origin.
- `relative_features`: a history frame's pose seen from the target (the chunk's last frame): the
  yaw difference at three frequencies (sin, cos), the pitch difference, and the offset to the
  right and forward in the target's heading, in units of 4 m, squashed to (-1, 1).
- `PoseEmbedding`: those features -> a vector per frame, added to every token of that frame. Its
  output layer starts at zero, so a trained world given pose memory is unchanged until trained.

The published Yume-5B has none (`WorldModelConfig.pose_memory` False): it has no such weights.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from yume_env.actions import CAMERA_MOTION, KEY_MOTION, MAX_PITCH, MOVE_SPEED, TILT_SPEED, TURN_SPEED

POSE_FEATURES = 9
POSITION_SCALE = 4.0  # metres: offsets of a few steps (0.5 m each) stay in the squash's linear range
YAW_FREQUENCIES = (1.0, 2.0, 4.0)


def advance(pose: torch.Tensor, actions: torch.Tensor, sub_frames: int, moves: int | None = None) -> torch.Tensor:
    """Poses (B, moves, 4) after each of `moves` sub-moves (default `sub_frames`, one env step) of
    the actions (B, 2) (key, camera) from poses (B, 4); each sub-move is 1 / sub_frames of a step."""
    moves = sub_frames if moves is None else moves
    key_motion = torch.as_tensor(KEY_MOTION, dtype=pose.dtype, device=pose.device)[actions[:, 0].long()]
    cam_motion = torch.as_tensor(CAMERA_MOTION, dtype=pose.dtype, device=pose.device)[actions[:, 1].long()]
    right, forward = (key_motion * (MOVE_SPEED / sub_frames)).unbind(1)
    turn, tilt = cam_motion[:, 0] * (TURN_SPEED / sub_frames), cam_motion[:, 1] * (TILT_SPEED / sub_frames)
    x, z, yaw, pitch = pose.unbind(1)
    out = []
    for _ in range(moves):
        s, c = torch.sin(yaw), torch.cos(yaw)
        x, z = x + s * forward + c * right, z + c * forward - s * right
        yaw = torch.remainder(yaw + turn + math.pi, 2 * math.pi) - math.pi
        pitch = (pitch + tilt).clamp(-MAX_PITCH, MAX_PITCH)
        out.append(torch.stack([x, z, yaw, pitch], 1))
    return torch.stack(out, 1)


def clip_poses(actions: torch.Tensor, sub_frames: int) -> torch.Tensor:
    """(B, 1 + S * sub_frames, 4) poses of a clip's frames from its step actions (B, S, 2)."""
    B, S = actions.shape[:2]
    pose = torch.zeros(B, 4, dtype=torch.float32, device=actions.device)
    out = [pose[:, None]]
    for s in range(S):
        step = advance(pose, actions[:, s], sub_frames)
        out.append(step)
        pose = step[:, -1]
    return torch.cat(out, 1)


def relative_features(poses: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(..., N, POSE_FEATURES) features of history poses (..., N, 4) seen from target poses (..., 4)."""
    d = poses - target.unsqueeze(-2)
    dyaw = torch.remainder(d[..., 2] + math.pi, 2 * math.pi) - math.pi
    s, c = torch.sin(target[..., 2:3]), torch.cos(target[..., 2:3])
    right = c * d[..., 0] - s * d[..., 1]  # the offset in the target's heading (walking is level)
    forward = s * d[..., 0] + c * d[..., 1]
    parts = []
    for f in YAW_FREQUENCIES:
        parts += [torch.sin(f * dyaw), torch.cos(f * dyaw)]
    parts += [d[..., 3] / MAX_PITCH, torch.tanh(right / POSITION_SCALE), torch.tanh(forward / POSITION_SCALE)]
    return torch.stack(parts, -1)


class PoseEmbedding(nn.Module):
    """Relative pose features (..., POSE_FEATURES) -> (..., dim), zero at initialisation."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(POSE_FEATURES, dim), nn.SiLU(), nn.Linear(dim, dim))

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.net[0].weight)
        nn.init.zeros_(self.net[0].bias)
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)
