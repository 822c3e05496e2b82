"""Loads Wan's umT5-XXL encoder file (`models_t5_umt5-xxl-enc-bf16.pth`) into transformers' `UMT5EncoderModel`.

The text-encoder interface (`UMT5TextEncoder`, tokenizer, padding) lives in `yume_env.model.text`;
this module only turns the published file into a model. The file is read with
`torch.load(weights_only=True, mmap=True)` (no unpickling of code), renamed with
`umt5_keys.convert_wan_umt5_state_dict`, checked strictly (every key consumed, none invented,
shapes equal) and assigned into a model built on the meta device, so no second copy is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from yume_env.model.checkpoint import CheckpointError, check_state_dict, load_pth
from yume_env.model.wan.umt5_keys import TIED_KEYS, UMT5_XXL_CONFIG, convert_wan_umt5_state_dict


def umt5_config_from_state(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The UMT5 config a Wan-format state dict implies (sizes read from the shapes).

    Lets scaled-down files of the same layout load; the published file gives `UMT5_XXL_CONFIG`.
    """
    try:
        vocab, dim = state["token_embedding.weight"].shape
        ffn = state["blocks.0.ffn.fc1.weight"].shape[0]
        buckets, heads = state["blocks.0.pos_embedding.embedding.weight"].shape
    except KeyError as exc:
        raise CheckpointError(f"not a Wan umT5 encoder state dict: it has no {exc.args[0]!r}") from exc
    layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    return {
        **UMT5_XXL_CONFIG,
        "vocab_size": int(vocab),
        "d_model": int(dim),
        "d_ff": int(ffn),
        "num_heads": int(heads),
        "d_kv": int(dim) // int(heads),
        "num_layers": layers,
        "relative_attention_num_buckets": int(buckets),
    }


def build_umt5(config: Mapping[str, Any], device: str | torch.device = "meta"):
    """An empty `UMT5EncoderModel` of `config` (meta device by default: no memory)."""
    try:
        from transformers import UMT5Config, UMT5EncoderModel
    except ImportError as exc:
        raise ImportError('the umT5 text encoder needs transformers: pip install "yume-env[yume5b]"') from exc
    with torch.device(device):
        return UMT5EncoderModel(UMT5Config(**config))


def check_wan_umt5(path: str | Path, state: Mapping[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """Checks a Wan umT5 file's names and shapes without reading its 11 GB (mmap); returns its config.

    Raises CheckpointError naming the file on any mismatch, as `load_wan_umt5` would.
    """
    path = Path(path)
    state = load_pth(path) if state is None else state
    try:
        config = umt5_config_from_state(state)
        converted = convert_wan_umt5_state_dict(state)
    except (CheckpointError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{path} is not Wan's umT5 encoder file: {exc}") from exc
    model = build_umt5(config, "meta")
    check_state_dict({k: v for k, v in model.state_dict().items() if k not in TIED_KEYS}, converted, path)
    return config


def load_wan_umt5(
    path: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = torch.bfloat16,
    state: Mapping[str, torch.Tensor] | None = None,
):
    """`models_t5_umt5-xxl-enc-bf16.pth` (Wan names) -> `transformers.UMT5EncoderModel` in eval mode.

    Raises CheckpointError naming the file if a key is missing, unexpected or of the wrong shape.
    `state` may pass the already-read tensors (the file is then only named in errors).
    """
    path = Path(path)
    state = load_pth(path) if state is None else state
    try:
        config = umt5_config_from_state(state)
    except CheckpointError as exc:
        raise CheckpointError(f"{path} is not Wan's umT5 encoder file: {exc}") from exc
    model = build_umt5(config, "meta")
    try:
        converted = convert_wan_umt5_state_dict(state)
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path} is not Wan's umT5 encoder file: {exc}") from exc
    expected = {k: v for k, v in model.state_dict().items() if k not in TIED_KEYS}
    check_state_dict(expected, converted, path)
    tensors = {k: _place(v, device, dtype) for k, v in converted.items()}
    model.load_state_dict(tensors, strict=False, assign=True)
    model.tie_weights()  # encoder.embed_tokens shares shared.weight
    if model.encoder.embed_tokens.weight is not model.shared.weight:
        model.encoder.embed_tokens.weight = model.shared.weight
    return model.eval().requires_grad_(False)


def _place(t: torch.Tensor, device, dtype) -> torch.Tensor:
    t = t.to(device=device, dtype=dtype if dtype is not None and t.is_floating_point() else t.dtype)
    return t.contiguous()
