"""`WorldSnapshot`: a saved world (model state with its pose, step and event; noise and RNG) for branching rollouts.

`env.unwrapped.get_state()` returns one; `reset(options={"state": snapshot})` resumes it, as often as
wanted (each resume restores the same noise stream and RNG, so the same actions give the same frames). `save(path)`
writes a folder with `tensors.safetensors` and `snapshot.json` (no pickle: safe to load from others);
`WorldSnapshot.load(path)` reads it back, and a damaged folder raises an error naming the file.
`check_snapshot` is what the env checks before a resume changes anything (the world itself is
checked by the model: `yume_env.model.state_checks`).
"""

from __future__ import annotations

import copy
import json
import math
import numbers
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from yume_env.model.noise import check_state

FORMAT_VERSION = 3  # 3: the noise stream is a key and a counter (`WorldNoise`); 2 held a torch.Generator state

_OLD_GENERATOR_FIX = (
    "this version draws each world's noise from a key and a counter (WorldNoise), so the old state cannot "
    "continue the same world: rebuild the world with this version (reset with its seed and replay its "
    "actions) and save it again with this version"
)


@dataclass
class WorldSnapshot:
    """Everything one world needs to continue exactly where it was."""

    world: dict  # one world of WorldState.to_dict(): history, channel-stream sums, pose, event, step count
    generator_state: dict  # the sampler noise stream, WorldNoise.state(i): {"key": int, "counter": int}
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
        """Reads a folder written by `save`. A missing file raises FileNotFoundError, a damaged one
        ValueError, both naming the file (and the entry or tensor)."""
        path = Path(path)
        meta_file, tensor_file = path / "snapshot.json", path / "tensors.safetensors"
        for f in (meta_file, tensor_file):
            if not f.is_file():
                raise FileNotFoundError(f"{f} is missing: a saved world is a folder written by save_state(path)")
        meta = _read_meta(meta_file)
        try:
            tensors = load_file(str(tensor_file))
        except Exception as exc:  # safetensors raises its own SafetensorError, OSError or ValueError
            raise ValueError(
                f"{tensor_file} is not a readable safetensors file (corrupt or truncated: {exc}); save the world again"
            ) from exc
        fields = {}
        for name in _PACKED:
            try:
                fields[name] = _unpack(meta[name], tensors)
            except _MissingTensor as exc:
                raise ValueError(
                    f"{tensor_file} lacks the tensor {exc.args[0]!r} that {meta_file} names in "
                    f"{name!r}: the two files are not from one save; save the world again"
                ) from None
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{meta_file}: entry {name!r} is malformed ({exc!r}); save the world again") from None
        size = meta["frame_size"]
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
            raise ValueError(f"{meta_file}: entry 'frame_size' must be [height, width], got {size!r}")
        return cls(frame_size=tuple(size), **fields)


_PACKED = ("world", "generator_state", "np_random_state", "reward_state", "last_frame", "extra")


class _MissingTensor(KeyError):
    """snapshot.json names a tensor that tensors.safetensors lacks."""


def _read_meta(meta_file: Path) -> dict:
    """snapshot.json as a dict with every entry and the supported format_version; ValueError naming it otherwise."""
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{meta_file} is not valid JSON ({exc}); save the world again") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_file} must hold a JSON object, got {type(meta).__name__}; save the world again")
    if meta.get("format_version") == 2:
        raise ValueError(
            f"{meta_file} was saved by an older yume-env (format_version 2): its 'generator_state' is a "
            f"torch.Generator state; {_OLD_GENERATOR_FIX}"
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{meta_file} has format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
    missing = [k for k in (*_PACKED, "frame_size") if k not in meta]
    if missing:
        raise ValueError(f"{meta_file} lacks the entries {missing}; save the world again")
    return meta


def check_snapshot(snap: WorldSnapshot, frame_size: tuple[int, int], bit_generator: type) -> None:
    """Raises TypeError / ValueError naming the field if `snap` cannot resume a world of an env with
    `frame_size` frames whose `np_random` draws with `bit_generator` (e.g. np.random.PCG64): frame
    size, newest frame, the noise stream, the numpy RNG state and the reward state. The world dict is the model's to check
    (`WorldModel.load_state`)."""
    where = "reset option 'state'"
    size = tuple(snap.frame_size) if isinstance(snap.frame_size, (tuple, list)) else snap.frame_size
    if size != tuple(frame_size):
        raise ValueError(f"{where} was saved from a {size} world; this world makes {tuple(frame_size)} frames")
    h, w = frame_size
    frame = snap.last_frame
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        got = frame.dtype if isinstance(frame, np.ndarray) else type(frame).__name__
        raise TypeError(f"{where}: field 'last_frame' must be a uint8 numpy array ({h}, {w}, 3), got {got}")
    if frame.shape != (h, w, 3):
        raise ValueError(f"{where}: field 'last_frame' has shape {frame.shape}; this world's frames are ({h}, {w}, 3)")
    if not isinstance(snap.world, dict):
        raise TypeError(
            f"{where}: field 'world' must be a dict from WorldState.to_dict(), got {type(snap.world).__name__}"
        )
    _check_generator_state(snap.generator_state, where)
    _check_np_random_state(snap.np_random_state, bit_generator, where)
    if not isinstance(snap.reward_state, dict):
        raise TypeError(f"{where}: field 'reward_state' must be a dict, got {type(snap.reward_state).__name__}")
    _check_plain(snap.reward_state, "reward_state", where)


def _check_generator_state(state: Any, where: str) -> None:
    """A world's noise stream (`WorldNoise.state(i)`: key and counter); a torch.Generator state,
    what snapshots of older versions held, is refused naming the fix."""
    if isinstance(state, torch.Tensor):
        raise ValueError(
            f"{where}: field 'generator_state' holds a torch.Generator state (a snapshot from an older "
            f"yume-env); {_OLD_GENERATOR_FIX}"
        )
    check_state(state, f"{where}: field 'generator_state'")


def _check_np_random_state(state: Any, bit_generator: type, where: str) -> None:
    """A numpy bit generator state of the env's kind, tried on a spare bit generator."""
    if not isinstance(state, dict):
        raise TypeError(
            f"{where}: field 'np_random_state' must be a dict from np_random.bit_generator.state, "
            f"got {type(state).__name__}"
        )
    try:
        bit_generator().state = state
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ValueError(
            f"{where}: field 'np_random_state' is not a {bit_generator.__name__} state ({exc!r})"
        ) from None


def _check_plain(value: Any, field: str, where: str) -> None:
    """Values a snapshot saves: str-keyed dicts, lists, finite numbers, str, bool, None, arrays of finite numbers."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: field {field!r} has a non-str key {k!r}")
            _check_plain(v, f"{field}.{k}", where)
    elif isinstance(value, (list, tuple)):
        for j, v in enumerate(value):
            _check_plain(v, f"{field}.{j}", where)
    elif isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        if not math.isfinite(float(value)):
            raise ValueError(f"{where}: field {field!r} is {value}, not a finite number")
    elif isinstance(value, (np.ndarray, torch.Tensor)):
        array = value
        if isinstance(value, torch.Tensor):
            array = (value.detach().cpu().double() if value.is_floating_point() else value.detach().cpu()).numpy()
        if array.dtype.kind not in "biuf" or (array.dtype.kind == "f" and not np.isfinite(array).all()):
            raise ValueError(f"{where}: field {field!r} must be an array of finite numbers, got dtype {array.dtype}")
    elif not (value is None or isinstance(value, (str, bool, np.bool_))):
        raise TypeError(
            f"{where}: field {field!r} must be a plain value (number, str, bool, None, list, dict, "
            f"array), got {type(value).__name__}"
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
        key = obj.get("__tensor__", obj.get("__ndarray__"))
        if key is not None and key not in tensors:
            raise _MissingTensor(key)
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
