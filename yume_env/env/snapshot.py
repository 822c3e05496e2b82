"""`WorldSnapshot`: a saved world (model state with its pose, step and event; RNG) for branching rollouts.

`env.unwrapped.get_state()` returns one; `reset(options={"state": snapshot})` resumes it, as often as
wanted (each resume restores the same RNG, so the same actions give the same frames). `save(path)`
writes a folder with `tensors.safetensors` and `snapshot.json` (no pickle: safe to load from others);
`WorldSnapshot.load(path)` reads it back.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

FORMAT_VERSION = 2


@dataclass
class WorldSnapshot:
    """Everything one world needs to continue exactly where it was."""

    world: dict  # one world of WorldState.to_dict(): history, channel-stream sums, pose, event, step count
    generator_state: torch.Tensor  # torch.Generator.get_state() of the sampler noise
    np_random_state: dict  # numpy bit generator state of the env's np_random
    reward_state: dict  # the reward function's per-world memory (e.g. last predicted distance)
    last_frame: np.ndarray  # uint8 (H, W, 3), the newest frame (the observation on resume)
    frame_size: tuple[int, int] = (0, 0)
    extra: dict = field(default_factory=dict)

    @property
    def step(self) -> int:
        """Chunks the world generated since its start."""
        return int(self.world["step_count"])

    @property
    def event(self) -> str:
        return str(self.world["event"])

    def copy(self) -> "WorldSnapshot":
        return copy.deepcopy(self)

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the snapshot folder atomically (temp folder, then rename); returns its path."""
        path = Path(path)
        tensors: dict[str, torch.Tensor] = {}
        meta = {
            "format_version": FORMAT_VERSION,
            "world": _pack(self.world, "world", tensors),
            "generator_state": _pack(self.generator_state, "generator_state", tensors),
            "np_random_state": _pack(self.np_random_state, "np_random_state", tensors),
            "reward_state": _pack(self.reward_state, "reward_state", tensors),
            "last_frame": _pack(self.last_frame, "last_frame", tensors),
            "frame_size": list(self.frame_size),
            "extra": _pack(self.extra, "extra", tensors),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / "tensors.safetensors"))
            (tmp / "snapshot.json").write_text(json.dumps(meta, indent=1))
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "WorldSnapshot":
        path = Path(path)
        meta_file, tensor_file = path / "snapshot.json", path / "tensors.safetensors"
        for f in (meta_file, tensor_file):
            if not f.is_file():
                raise FileNotFoundError(f"{f} is missing: a saved world is a folder written by save_state(path)")
        meta = json.loads(meta_file.read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{meta_file} has format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
        tensors = load_file(str(tensor_file))
        return cls(
            world=_unpack(meta["world"], tensors),
            generator_state=_unpack(meta["generator_state"], tensors),
            np_random_state=_unpack(meta["np_random_state"], tensors),
            reward_state=_unpack(meta["reward_state"], tensors),
            last_frame=_unpack(meta["last_frame"], tensors),
            frame_size=tuple(meta["frame_size"]),
            extra=_unpack(meta["extra"], tensors),
        )


def _pack(obj: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Nested dicts/lists of tensors, arrays and Python values -> JSON, tensors collected by key."""
    if isinstance(obj, torch.Tensor):
        tensors[key] = obj.detach().cpu()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj))
        return {"__ndarray__": key}
    if isinstance(obj, torch.dtype):
        return {"__dtype__": str(obj).removeprefix("torch.")}
    if isinstance(obj, dict):
        bad = [k for k in obj if not isinstance(k, str)]
        if bad:
            raise TypeError(f"cannot save {key}: dict keys must be str, got {bad[:3]!r}")
        return {"__dict__": {k: _pack(v, f"{key}.{k}", tensors) for k, v in obj.items()}}
    if isinstance(obj, (list, tuple)):
        items = [_pack(v, f"{key}.{i}", tensors) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot save {key}: {type(obj).__name__} is not a tensor, array or plain Python value")


def _unpack(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_unpack(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy().copy()
        if "__dtype__" in obj:
            return getattr(torch, obj["__dtype__"])
        if "__tuple__" in obj:
            return tuple(_unpack(v, tensors) for v in obj["__tuple__"])
        return {k: _unpack(v, tensors) for k, v in obj["__dict__"].items()}
    return obj
