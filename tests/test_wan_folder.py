"""A scaled-down published Yume-5B folder (same file and parameter names) opens unchanged and computes right."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

LAYOUTS = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "checkpoint_layouts"
pytestmark = pytest.mark.skipif(not LAYOUTS.is_dir(), reason="shared checkpoint-layout fixtures absent")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    from yume_env.model.wan.scaled import write_scaled_folder

    return write_scaled_folder(tmp_path_factory.mktemp("yume5b") / "Yume-5B-720P", LAYOUTS)


@pytest.fixture(scope="module")
def parts(folder):
    from yume_env.model.wan.folder import load_published_folder

    loaded = load_published_folder(folder, device="cpu", dtype=torch.float32)
    loaded.text_encoder = loaded.text_encoder()  # the factory: umT5 loads on first use
    return loaded


def test_published_folder_loads_every_file_into_its_model(parts, folder):
    from safetensors.torch import load_file

    published = load_file(str(folder / "diffusion_pytorch_model.safetensors"))
    state = parts.dit.state_dict()
    for key, value in published.items():
        torch.testing.assert_close(state[key], value.float())
    for key in parts.dit.extra_state_dict_keys():  # the channel stream is closed: published outputs unchanged
        if key.endswith(".gate"):
            assert torch.count_nonzero(state[key]) == 0
    vae_src = torch.load(folder / "Wan2.2_VAE.pth", weights_only=True)
    torch.testing.assert_close(parts.vae.model.decoder.conv_in.weight, vae_src["decoder.conv1.weight"])
    t5_src = torch.load(folder / "models_t5_umt5-xxl-enc-bf16.pth", weights_only=True)
    t5 = parts.text_encoder.model
    torch.testing.assert_close(
        t5.encoder.block[1].layer[1].DenseReluDense.wi_0.weight, t5_src["blocks.1.ffn.gate.0.weight"].float()
    )


def test_loaded_dit_runs_a_chunk_with_history(parts):
    dit = parts.dit
    torch.manual_seed(0)
    hist = dit.encode_history([torch.randn(48, 5, 4, 4)], [None])
    out = dit(torch.randn(1, 48, 2, 4, 4), torch.tensor([700.0]), torch.randn(1, 7, dit.config.text_dim), history=hist)
    assert out.shape == (1, 48, 2, 4, 4) and torch.isfinite(out).all()


def _wan_t5_reference(state: dict[str, torch.Tensor], ids: torch.Tensor, heads: int) -> torch.Tensor:
    """Wan's umT5 encoder math (wan/modules/t5.py) written out on Wan's own parameter names."""

    def norm(x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))

    def bucket(rel, num_buckets=32, max_dist=128):
        num_buckets //= 2
        out = (rel > 0).long() * num_buckets
        rel = rel.abs()
        max_exact = num_buckets // 2
        large = (
            max_exact
            + (torch.log(rel.float() / max_exact) / math.log(max_dist / max_exact) * (num_buckets - max_exact)).long()
        )
        return out + torch.where(rel < max_exact, rel, large.clamp(max=num_buckets - 1))

    x = state["token_embedding.weight"][ids]
    b, n = ids.shape
    rel = torch.arange(n)[None, :] - torch.arange(n)[:, None]
    layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    for i in range(layers):
        p = {k[len(f"blocks.{i}.") :]: v for k, v in state.items() if k.startswith(f"blocks.{i}.")}
        h = norm(x, p["norm1.weight"])
        q, k, v = (F.linear(h, p[f"attn.{s}.weight"]).view(b, n, heads, -1) for s in "qkv")
        bias = p["pos_embedding.embedding.weight"][bucket(rel)].permute(2, 0, 1)[None]
        attn = torch.softmax(torch.einsum("binc,bjnc->bnij", q, k) + bias, -1)
        x = x + F.linear(torch.einsum("bnij,bjnc->binc", attn, v).reshape(b, n, -1), p["attn.o.weight"])
        h = norm(x, p["norm2.weight"])
        gate = F.gelu(F.linear(h, p["ffn.gate.0.weight"]), approximate="tanh")
        x = x + F.linear(F.linear(h, p["ffn.fc1.weight"]) * gate, p["ffn.fc2.weight"])
    return norm(x, state["norm.weight"])


def test_umt5_encoder_reproduces_wans_math_on_wans_weights(parts, folder):
    state = {k: v.float() for k, v in torch.load(folder / "models_t5_umt5-xxl-enc-bf16.pth", weights_only=True).items()}
    ids = torch.tensor([[5, 9, 200, 17, 1]])
    ref = _wan_t5_reference(state, ids, heads=parts.text_encoder.model.config.num_heads)
    with torch.no_grad():
        out = parts.text_encoder.model(input_ids=ids).last_hidden_state
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_text_encoder_gives_valid_tokens_and_zeros_beyond(parts):
    emb = parts.text_encoder.encode(["w1 w2 w3", "w4"])
    assert emb.embeddings.shape[-1] == parts.text_encoder.dim
    assert emb.mask.sum(1).tolist() == [4, 2]  # words + </s>
    assert torch.count_nonzero(emb.embeddings[1, 2:]) == 0


@pytest.mark.parametrize("missing", ["Wan2.2_VAE.pth", "models_t5_umt5-xxl-enc-bf16.pth", "config.json"])
def test_folder_missing_a_file_names_it(folder, tmp_path, missing):
    from yume_env.model.wan.folder import load_published_folder

    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    (copy / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing.replace(".", "\\.")):
        load_published_folder(copy, device="cpu")


@pytest.mark.parametrize(
    "wrong, source",
    [("Wan2.2_VAE.pth", "models_t5_umt5-xxl-enc-bf16.pth"), ("models_t5_umt5-xxl-enc-bf16.pth", "Wan2.2_VAE.pth")],
)
def test_folder_holding_the_wrong_file_names_it(folder, tmp_path, wrong, source):
    from yume_env.model.checkpoint import CheckpointError
    from yume_env.model.wan.folder import load_published_folder

    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    shutil.copy(copy / source, copy / wrong)
    with pytest.raises(CheckpointError, match=wrong.replace(".", "\\.")):
        load_published_folder(copy, device="cpu")


def test_dit_weights_of_another_size_name_the_files(folder, tmp_path):
    import json

    from yume_env.model.checkpoint import CheckpointError
    from yume_env.model.wan.dit_loader import load_published_dit

    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    cfg = json.loads((copy / "config.json").read_text())
    cfg["ffn_dim"] = 512
    (copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="diffusion_pytorch_model.safetensors"):
        load_published_dit(copy, device="cpu")


def test_offloaded_blocks_give_the_same_output_and_leave_none_resident(parts):
    from yume_env.model.wan.offload import BlockStreamer

    dit = parts.dit
    torch.manual_seed(2)
    args = (torch.randn(1, 48, 2, 4, 4), torch.tensor([300.0]), torch.randn(1, 3, dit.config.text_dim))
    ref = dit(*args)
    streamer = BlockStreamer(dit, "cpu", prefetch=0)
    try:
        out = dit(*args)
        assert streamer.resident_blocks() == 0
    finally:
        streamer.remove()
    torch.testing.assert_close(out, ref)


def test_offload_keeps_the_memory_read_resident_for_update_memory(parts):
    from yume_env.model.wan.offload import BlockStreamer

    dit = parts.dit
    lat = torch.randn(48, 2, 4, 4)
    ref = dit.update_memory(None, lat)
    streamer = BlockStreamer(dit, "cpu")
    try:
        streamed = {k for h in streamer._host for k in h}
        assert "self_attn.q.weight" in streamed and not any(k.startswith("memory.") for k in streamed)
        out = dit.update_memory(None, lat)
    finally:
        streamer.remove()
    torch.testing.assert_close(out.kv, ref.kv)


@pytest.mark.slow
def test_world_model_opens_the_published_folder_and_steps(folder):
    import numpy as np

    from yume_env.model import WorldModel

    model = WorldModel.from_pretrained(folder, device="cpu", dtype=torch.float32)
    assert model.frame_size == (704, 1280) and model.frames_per_step == 32
    # Generate at 64x64 so a CPU test stays fast: same parts, smaller frames.
    small = model.config.replace(height=64, width=64)
    model.config, model.dit.config = small, small
    state = model.init_state(np.full((5, 64, 64, 3), 100, np.uint8))
    out = model.step([state], np.array([[1, 4]]), torch.Generator().manual_seed(0))
    assert out.frames.shape == (1, 32, 64, 64, 3) and out.latents.shape == (1, 48, 8, 4, 4)


def test_offload_brings_blocks_over_for_calls_outside_their_forward(parts):
    """The text K/V (once per event) and the causal history K/V are block calls that forward hooks
    never see: each must load its block's weights, or CUDA offload fails on a CPU tensor."""
    from yume_env.model.wan.offload import BlockStreamer

    dit = parts.dit
    context = torch.randn(1, 3, dit.config.text_dim)
    ref = dit._text_kv(context, None)
    streamer = BlockStreamer(dit, "cpu", prefetch=0)
    loaded = []
    load = streamer._load
    streamer._load = lambda i: (loaded.append(i), load(i))[1]
    try:
        assert all("history_kv" in vars(blk) for blk in dit.blocks)
        out = dit._text_kv(context, None)
        assert sorted(loaded) == list(range(len(dit.blocks)))
        assert streamer.resident_blocks() == 0
    finally:
        streamer.remove()
    assert not any("context_kv" in vars(blk.cross_attn) or "history_kv" in vars(blk) for blk in dit.blocks)
    for (k, v), (rk, rv) in zip(out, ref):
        torch.testing.assert_close(k, rk)
        torch.testing.assert_close(v, rv)
