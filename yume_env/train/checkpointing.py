"""Atomic, resumable training checkpoints: tensors in safetensors shards, the rest in JSON.

A checkpoint is a folder `step-00001234/` holding `state.json` (every non-tensor value: step,
schedule, RNG states, data-stream position, curves, ...) and `tensors-NNN.safetensors` shards
(model, EMA, optimizer moments), each below `max_shard_bytes` so that the folder can travel
through file-size-limited channels. A second save of the same step (a finished stage called
again) gets a new name, `step-00001234.1`, `.2`, ...: no save ever writes into, or over, a
folder that `latest.json` may point to.

A save runs in this order, so that a run killed at any instant (SIGKILL, power loss after the
fsyncs) finds `latest.json` pointing to a complete checkpoint, the previous or the new one:

    1. write the shards and `state.json` into a hidden temporary folder, fsync each file;
    2. fsync the folder, rename it to its fresh name, fsync the parent folder;
    3. replace `latest.json` (temporary file, fsync, rename, fsync the parent folder);
    4. only then delete older checkpoints (beyond `keep`) and leftovers of killed saves.

Nothing is unpickled on load.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from yume_env.atomic import atomic_write_text, fsync_dir, fsync_file, temp_name_glob

LATEST = "latest.json"
_NAME = re.compile(r"^step-(\d{8,})(?:\.(\d+))?$")
DEFAULT_SHARD_BYTES = 12 * 1024 * 1024


# ---------------------------------------------------------------- nested state <-> (json, tensors)


def flatten_state(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "") -> Any:
    """Replaces every tensor / ndarray in a nested structure by a reference into `tensors`.

    Tuples and non-string dict keys are tagged so `unflatten_state` rebuilds them exactly
    (Python's `random.setstate` needs tuples; optimizer states are keyed by int).
    """
    if isinstance(obj, torch.Tensor):
        key = prefix or "value"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        key = prefix or "value"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj))
        return {"__ndarray__": key}
    if isinstance(obj, dict):
        items = [
            [_key_to_json(k), flatten_state(v, tensors, f"{prefix}.{k}" if prefix else str(k))] for k, v in obj.items()
        ]
        return {"__dict__": items}
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(
        f"checkpoint state cannot hold {type(obj).__name__} at {prefix!r}; use tensors, arrays or JSON values"
    )


def unflatten_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy()
        if "__tuple__" in obj:
            return tuple(unflatten_state(v, tensors) for v in obj["__tuple__"])
        if "__dict__" in obj:
            return {_key_from_json(k): unflatten_state(v, tensors) for k, v in obj["__dict__"]}
        raise ValueError(f"unrecognised checkpoint entry {sorted(obj)}")
    if isinstance(obj, list):
        return [unflatten_state(v, tensors) for v in obj]
    return obj


def _key_to_json(key: Any) -> Any:
    if isinstance(key, bool) or not isinstance(key, (int, str)):
        raise TypeError(f"checkpoint dict keys must be str or int, got {key!r}")
    return key if isinstance(key, str) else {"__int__": key}


def _key_from_json(key: Any) -> Any:
    return key["__int__"] if isinstance(key, dict) else key


# ---------------------------------------------------------------- folders


def _shard(tensors: dict[str, torch.Tensor], max_bytes: int) -> list[dict[str, torch.Tensor]]:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name in sorted(tensors):
        t = tensors[name]
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += nbytes
    return shards


def save_checkpoint(
    root: str | os.PathLike,
    step: int,
    state: dict[str, Any],
    *,
    keep: int = 1,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
) -> Path:
    """Writes `state` as a new folder `root/step-XXXXXXXX[.N]/`, points `latest.json` at it, prunes.

    Returns the checkpoint folder. `keep` is how many complete checkpoints (of distinct steps)
    stay on disk. See the module docstring for the order that makes every instant safe to kill.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = _fresh_name(root, int(step))
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}.", suffix=".tmp"))
    try:
        _write_folder(tmp, int(step), state, max_shard_bytes)
        os.rename(tmp, root / name)  # a fresh name: never replaces a complete checkpoint
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(root)
    atomic_write_text(root / LATEST, json.dumps({"checkpoint": name, "step": int(step)}), durable=True)
    _prune(root, keep=max(1, int(keep)), current=name)
    return root / name


def _write_folder(folder: Path, step: int, state: dict[str, Any], max_shard_bytes: int) -> None:
    """Fills `folder` with the shards and `state.json` of one checkpoint, each file fsynced."""
    tensors: dict[str, torch.Tensor] = {}
    tree = flatten_state(state, tensors)
    files = []
    for i, shard in enumerate(_shard(tensors, max_shard_bytes)):
        fname = f"tensors-{i:03d}.safetensors"
        save_file(shard, str(folder / fname))
        fsync_file(folder / fname)
        files.append(fname)
    meta = {"format": "yume-env-train-checkpoint/1", "step": step, "tensor_files": files, "state": tree}
    with open(folder / "state.json", "w", encoding="utf-8") as fh:
        json.dump(meta, fh)
        fh.flush()
        os.fsync(fh.fileno())
    fsync_dir(folder)


def checkpoint_step(name: str) -> tuple[int, int] | None:
    """(step, generation) of a checkpoint folder name (`step-00000120` -> (120, 0), `step-00000120.2`
    -> (120, 2)), or None for any other name."""
    match = _NAME.match(name)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2) or 0)


def _fresh_name(root: Path, step: int) -> str:
    """`step-XXXXXXXX` for a step saved for the first time, else the next unused `.N` of that step."""
    base = f"step-{step:08d}"
    generations = [parsed[1] for p in root.iterdir() if (parsed := checkpoint_step(p.name)) and parsed[0] == step]
    return base if not generations else f"{base}.{max(generations) + 1}"


def _prune(root: Path, keep: int, current: str) -> None:
    """Deletes checkpoints beyond `keep` and leftovers of killed saves; `current` always stays.

    Kept: `current` and the newest earlier checkpoint of each of the `keep - 1` steps before it.
    Deleted: older ones, other folders of `current`'s step (superseded re-saves), folders of later
    steps (written by a killed run after its last pointer switch, never pointed to), hidden
    temporary folders and pointer files of killed saves."""
    current_step = checkpoint_step(current)[0]
    earlier: dict[int, Path] = {}
    doomed: list[Path] = []
    for path in sorted(root.iterdir(), key=lambda p: checkpoint_step(p.name) or (-1, -1), reverse=True):
        parsed = checkpoint_step(path.name)
        if parsed is None or path.name == current or not path.is_dir():
            continue
        if parsed[0] < current_step and parsed[0] not in earlier and len(earlier) < keep - 1:
            earlier[parsed[0]] = path
        else:
            doomed.append(path)
    for path in doomed:  # hidden first (one atomic rename): a visible step-* folder is always whole
        trash = Path(tempfile.mkdtemp(dir=root, prefix=f".{path.name}.", suffix=".tmp"))
        os.replace(path, trash / path.name)
    for path in root.glob(".step-*.tmp"):
        shutil.rmtree(path, ignore_errors=True)
    for path in root.glob(temp_name_glob(LATEST)):
        path.unlink(missing_ok=True)
    fsync_dir(root)


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The folder `latest.json` points to, or None when `root` holds no complete checkpoint."""
    pointer = Path(root) / LATEST
    if not pointer.is_file():
        return None
    try:
        name = json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
        if not isinstance(name, str) or checkpoint_step(name) is None:
            raise KeyError(f"'checkpoint' must name a step-* folder, got {name!r}")
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{pointer} is corrupt ({err}); delete it to start over or restore it from a copy") from err
    path = Path(root) / name
    if not (path / "state.json").is_file():
        raise FileNotFoundError(
            f"{pointer} points to {path}, which has no state.json; the checkpoint folder was damaged"
        )
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[int, dict[str, Any]]:
    """Reads a checkpoint folder written by `save_checkpoint`; returns (step, state)."""
    path = Path(path)
    meta_path = path / "state.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read checkpoint {meta_path}: {err}") from err
    if not isinstance(meta, dict) or not {"step", "tensor_files", "state"} <= set(meta):
        raise ValueError(
            f"checkpoint {meta_path} lacks step, tensor_files or state; it was not written by save_checkpoint"
        )
    tensors: dict[str, torch.Tensor] = {}
    for fname in meta["tensor_files"]:
        try:
            tensors.update(load_file(str(path / fname)))
        except Exception as err:  # safetensors raises several types for truncated files
            raise ValueError(f"checkpoint shard {path / fname} is missing or corrupt: {err}") from err
    return int(meta["step"]), unflatten_state(meta["state"], tensors)


# ---------------------------------------------------------------- RNG states


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch CPU (and CUDA when present) generator states."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": _numpy_state_to_plain(np.random.get_state()),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(_numpy_state_from_plain(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _numpy_state_to_plain(s: tuple) -> dict[str, Any]:
    return {
        "kind": s[0],
        "keys": np.asarray(s[1], dtype=np.uint32),
        "pos": int(s[2]),
        "has_gauss": int(s[3]),
        "gauss": float(s[4]),
    }


def _numpy_state_from_plain(d: dict[str, Any]) -> tuple:
    return (d["kind"], np.asarray(d["keys"], dtype=np.uint32), d["pos"], d["has_gauss"], d["gauss"])


def pack_checkpoint(root: str | os.PathLike) -> Path | None:
    """Rewrites the latest checkpoint in `root` small enough to carry between machines and sessions:
    only the EMA weights (what a run ships), in bfloat16; no separate model weights and no optimizer
    state. A run resumed from it continues from the EMA weights with fresh optimizer moments
    (`Trainer.load_state_dict`). None if `root` holds no checkpoint."""
    path = latest_checkpoint(root)
    if path is None:
        return None
    step, state = load_checkpoint(path)
    if state.get("ema") is None:
        raise ValueError(f"{path} has no EMA weights to carry; a packed checkpoint keeps only them")
    shadow = state["ema"]["shadow"]
    state["ema"]["shadow"] = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in shadow.items()}
    state["model"] = None
    state["optimizer"] = None
    return save_checkpoint(root, step, state, keep=1)
