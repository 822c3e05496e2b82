"""Loads each world-model folder once per process.

Gymnasium's `check_env` builds a new env per render mode, `make_vec` and the CLI build several: a
cache keyed by (folder, device, dtype) keeps them from reading the weights again. Instances share
weights, never states (each env keeps its own `WorldState`s), so sharing is safe.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import torch

_CACHE: dict[tuple[str, str, str, float], Any] = {}
_LOCK = threading.Lock()


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """'bfloat16' / 'bf16' / torch.bfloat16 / None -> torch dtype or None (the model's own)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
    name = aliases.get(str(dtype).lower(), str(dtype).lower()).removeprefix("torch.")
    if name not in ("float32", "bfloat16", "float16", "float64"):
        raise ValueError(f"dtype must be one of float32, bfloat16, float16 (or None), got {dtype!r}")
    return getattr(torch, name)


def default_model_path() -> Path:
    """The shipped default world (`yume_env.model.default_world_path()`), with a clear error if absent."""
    from yume_env.model import default_world_path

    path = Path(default_world_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"the default world is not installed at {path} (no config.json); pass model='path/to/world' "
            "or a WorldModel instance"
        )
    return path


def load_world_model(model: Any = None, device: str | torch.device = "cpu", dtype: str | torch.dtype | None = None):
    """`model`: None (the default world), a folder path, or a WorldModel instance (returned as is)."""
    if model is not None and not isinstance(model, (str, os.PathLike)):
        return model
    path = default_model_path() if model is None else Path(model)
    if not path.is_dir():
        raise FileNotFoundError(f"model folder {path} does not exist; pass a world folder, a WorldModel or None")
    torch_dtype = resolve_dtype(dtype)
    config = path / "config.json"
    stamp = config.stat().st_mtime if config.exists() else 0.0
    key = (str(path.resolve()), str(torch.device(device)), str(torch_dtype), stamp)
    with _LOCK:
        if key not in _CACHE:
            from yume_env.model import WorldModel

            _CACHE[key] = WorldModel.from_pretrained(str(path), device=device, dtype=torch_dtype)
        return _CACHE[key]


def clear_cache() -> None:
    """Forgets every loaded model (frees their memory once no env holds them)."""
    with _LOCK:
        _CACHE.clear()
