"""TSCM channel stream: incremental linear-attention state, its read, and its serialisation."""

import pytest
import torch

from yume_env.model import WorldModelConfig, build_dit
from yume_env.model.tscm_memory import MemoryState, phi

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is faster


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_dit(WorldModelConfig.preset("tiny").replace(num_layers=2)).eval()
    with torch.no_grad():
        for blk in m.blocks:
            blk.memory.gate.normal_()
    return m


def _latents(n, seed=0):
    return torch.randn(16, n, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_incremental_state_equals_full_recomputation(model):
    lat = _latents(23)
    with torch.no_grad():
        full = model.update_memory(None, lat)
        inc = None
        for a, b in ((0, 1), (1, 4), (4, 4), (4, 15), (15, 23)):
            inc = model.update_memory(inc, lat[:, a:b])
    torch.testing.assert_close(inc.kv, full.kv, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(inc.k_sum, full.k_sum, rtol=1e-5, atol=1e-4)
    assert (inc.n_latents, inc.n_tokens) == (full.n_latents, full.n_tokens) == (23, 23 * 16)


def test_state_size_does_not_grow_with_history(model):
    with torch.no_grad():
        small = model.update_memory(None, _latents(2))
        big = model.update_memory(None, _latents(400))
    assert small.kv.shape == big.kv.shape and small.num_bytes == big.num_bytes


def test_read_equals_linear_attention_over_all_memory_tokens(model):
    lat = _latents(6)
    blk = model.blocks[1].memory
    with torch.no_grad():
        state = model.update_memory(model.update_memory(None, lat[:, :2]), lat[:, 2:])
        x = torch.randn(1, 5, model.config.dim)
        got = blk(x, state.kv[1][None], state.k_sum[1][None])
        # direct: every memory token's key and value, no running state
        m = model.memory_tokens(lat)
        k = phi(blk.k(m)).unflatten(-1, (blk.heads, -1))
        v = blk.v(m).unflatten(-1, (blk.heads, -1))
        q = phi(blk.q(torch.nn.functional.layer_norm(x, x.shape[-1:], eps=blk.eps))).unflatten(-1, (blk.heads, -1))
        scores = torch.einsum("bshk,thk->bsht", q, k)
        read = torch.einsum("bsht,thv->bshv", scores, v) / (scores.sum(-1, keepdim=True) + 1e-6)
        want = blk.o(read.flatten(2)) * blk.gate
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_update_does_not_modify_the_previous_state(model):
    with torch.no_grad():
        s1 = model.update_memory(None, _latents(3))
        before = s1.clone()
        model.update_memory(s1, _latents(3, seed=1))
    assert torch.equal(s1.kv, before.kv) and s1.n_latents == before.n_latents


def test_state_round_trips_through_dict_and_torch_save(model, tmp_path):
    with torch.no_grad():
        s = model.update_memory(None, _latents(5))
    torch.save(s.to_dict(), tmp_path / "m.pt")
    back = MemoryState.from_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    assert torch.equal(back.kv, s.kv) and torch.equal(back.k_sum, s.k_sum)
    assert (back.n_latents, back.n_tokens) == (s.n_latents, s.n_tokens)


def test_from_dict_names_missing_keys():
    with pytest.raises(ValueError, match=r"lacks \['k_sum'\]"):
        MemoryState.from_dict({"kv": torch.zeros(1)})


def test_model_without_channel_stream_says_so():
    m = build_dit(WorldModelConfig.preset("tiny").replace(num_layers=1, memory_enabled=False))
    with pytest.raises(ValueError, match="memory_enabled=False"):
        m.update_memory(None, _latents(1))
