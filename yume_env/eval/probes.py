"""The two judges the evaluation trains on simulator frames: an inverse-dynamics model and an
event classifier. Small CNNs over 64x64 frames; frames of other sizes are resized first.

Saved together in one folder (`yume-env eval train-probes` writes it):
`probes.json` (sizes, class names, training record) + `inverse_dynamics.safetensors` +
`event_classifier.safetensors`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from yume_env.actions import NUM_CAMERAS, NUM_KEYS
from yume_env.atomic import atomic_write

PROBE_SIZE = 64
PROBES_FILE = "probes.json"
IDM_FILE = "inverse_dynamics.safetensors"
EVENT_FILE = "event_classifier.safetensors"


def default_probes_path() -> Path:
    """`yume_env/assets/eval_models/`, where the shipped probes live."""
    return Path(__file__).resolve().parents[1] / "assets" / "eval_models"


def prepare(frames: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, 64, 64) in [-1, 1], area-resized when not 64x64."""
    t = torch.as_tensor(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    return to_probe_size(t.to(device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0))


def to_probe_size(frames: torch.Tensor) -> torch.Tensor:
    """float (N, 3, H, W) -> (N, 3, 64, 64), area-resized when not 64x64 (differentiable)."""
    if frames.shape[-2:] == (PROBE_SIZE, PROBE_SIZE):
        return frames
    return F.interpolate(frames, size=(PROBE_SIZE, PROBE_SIZE), mode="area")


def _encoder(in_channels: int, width: int) -> nn.Sequential:
    """64x64 -> (width*4, 4, 4) -> flat; GroupNorm so batch size 1 behaves like training."""
    chans = [in_channels, width, width * 2, width * 4, width * 4]
    layers: list[nn.Module] = []
    for i in range(4):
        layers += [nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1), nn.GroupNorm(8, chans[i + 1]), nn.SiLU()]
        layers += [nn.Conv2d(chans[i + 1], chans[i + 1], 3, padding=1), nn.GroupNorm(8, chans[i + 1]), nn.SiLU()]
    layers.append(nn.Flatten())
    return nn.Sequential(*layers)


class InverseDynamics(nn.Module):
    """(frame before, frame after) -> (key logits (N, 9), camera logits (N, 9)).

    Input channels: both frames and their difference, the motion cue made explicit.
    """

    def __init__(self, width: int = 32, hidden: int = 256) -> None:
        super().__init__()
        self.encoder = _encoder(9, width)
        self.trunk = nn.Sequential(nn.Linear(width * 4 * 16, hidden), nn.SiLU())
        self.key_head = nn.Linear(hidden, NUM_KEYS)
        self.camera_head = nn.Linear(hidden, NUM_CAMERAS)

    def forward(self, before: torch.Tensor, after: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(self.encoder(torch.cat([before, after, after - before], dim=1)))
        return self.key_head(h), self.camera_head(h)


class EventClassifier(nn.Module):
    """One frame -> logits over the classes ("none" first, then the simulator's events)."""

    def __init__(self, num_classes: int, width: int = 32, hidden: int = 256) -> None:
        super().__init__()
        self.encoder = _encoder(3, width)
        self.head = nn.Sequential(nn.Linear(width * 4 * 16, hidden), nn.SiLU(), nn.Linear(hidden, num_classes))

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(frame))


@dataclass
class Probes:
    """Both probes, their class names and how they were trained (`record`: data, steps, accuracy)."""

    inverse_dynamics: InverseDynamics
    event_classifier: EventClassifier
    event_classes: list[str]
    width: int = 32
    hidden: int = 256
    record: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, event_classes: list[str], width: int = 32, hidden: int = 256, seed: int = 0) -> "Probes":
        torch.manual_seed(seed)
        return cls(
            InverseDynamics(width, hidden),
            EventClassifier(len(event_classes), width, hidden),
            list(event_classes),
            width,
            hidden,
        )

    def to(self, device: torch.device | str) -> "Probes":
        self.inverse_dynamics.to(device)
        self.event_classifier.to(device)
        return self

    def eval(self) -> "Probes":
        self.inverse_dynamics.eval()
        self.event_classifier.eval()
        return self

    @torch.no_grad()
    def predict_actions(self, before: np.ndarray, after: np.ndarray, batch: int = 256) -> np.ndarray:
        """uint8 frames (N, H, W, 3) twice -> (N, 2) int64 predicted (key, camera)."""
        device = next(self.inverse_dynamics.parameters()).device
        out = []
        for i in range(0, len(before), batch):
            k, c = self.inverse_dynamics(prepare(before[i : i + batch], device), prepare(after[i : i + batch], device))
            out.append(torch.stack([k.argmax(1), c.argmax(1)], dim=1).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, 2), dtype=np.int64)

    @torch.no_grad()
    def event_log_probs(self, frames: np.ndarray, batch: int = 256) -> np.ndarray:
        """uint8 frames (N, H, W, 3) -> (N, classes) log-probabilities."""
        device = next(self.event_classifier.parameters()).device
        out = [
            F.log_softmax(self.event_classifier(prepare(frames[i : i + batch], device)), dim=1).cpu()
            for i in range(0, len(frames), batch)
        ]
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.event_classes)))

    def save(self, path: str | os.PathLike, dtype: torch.dtype = torch.float32) -> Path:
        """Writes the folder atomically file by file (temp + os.replace). `dtype=torch.float16`
        halves the files (the GPU-trained probes that ship are stored so); loading casts back to float32."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": "yume-env-eval-probes",
            "version": 1,
            "frame_size": PROBE_SIZE,
            "width": self.width,
            "hidden": self.hidden,
            "event_classes": self.event_classes,
            "record": self.record,
            "stored_dtype": str(dtype).removeprefix("torch."),
        }
        for name, module in ((IDM_FILE, self.inverse_dynamics), (EVENT_FILE, self.event_classifier)):
            state = {
                k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).cpu().contiguous()
                for k, v in module.state_dict().items()
            }
            atomic_write(folder / name, lambda tmp: save_file(state, tmp))
        atomic_write(
            folder / PROBES_FILE, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        )
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> "Probes":
        folder = Path(path)
        meta_path = folder / PROBES_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"no evaluation probes in {folder} ({PROBES_FILE} missing); "
                f"train them with `yume-env eval train-probes --out {folder}`"
            )
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        probes = cls.create(meta["event_classes"], int(meta["width"]), int(meta["hidden"]))
        probes.record = dict(meta.get("record", {}))
        for name, module in ((IDM_FILE, probes.inverse_dynamics), (EVENT_FILE, probes.event_classifier)):
            file = folder / name
            if not file.is_file():
                raise FileNotFoundError(f"{file} is missing; retrain with `yume-env eval train-probes --out {folder}`")
            try:
                state = load_file(str(file))
            except Exception as exc:  # safetensors raises its own error types for truncated files
                raise ValueError(f"{file} is corrupt or truncated ({exc}); retrain the probes") from exc
            missing, unexpected = module.state_dict().keys() - state.keys(), state.keys() - module.state_dict().keys()
            if missing or unexpected:
                raise ValueError(f"{file}: missing keys {sorted(missing)}, unexpected keys {sorted(unexpected)}")
            module.load_state_dict(state)
        return probes.to(device).eval()
