"""The VAE interface and the tiny VAE: shapes, normalisation, streaming decode."""

import numpy as np
import pytest
import torch

from yume_env.model.codecs import build_vae
from yume_env.model.vae import frames_to_tensor, split_cache, stack_caches, tensor_to_frames
from yume_env.model.vae_tiny import TinyVAE


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return TinyVAE(16).eval()


def test_tiny_vae_compresses_8x_in_space_and_not_in_time(vae):
    frames = torch.rand(2, 3, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        z = vae.encode(frames)
        out = vae.decode(z)
    assert z.shape == (2, 16, 3, 8, 8)
    assert out.shape == frames.shape


def test_tiny_vae_is_a_few_hundred_thousand_parameters(vae):
    n = sum(p.numel() for p in vae.parameters())
    assert 100_000 < n < 1_000_000


def test_streaming_decode_equals_full_decode(vae):
    z = torch.randn(2, 16, 7, 8, 8)
    with torch.no_grad():
        full = vae.decode(z)
        parts, cache = [], None
        for lo, hi in [(0, 1), (1, 3), (3, 5), (5, 7)]:
            frames, cache = vae.decode_chunk(z[:, :, lo:hi], cache)
            parts.append(frames)
    assert torch.allclose(torch.cat(parts, dim=2), full, atol=1e-6)


def test_decoding_a_chunk_depends_on_the_previous_chunk_through_the_cache(vae):
    z = torch.randn(1, 16, 4, 8, 8)
    with torch.no_grad():
        _, cache = vae.decode_chunk(z[:, :, :2], None)
        with_cache, _ = vae.decode_chunk(z[:, :, 2:], cache)
        without, _ = vae.decode_chunk(z[:, :, 2:], None)
    assert not torch.allclose(with_cache[:, :, 0], without[:, :, 0])


def test_batched_caches_split_and_stack_per_world(vae):
    z = torch.randn(3, 16, 2, 8, 8)
    with torch.no_grad():
        _, cache = vae.decode_chunk(z, None)
    parts = split_cache(cache, 3)
    assert parts[1]["last_latent"].shape == (1, 16, 8, 8)
    assert torch.equal(stack_caches(parts)["last_latent"], cache["last_latent"])
    assert stack_caches([None, None]) is None
    with pytest.raises(ValueError, match="with and without"):
        stack_caches([parts[0], None])


def test_latent_statistics_normalise_encode_and_invert_in_decode(vae):
    frames = torch.rand(1, 3, 2, 64, 64) * 2 - 1
    fresh = TinyVAE(16)
    fresh.load_state_dict(vae.state_dict())
    with torch.no_grad():
        raw = fresh.raw_encode(frames)
        mean, std = torch.linspace(-1, 1, 16), torch.linspace(0.5, 2, 16)
        fresh.set_latent_stats(mean, std)
        z = fresh.encode(frames)
        assert torch.allclose(z, (raw - mean.view(1, -1, 1, 1, 1)) / std.view(1, -1, 1, 1, 1), atol=1e-5)
        assert torch.allclose(fresh.decode(z), vae.decode(raw), atol=1e-5)


def test_uint8_frames_round_trip_through_the_float_range():
    frames = np.random.default_rng(0).integers(0, 256, size=(2, 3, 8, 8, 3), dtype=np.uint8)
    x = frames_to_tensor(frames)
    assert x.shape == (2, 3, 3, 8, 8) and x.min() >= -1 and x.max() <= 1
    assert np.array_equal(tensor_to_frames(x), frames)


def test_frames_of_the_wrong_dtype_are_rejected_with_their_shape():
    with pytest.raises(ValueError, match=r"uint8 \(B, T, H, W, 3\)"):
        frames_to_tensor(np.zeros((1, 2, 8, 8, 3), dtype=np.float32))


def test_build_vae_names_the_unknown_type():
    with pytest.raises(ValueError, match="unknown VAE type 'foo'"):
        build_vae({"type": "foo"}, 16)
    assert isinstance(build_vae({"type": "tiny", "spatial_compression": 8, "temporal_compression": 1}, 16), TinyVAE)


def test_tiny_vae_rejects_a_config_with_other_compression():
    with pytest.raises(ValueError, match="spatial_compression 8"):
        build_vae({"type": "tiny", "spatial_compression": 16}, 16)


def test_the_tiny_preset_builds_the_tiny_vae_with_its_widths():
    from yume_env.model import WorldModelConfig

    cfg = WorldModelConfig.preset("tiny")
    vae = build_vae(cfg.vae, cfg.latent_channels)
    assert isinstance(vae, TinyVAE) and vae.channels == tuple(cfg.vae.get("channels", vae.channels))
    assert vae.latent_channels == cfg.latent_channels and cfg.latent_hw == (8, 8)


def test_a_bfloat16_tiny_vae_takes_and_gives_float32(vae):
    half = TinyVAE(16)
    half.load_state_dict(vae.state_dict())
    half = half.to(torch.bfloat16).eval()
    frames = torch.rand(1, 3, 2, 64, 64) * 2 - 1
    with torch.no_grad():
        z = half.encode(frames)
        out, cache = half.decode_chunk(z, half.start_stream(z[:, :, :1]))
        ref = vae.decode(vae.encode(frames))
    assert z.dtype == out.dtype == torch.float32 and cache["last_latent"].dtype == torch.float32
    assert (out - ref).abs().mean() < 0.05
