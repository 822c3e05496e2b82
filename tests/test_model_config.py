"""WorldModelConfig: presets, (de)serialisation, validation messages."""

import json

import pytest

from yume_env.model import WorldModelConfig


def test_yume_5b_preset_has_published_sizes():
    c = WorldModelConfig.preset("yume-5b")
    assert (c.dim, c.ffn_dim, c.num_layers, c.num_heads, c.head_dim) == (3072, 14336, 30, 24, 128)
    assert (c.latent_channels, c.patch_size, c.text_dim, c.freq_dim) == (48, (1, 2, 2), 4096, 256)
    assert (c.latent_frames_per_chunk, c.sample_steps, c.shift) == (8, 4, 7.0)
    assert c.latent_hw == (44, 80) and c.tokens_per_latent_frame == 880
    assert (c.memory_channels, c.history_attention, c.tscm_schedule, c.text_encoder) == (96, "global", "yume", "umt5")
    assert c.vae["type"] == "wan2.2" and (c.spatial_compression, c.temporal_compression) == (16, 4)


def test_tiny_preset_is_small_and_causal():
    c = WorldModelConfig.preset("tiny")
    assert c.latent_hw == (8, 8) and c.latent_frames_per_chunk == 2
    assert c.tokens_per_latent_frame * c.latent_frames_per_chunk == 32
    assert c.text_dim == 384 and c.text_tokens == 2 and c.text_encoder == "minilm"
    assert 128 <= c.dim <= 192 and 4 <= c.num_layers <= 6
    assert c.history_attention == "causal" and c.tscm_schedule == "tiny"
    assert c.vae["type"] == "tiny" and c.spatial_compression == 8 and c.temporal_compression == 1


@pytest.mark.parametrize("name", ["yume-5b", "tiny"])
def test_config_round_trips_through_json(name):
    c = WorldModelConfig.preset(name)
    again = WorldModelConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c


def test_from_dict_rejects_unknown_keys_by_name():
    d = WorldModelConfig.preset("tiny").to_dict() | {"dimm": 3}
    with pytest.raises(ValueError, match=r"unknown WorldModelConfig keys \['dimm'\]"):
        WorldModelConfig.from_dict(d)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match="unknown preset 'huge'.*tiny.*yume-5b"):
        WorldModelConfig.preset("huge")


@pytest.mark.parametrize(
    "change,message",
    [
        ({"num_heads": 5}, "divisible by num_heads"),
        ({"history_attention": "sideways"}, "history_attention must be one of"),
        ({"tscm_schedule": "nope"}, "tscm_schedule must be one of"),
        ({"height": 60}, "height .* multiple"),
    ],
)
def test_invalid_configs_name_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        WorldModelConfig.preset("tiny").replace(**change)
