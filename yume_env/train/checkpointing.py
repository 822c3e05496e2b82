"""Atomic, resumable training checkpoints: tensors in safetensors shards, the rest in JSON.

A checkpoint is a folder `step-00001234/` holding `state.json` (every non-tensor value: step,
schedule, RNG states, data-stream position, curves, ...) and `tensors-NNN.safetensors` shards
(model, EMA, optimizer moments), each below `max_shard_bytes` so that the folder can travel
through file-size-limited channels. It is written to a temporary folder first and renamed into
place; then `latest.json` is replaced atomically to point at it. A run killed at any instant
(SIGKILL included) therefore finds either the previous or the new checkpoint complete, never a
half-written one. Nothing is unpickled on load.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

LATEST = "latest.json"
DEFAULT_SHARD_BYTES = 12 * 1024 * 1024


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes `text` to `path` through a temporary file in the same folder and `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save_safetensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict | None = None) -> None:
    """`safetensors.torch.save_file` through a temporary file and `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
        items = [[_key_to_json(k), flatten_state(v, tensors, f"{prefix}.{k}" if prefix else str(k))] for k, v in obj.items()]
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
    raise TypeError(f"checkpoint state cannot hold {type(obj).__name__} at {prefix!r}; use tensors, arrays or JSON values")


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


def save_checkpoint(root: str | os.PathLike, step: int, state: dict[str, Any], *, keep: int = 1,
                    max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> Path:
    """Writes `state` as `root/step-XXXXXXXX/` atomically, points `latest.json` at it, prunes old ones.

    Returns the checkpoint folder. `keep` is how many complete checkpoints stay on disk.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{int(step):08d}"
    final = root / name
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}.", suffix=".tmp"))
    try:
        tensors: dict[str, torch.Tensor] = {}
        tree = flatten_state(state, tensors)
        shards = _shard(tensors, max_shard_bytes)
        files = []
        for i, shard in enumerate(shards):
            fname = f"tensors-{i:03d}.safetensors"
            save_file(shard, str(tmp / fname))
            files.append(fname)
        meta = {"format": "yume-env-train-checkpoint/1", "step": int(step), "tensor_files": files, "state": tree}
        with open(tmp / "state.json", "w", encoding="utf-8") as fh:
            json.dump(meta, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if final.exists():  # a rewrite of the same step (e.g. final save right after a periodic one)
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(root / LATEST, json.dumps({"checkpoint": name, "step": int(step)}))
    _prune(root, keep=max(1, int(keep)), current=name)
    return final


def _prune(root: Path, keep: int, current: str) -> None:
    done = sorted(p for p in root.glob("step-*") if p.is_dir())
    for p in done[:-keep]:
        if p.name != current:
            shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(".step-*.tmp"):  # leftovers of a run killed mid-write
        shutil.rmtree(p, ignore_errors=True)


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The folder `latest.json` points to, or None when `root` holds no complete checkpoint."""
    pointer = Path(root) / LATEST
    if not pointer.is_file():
        return None
    try:
        name = json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
    except (json.JSONDecodeError, KeyError) as err:
        raise ValueError(f"{pointer} is corrupt ({err}); delete it to start over or restore it from a copy") from err
    path = Path(root) / name
    if not (path / "state.json").is_file():
        raise FileNotFoundError(f"{pointer} points to {path}, which has no state.json; the checkpoint folder was damaged")
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[int, dict[str, Any]]:
    """Reads a checkpoint folder written by `save_checkpoint`; returns (step, state)."""
    path = Path(path)
    meta_path = path / "state.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read checkpoint {meta_path}: {err}") from err
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
    return {"kind": s[0], "keys": np.asarray(s[1], dtype=np.uint32), "pos": int(s[2]), "has_gauss": int(s[3]), "gauss": float(s[4])}


def _numpy_state_from_plain(d: dict[str, Any]) -> tuple:
    return (d["kind"], np.asarray(d["keys"], dtype=np.uint32), d["pos"], d["has_gauss"], d["gauss"])
