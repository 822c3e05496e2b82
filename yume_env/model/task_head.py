"""The task head: reads a generated chunk's latents and predicts the task's signals.

From the chunk's last latent frame (the state the env step ends in), by `kind`:
- "beacon" (the simulator's task): `{"distance": (B,) >= 0 (metres), "reached_logit": (B,)}`;
- "reward" (a recorded env's): `{"reward": (B,), "terminated_logit": (B,)}`.
Small (about 0.1 M parameters) so the env can compute a reward every step without decoding
pixels. Trained by the `reward` stage; stored as `task_head.safetensors` with its sizes and kind in
the file's metadata.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

TASK_HEAD_FILE = "task_head.safetensors"


KINDS = ("beacon", "reward")


class TaskHead(nn.Module):
    def __init__(
        self, latent_channels: int, latent_hw: tuple[int, int], width: int = 32, hidden: int = 64, kind: str = "beacon"
    ):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"task head kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.latent_channels, self.latent_hw = int(latent_channels), (int(latent_hw[0]), int(latent_hw[1]))
        self.width, self.hidden = int(width), int(hidden)
        h, w = self.latent_hw
        self.conv1 = nn.Conv2d(self.latent_channels, self.width, 3, padding=1)
        self.conv2 = nn.Conv2d(self.width, 2 * self.width, 3, stride=2, padding=1)
        flat = 2 * self.width * ((h + 1) // 2) * ((w + 1) // 2)
        self.fc1 = nn.Linear(flat, self.hidden)
        self.fc2 = nn.Linear(self.hidden, 2)

    def forward(self, latents: torch.Tensor) -> dict[str, torch.Tensor]:
        """latents (B, C, F, h, w) -> the kind's two signals, each (B,) (module docstring)."""
        if latents.ndim != 5 or latents.shape[1] != self.latent_channels or tuple(latents.shape[-2:]) != self.latent_hw:
            raise ValueError(
                f"task head expects latents (B, {self.latent_channels}, F, {self.latent_hw[0]}, {self.latent_hw[1]}), "
                f"got {tuple(latents.shape)}"
            )
        x = latents[:, :, -1].to(self.conv1.weight.dtype)
        x = F.silu(self.conv2(F.silu(self.conv1(x))))
        out = self.fc2(F.silu(self.fc1(x.flatten(1))))
        if self.kind == "reward":
            return {"reward": out[:, 0], "terminated_logit": out[:, 1]}
        return {"distance": F.softplus(out[:, 0]), "reached_logit": out[:, 1]}

    def metadata(self) -> dict[str, str]:
        """The sizes, stored in the safetensors file so the head rebuilds without a config."""
        h, w = self.latent_hw
        return {
            "latent_channels": str(self.latent_channels),
            "latent_h": str(h),
            "latent_w": str(w),
            "width": str(self.width),
            "hidden": str(self.hidden),
            "kind": self.kind,
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, str], file: str = TASK_HEAD_FILE) -> "TaskHead":
        try:
            return cls(
                int(meta["latent_channels"]),
                (int(meta["latent_h"]), int(meta["latent_w"])),
                int(meta["width"]),
                int(meta["hidden"]),
                meta.get("kind", "beacon"),
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(
                f"{file} lacks the task head's sizes in its metadata ({exc!r}); save it with TaskHead.metadata()"
            ) from exc
