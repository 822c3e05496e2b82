"""The published Yume-5B parameter layouts map totally onto the models we build (full size, meta device)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

LAYOUTS = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "checkpoint_layouts"
pytestmark = pytest.mark.skipif(not LAYOUTS.is_dir(), reason="shared checkpoint-layout fixtures absent")


def _layout(name: str) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v) for k, v in json.loads((LAYOUTS / name).read_text())["parameters"].items()}


def _assert_total(converted: dict[str, tuple[int, ...]], model_shapes: dict[str, tuple[int, ...]]) -> None:
    assert len(set(converted)) == len(converted)
    assert sorted(set(converted) - set(model_shapes)) == []  # none invented
    assert sorted(set(model_shapes) - set(converted)) == []  # every model key covered
    wrong = {k: (v, model_shapes[k]) for k, v in converted.items() if model_shapes[k] != v}
    assert wrong == {}


def test_wan_vae_layout_maps_onto_diffusers_autoencoder():
    pytest.importorskip("diffusers")
    from yume_env.model.wan.vae import build_autoencoder
    from yume_env.model.wan.vae_keys import convert_wan_vae_state_dict

    layout = _layout("wan2.2-vae.json")
    converted = convert_wan_vae_state_dict(layout)
    assert len(converted) == len(layout)
    model = build_autoencoder(device="meta")
    _assert_total(converted, {k: tuple(v.shape) for k, v in model.state_dict().items()})


def test_umt5_layout_maps_onto_transformers_encoder():
    from yume_env.model.wan.umt5 import build_umt5, umt5_config_from_state
    from yume_env.model.wan.umt5_keys import TIED_KEYS, UMT5_XXL_CONFIG, convert_wan_umt5_state_dict

    layout = _layout("umt5-xxl-encoder-wan-format.json")
    shapes = {k: torch.empty(v, device="meta") for k, v in layout.items()}
    assert umt5_config_from_state(shapes) == UMT5_XXL_CONFIG
    converted = convert_wan_umt5_state_dict(layout)
    model = build_umt5(UMT5_XXL_CONFIG, "meta")
    model_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if k not in TIED_KEYS}
    _assert_total(converted, model_shapes)


def test_dit_layout_equals_published_keys_of_built_dit():
    from yume_env.model.config import WorldModelConfig
    from yume_env.model.dit import build_dit

    layout = _layout("yume-5b-dit.json")
    dit = build_dit(WorldModelConfig.preset("yume-5b"), device="meta")
    published = {k: tuple(dit.state_dict()[k].shape) for k in dit.published_state_dict_keys()}
    _assert_total(layout, published)
    assert all(k not in layout for k in dit.extra_state_dict_keys())


def test_unknown_wan_names_are_rejected_by_name():
    from yume_env.model.wan.umt5_keys import wan_umt5_key_to_hf
    from yume_env.model.wan.vae_keys import wan_vae_key_to_diffusers

    with pytest.raises(KeyError, match="decoder.upsamples.0.upsamples.9.residual.0.gamma"):
        wan_vae_key_to_diffusers("decoder.upsamples.0.upsamples.9.residual.0.gamma")
    with pytest.raises(KeyError, match="blocks.0.attn.qkv.weight"):
        wan_umt5_key_to_hf("blocks.0.attn.qkv.weight")
