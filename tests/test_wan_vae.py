"""Wan2.2 VAE on a scaled-down random copy of the published file: loading, streaming decode, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")

LAYOUTS = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "checkpoint_layouts"
pytestmark = pytest.mark.skipif(not LAYOUTS.is_dir(), reason="shared checkpoint-layout fixtures absent")


@pytest.fixture(scope="module")
def vae_file(tmp_path_factory) -> Path:
    from yume_env.model.wan.scaled import VAE_WIDTHS, random_state, read_layout, scale_layout

    path = tmp_path_factory.mktemp("vae") / "Wan2.2_VAE.pth"
    torch.save(random_state(scale_layout(read_layout(LAYOUTS / "wan2.2-vae.json"), VAE_WIDTHS), seed=3), path)
    return path


@pytest.fixture(scope="module")
def vae(vae_file):
    from yume_env.model.wan.vae import load_wan_vae

    return load_wan_vae(vae_file, dtype=torch.float32)


def test_streaming_decode_equals_frame_by_frame_one_shot_decode(vae):
    torch.manual_seed(0)
    z = torch.randn(1, 48, 5, 2, 2)
    # Reference: diffusers' own decode (one latent frame per decoder call), on unnormalised latents.
    ref = vae.model.decode(z * vae.latents_std + vae.latents_mean).sample
    vae.frames_per_call = 2
    a, cache = vae.decode_chunk(z[:, :, :2])
    b, cache = vae.decode_chunk(z[:, :, 2:], cache)
    assert a.shape[2] == 1 + 4 * 1 and b.shape[2] == 4 * 3
    torch.testing.assert_close(torch.cat([a, b], 2), ref, atol=1e-5, rtol=1e-4)


def test_decode_cache_is_a_batched_dict_that_branches_without_mutation(vae):
    torch.manual_seed(1)
    z = torch.randn(2, 48, 3, 2, 2)
    _, cache = vae.decode_chunk(z[:, :, :1])
    assert all(isinstance(v, torch.Tensor) and v.shape[0] == 2 for v in cache.values())
    first, _ = vae.decode_chunk(z[:, :, 1:], cache)
    again, _ = vae.decode_chunk(z[:, :, 1:], cache)  # same cache reused: a branch
    torch.testing.assert_close(first, again)


def test_encode_gives_normalised_latents_of_the_published_compression(vae):
    frames = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    z = vae.encode(frames)
    assert z.shape == (1, 48, 2, 2, 2)
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        vae.encode(frames[:, :, :4])


def test_loading_another_models_file_as_the_vae_names_the_file(tmp_path):
    from yume_env.model.checkpoint import CheckpointError
    from yume_env.model.wan.vae import load_wan_vae

    wrong = tmp_path / "Wan2.2_VAE.pth"
    torch.save({"blocks.0.attn.q.weight": torch.zeros(4, 4)}, wrong)
    with pytest.raises(CheckpointError, match="Wan2.2_VAE.pth"):
        load_wan_vae(wrong)


def test_a_vae_file_missing_a_key_is_rejected_with_the_key(vae_file, tmp_path):
    from yume_env.model.checkpoint import CheckpointError
    from yume_env.model.wan.vae import load_wan_vae

    state = torch.load(vae_file, weights_only=True)
    del state["decoder.head.2.bias"]
    broken = tmp_path / "Wan2.2_VAE.pth"
    torch.save(state, broken)
    with pytest.raises(CheckpointError, match="post_quant|decoder.conv_out.bias"):
        load_wan_vae(broken)


def test_streaming_decoder_shares_the_autoencoders_tensors(vae):
    ours = dict(vae.decoder.named_parameters())
    assert ours["decoder.conv1.weight"].data_ptr() == vae.model.decoder.conv_in.weight.data_ptr()
    assert ours["conv2.weight"].data_ptr() == vae.model.post_quant_conv.weight.data_ptr()
