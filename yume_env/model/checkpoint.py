"""Checkpoint files: atomic writes, strict loads, errors that name the file, the keys and the fix.

A model folder (diffusers style) holds `config.json` plus one safetensors file per part. Nothing
here unpickles: safetensors for our files, `torch.load(weights_only=True)` for published `.pth`.
Our weights files carry the state-defining fields of the config they were saved with in their
metadata (`config_metadata`), so a config.json edited afterwards is caught (`check_config_metadata`)
even where the tensor shapes still fit; `load_module` also refuses NaN or infinite weights.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
import torch

from yume_env.atomic import atomic_write, atomic_write_text
from yume_env.model.config import WorldModelConfig
from yume_env.model.config_checks import (
    NOT_STATE_FIELDS,
    check_json_types,
    config_differences,
    config_fingerprint,
    state_fields,
)

_SHOW = 5  # how many offending keys an error lists
CONFIG_KEY, FINGERPRINT_KEY = "yume_env.config", "yume_env.config_fingerprint"  # safetensors metadata keys


class CheckpointError(ValueError):
    """A checkpoint file exists but cannot be used (corrupt, truncated, wrong keys or shapes)."""


def save_safetensors(
    path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: dict[str, str] | None = None, durable: bool = False
) -> None:
    """Writes a safetensors file atomically (`yume_env.atomic`; `durable`: fsynced, for checkpoints)."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=metadata), durable=durable)


def write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: numpy appends no ".npz" to the name
            np.savez(fh, **arrays)

    atomic_write(path, write)


def save_folder(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Builds a folder atomically: `write(tmp_dir)` fills a temp folder beside `path`, which then
    replaces `path` (an existing folder is moved aside first and removed after the swap)."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    try:
        write(tmp)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return path


def require_file(folder: Path, name: str, fix: str) -> Path:
    """`folder / name`, or FileNotFoundError naming the path and how to fix it."""
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist; {fix}")
    path = folder / name
    if path.exists() and not path.is_file():
        raise FileNotFoundError(f"{path} is not a file (a folder or a special file stands in its place); {fix}")
    if not path.is_file():
        present = ", ".join(sorted(p.name for p in folder.iterdir())[:10]) or "nothing"
        raise FileNotFoundError(f"{path} is missing (the folder holds: {present}); {fix}")
    return path


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); re-save the model folder") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def read_config(config_file: Path) -> WorldModelConfig:
    """The WorldModelConfig of a model folder's config.json (keys starting with "_" are notes);
    CheckpointError naming the file and the field otherwise."""
    raw = read_json(config_file)
    fields = {k: v for k, v in raw.items() if not k.startswith("_")}
    try:
        check_json_types(fields)
        return WorldModelConfig.from_dict(fields)
    except (TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{config_file} is not a valid WorldModelConfig: {exc}") from exc


def load_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors on CPU, metadata); a corrupt or truncated file raises CheckpointError naming it."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own SafetensorError, OSError or ValueError
        size = path.stat().st_size
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({size} bytes; corrupt or truncated: {exc}); copy or re-save it"
        ) from exc
    return tensors, metadata


def config_metadata(config: WorldModelConfig) -> dict[str, str]:
    """The metadata entries that record which config a weights file was saved with."""
    return {CONFIG_KEY: json.dumps(state_fields(config), sort_keys=True), FINGERPRINT_KEY: config_fingerprint(config)}


def check_config_metadata(
    metadata: Mapping[str, str], config: WorldModelConfig, file: str | Path, config_file: str | Path
) -> None:
    """Raises CheckpointError if `file` was saved with another config than `config` (read from
    `config_file`), naming the fields that differ. Files without the record (written before it
    existed) pass."""
    saved = metadata.get(FINGERPRINT_KEY)
    if saved is None or saved == config_fingerprint(config):
        return
    try:
        fields = config_differences(json.loads(metadata[CONFIG_KEY]), config)
    except (KeyError, TypeError, ValueError, AttributeError):
        fields = []
    differ = f"differs in {fields}" if fields else "differs"
    raise CheckpointError(
        f"{config_file} {differ} from the config {Path(file).name} was saved with (fingerprint {saved}, "
        f"config.json's {config_fingerprint(config)}): the weights would be read wrongly; put back the "
        f"config.json saved with the weights (only {', '.join(NOT_STATE_FIELDS)} may be changed), or train "
        "and save a model with the new config"
    )


def check_finite(tensors: Mapping[str, torch.Tensor], file: str | Path) -> None:
    """Raises CheckpointError naming `file` and the keys of floating tensors that hold NaN or infinity."""
    bad = [k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise CheckpointError(
            f"{file} holds NaN or infinite values in {_few(bad)}: the weights are damaged "
            "(a diverged training run or a corrupted copy); use an earlier checkpoint or copy it again"
        )


def check_dtypes(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], file: str | Path) -> None:
    """Raises CheckpointError naming `file` and the keys whose tensor is not floating point where the
    module's is (or the reverse): such a file was not written from this module."""
    wrong = [k for k, t in expected.items() if k in found and found[k].is_floating_point() != t.is_floating_point()]
    if wrong:
        examples = "; ".join(
            f"{k!r}: file {found[k].dtype} vs model {expected[k].dtype}" for k in sorted(wrong)[:_SHOW]
        )
        raise CheckpointError(
            f"{file} has tensors of the wrong kind ({len(wrong)}): {examples}; re-save the model folder"
        )


def load_pth(path: str | Path) -> dict[str, torch.Tensor]:
    """A published `.pth` state dict, read without unpickling code (weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path} could not be read as a weights-only torch file (corrupt or truncated: {exc})"
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, expected a state dict of tensors")
    return state


def _few(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(repr(k) for k in keys[:_SHOW])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > _SHOW else f" ({len(keys)})")


def check_state_dict(
    expected: Mapping[str, torch.Tensor | torch.Size | tuple],
    found: Mapping[str, torch.Tensor],
    file: str | Path,
    *,
    optional: Iterable[str] = (),
    config_file: str | Path | None = None,
) -> None:
    """Strict name and shape check of `found` (a file's tensors) against `expected` (the module's).

    `optional` names expected keys a file may lack (e.g. the channel-stream parameters the
    published Yume-5B file has no entry for). Raises CheckpointError listing, with counts, the
    missing, unexpected and wrong-shape keys; shape errors say that the config and the weights
    disagree, naming `config_file`.
    """
    optional = set(optional)
    shapes = {k: tuple(v.shape if hasattr(v, "shape") else v) for k, v in expected.items()}
    missing = [k for k in shapes if k not in found and k not in optional]
    unexpected = [k for k in found if k not in shapes]
    wrong = [k for k in shapes if k in found and tuple(found[k].shape) != shapes[k]]
    if not (missing or unexpected or wrong):
        return
    lines = [f"{file} does not fit the model:"]
    if missing:
        lines.append(f"  missing keys: {_few(missing)}")
    if unexpected:
        lines.append(f"  unexpected keys: {_few(unexpected)}")
    if wrong:
        examples = "; ".join(f"{k!r}: file {tuple(found[k].shape)} vs model {shapes[k]}" for k in sorted(wrong)[:_SHOW])
        lines.append(f"  wrong shapes ({len(wrong)}): {examples}")
        source = config_file or "the config"
        lines.append(
            f"  the shapes that {source} builds differ from the weights: the config and {Path(file).name} "
            "come from different models (e.g. another dim or layer count); use the config.json saved with the weights"
        )
    elif missing or unexpected:
        lines.append("  the file was saved from a different model version or is another part's file")
    raise CheckpointError("\n".join(lines))


def load_module(
    module: torch.nn.Module,
    path: str | Path,
    *,
    optional: Iterable[str] = (),
    config_file: str | Path | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    finite: bool = True,
    config: WorldModelConfig | None = None,
) -> dict[str, str]:
    """Loads a safetensors file into `module` with strict checks; returns the file's metadata.

    Parameters and buffers are both checked (a buffer such as a VAE's latent statistics is state):
    names, shapes, floating point or not; with `config` (read from `config_file`), that the file
    was saved with it (`check_config_metadata`: config edits that keep every shape); and, with
    `finite`, no NaN or infinity.
    """
    tensors, metadata = load_safetensors(path)
    expected = module.state_dict()
    check_state_dict(expected, tensors, path, optional=optional, config_file=config_file)
    check_dtypes(expected, tensors, path)
    if config is not None:
        check_config_metadata(metadata, config, path, config_file or "config.json")
    if finite:
        check_finite(tensors, path)
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    if device is not None:
        tensors = {k: v.to(device) for k, v in tensors.items()}
    # Meta-initialised modules need assign=True to take the loaded storage.
    on_meta = any(t.is_meta for t in expected.values())
    if on_meta:  # tensors read at odd file offsets are misaligned, and CPU kernels then round
        for k in list(tensors):  # differently: copy them to aligned memory (one at a time)
            if tensors[k].device.type == "cpu" and tensors[k].data_ptr() % 64:
                tensors[k] = tensors[k].clone()
    module.load_state_dict(tensors, strict=False, assign=on_meta)
    return metadata
