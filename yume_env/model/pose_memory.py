"""Pose memory: each history frame's camera pose relative to the chunk being generated, added to
that frame's history tokens, so the DiT can tell which old frame looked where it looks now.

Why: recalling a view needs to know that one is back where it was. Frames alone say it only by
integrating every turn since (36 steps for a loop), and the TSCM layout keeps old frames coarse,
so a world trained on frames alone did not recall (docs/eval.md, *What the memory recalls*). The
env knows the actions, so it can dead-reckon each frame's pose (`yume_env.motion`, the pose the env
reports as `info["pose"]`; walls, which a learned world cannot know, are ignored) and tell the DiT.

- Poses are (x, z, yaw, pitch) rows, one per latent frame, dead-reckoned by `yume_env.motion`
  (the simulator's law, minus walls): the frame after each sub-move of an env step. The first
  frame is the origin.
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

from yume_env.actions import MAX_PITCH

POSE_FEATURES = 9
POSITION_SCALE = 4.0  # metres: offsets of a few steps (0.5 m each) stay in the squash's linear range
YAW_FREQUENCIES = (1.0, 2.0, 4.0)


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
