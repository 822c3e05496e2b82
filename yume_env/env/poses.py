"""Camera-to-world matrices of the worlds' dead-reckoned poses, seen from each episode's origin.

`pose_matrices` works on the host in numpy (the numpy path's `info["pose"]` and reward contexts);
`pose_matrices_tensor` is the same on the poses' device (the tensor path). They agree to float64
rounding, not bit for bit: torch's sin and cos are not numpy's.
"""

from __future__ import annotations

import numpy as np
import torch

from yume_env.motion import camera_to_world, relative_to


def pose_matrices(poses: torch.Tensor, origin: torch.Tensor) -> np.ndarray:
    """(N, 4, 4) float64 camera-to-world matrices of poses (N, 4) (x, z, yaw, pitch) seen from the
    episodes' origins (N, 4) (`yume_env.motion`): the walker stays level at y = 0."""
    p = relative_to(origin.detach().to("cpu", torch.float64).numpy(), poses.detach().to("cpu", torch.float64).numpy())
    return camera_to_world(p[:, 0], 0.0, p[:, 1], p[:, 2], p[:, 3])


def pose_matrices_tensor(poses: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """`pose_matrices` as a tensor on the poses' device: float64 (float32 on MPS, which has none)."""
    dtype = torch.float32 if poses.device.type == "mps" else torch.float64
    p = relative_to(origin.detach().to(poses.device, dtype), poses.detach().to(dtype))
    return camera_to_world(p[:, 0], 0.0, p[:, 1], p[:, 2], p[:, 3])
