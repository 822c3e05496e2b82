"""Loads the published Yume-5B DiT (`config.json` + `diffusion_pytorch_model.safetensors`) into `WanDiT`.

The file's names are the published ones (`fixtures/checkpoint_layouts/yume-5b-dit.json`) and equal
ours; the channel-stream parameters our DiT adds (`WanDiT.extra_state_dict_keys()`) are not in the
file and keep their initialisation (zero gate: the published model's outputs are unchanged).
Tensors are read one at a time from the safetensors file straight to the target device and copied
into place, so loading never holds two copies of the 10 GB of weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from yume_env.model.checkpoint import CheckpointError, check_state_dict, read_json
from yume_env.model.config import WorldModelConfig

DIT_CONFIG_FILE = "config.json"
DIT_WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"

# Published config.json key -> WorldModelConfig field.
_CONFIG_FIELDS = {
    "dim": "dim",
    "ffn_dim": "ffn_dim",
    "num_layers": "num_layers",
    "num_heads": "num_heads",
    "in_dim": "latent_channels",
    "text_dim": "text_dim",
    "freq_dim": "freq_dim",
    "eps": "eps",
    "patch_size": "patch_size",
    "qk_norm": "qk_norm",
    "cross_attn_norm": "cross_attn_norm",
    "text_len": "text_tokens",
}
# Keys of the published config.json that describe nothing we build differently.
_IGNORED = {"_class_name", "_diffusers_version", "model_type", "out_dim", "window_size", "_name_or_path"}


def config_from_published(path: str | Path, base: str = "yume-5b") -> WorldModelConfig:
    """`WorldModelConfig` of preset `base` with the sizes of a published DiT `config.json`.

    Raises CheckpointError naming the file for a non-TI2V model, in_dim != out_dim or unknown keys.
    """
    path = Path(path)
    raw = read_json(path)
    unknown = sorted(set(raw) - set(_CONFIG_FIELDS) - _IGNORED)
    if unknown:
        raise CheckpointError(
            f"{path} has keys a Yume-5B / Wan2.2 TI2V DiT config does not have: {unknown}; "
            "is this the config.json of the Yume-5B folder?"
        )
    if raw.get("model_type", "ti2v") != "ti2v":
        raise CheckpointError(f"{path} describes a Wan {raw['model_type']!r} model; Yume-5B is 'ti2v'")
    if "out_dim" in raw and "in_dim" in raw and raw["out_dim"] != raw["in_dim"]:
        raise CheckpointError(f"{path}: in_dim {raw['in_dim']} != out_dim {raw['out_dim']}; Yume-5B has 48 and 48")
    changes: dict[str, Any] = {_CONFIG_FIELDS[k]: v for k, v in raw.items() if k in _CONFIG_FIELDS}
    try:
        return WorldModelConfig.preset(base).replace(**changes)
    except ValueError as exc:
        raise CheckpointError(f"{path} gives an invalid model config: {exc}") from exc


def load_published_dit(
    folder: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.bfloat16,
    config: WorldModelConfig | None = None,
):
    """`WanDiT` with the published weights of `folder`; CheckpointError naming the file on a mismatch."""
    from safetensors import safe_open

    from yume_env.model.dit import build_dit

    folder = Path(folder)
    weights = folder / DIT_WEIGHTS_FILE
    config = config or config_from_published(folder / DIT_CONFIG_FILE)
    dit = build_dit(config, device="meta", dtype=dtype)
    expected = dit.state_dict()
    try:
        handle = safe_open(str(weights), framework="pt", device="cpu")
    except Exception as exc:  # SafetensorError / OSError: corrupt, truncated or not safetensors
        raise CheckpointError(f"{weights} is not a readable safetensors file ({exc}); copy it again") from exc
    with handle as f:
        shapes = {k: torch.Size(f.get_slice(k).get_shape()) for k in f.keys()}
        check_state_dict(
            expected,
            _ShapeOnly(shapes),
            weights,
            optional=dit.extra_state_dict_keys(),
            config_file=folder / DIT_CONFIG_FILE,
        )
        dit.to_empty(device=device)
        dit.init_weights()  # gives the channel stream (absent from the file) its zero-gate init
        params = dict(dit.named_parameters())
        params.update(dict(dit.named_buffers()))
        with torch.no_grad():
            for key in shapes:
                params[key].copy_(f.get_tensor(key).to(device=params[key].device, dtype=params[key].dtype))
    return dit.eval().requires_grad_(False)


class _ShapeOnly(dict):
    """name -> object with `.shape`, so `check_state_dict` can check a file without reading it."""

    def __init__(self, shapes: dict[str, torch.Size]):
        super().__init__({k: _Shape(s) for k, s in shapes.items()})


class _Shape:
    def __init__(self, shape: torch.Size):
        self.shape = shape
