"""WanDiT: published parameter layout, forward semantics, history batching and caching."""

import json
from pathlib import Path

import pytest
import torch

from yume_env.model import WorldModelConfig, build_dit
from yume_env.model.rope import rope_cos_sin

LAYOUT = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "checkpoint_layouts" / "yume-5b-dit.json"

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is faster


def _tiny(**changes):
    return WorldModelConfig.preset("tiny").replace(num_layers=2, **changes)


def _model(config, seed=0, open_gates=False):
    """A tiny DiT with every parameter random (the Wan init zeroes the head, which would make
    most comparisons trivially true)."""
    torch.manual_seed(seed)
    m = build_dit(config).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("memory.gate") and not open_gates:
                continue
            p.normal_(0.0, 0.2 if p.dim() == 1 else 0.05)
    return m


def _inputs(config, histories=(9, 3, 0), seed=1):
    g = torch.Generator().manual_seed(seed)
    C, (h, w) = config.latent_channels, config.latent_hw
    B = len(histories)
    hist = [torch.randn(C, n, h, w, generator=g) for n in histories]
    x = torch.randn(B, C, config.latent_frames_per_chunk, h, w, generator=g)
    t = torch.linspace(900.0, 100.0, B)
    ctx = torch.randn(B, config.text_tokens, config.text_dim, generator=g)
    return hist, x, t, ctx


@pytest.mark.skipif(not LAYOUT.exists(), reason=f"fixture {LAYOUT} not present")
def test_yume_5b_state_dict_contains_every_published_parameter_on_meta():
    model = build_dit(WorldModelConfig.preset("yume-5b"), device="meta")
    sd = model.state_dict()
    published = json.loads(LAYOUT.read_text())["parameters"]
    missing = sorted(set(published) - set(sd))
    wrong = {k: (list(sd[k].shape), v) for k, v in published.items() if k in sd and list(sd[k].shape) != v}
    assert not missing and not wrong, (missing[:5], list(wrong.items())[:5])
    assert all(t.is_meta for t in sd.values())
    extra = set(sd) - set(published)
    assert extra == set(model.extra_state_dict_keys())  # only the channel stream is extra
    assert set(model.published_state_dict_keys()) == set(published)


def test_forward_returns_velocity_of_chunk_shape():
    c = _tiny()
    m = _model(c)
    hist, x, t, ctx = _inputs(c)
    with torch.no_grad():
        out = m(x, t, ctx, m.encode_history(hist))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_forward_is_deterministic_for_a_seed():
    c = _tiny()
    outs = []
    for _ in range(2):
        m = _model(c, seed=3)
        hist, x, t, ctx = _inputs(c, seed=4)
        with torch.no_grad():
            outs.append(m(x, t, ctx, m.encode_history(hist)))
    assert torch.equal(outs[0], outs[1])


def test_history_changes_the_output():
    c = _tiny()
    m = _model(c)
    hist, x, t, ctx = _inputs(c, histories=(6,))
    with torch.no_grad():
        with_hist = m(x, t, ctx, m.encode_history(hist))
        without = m(x, t, ctx)
    assert (with_hist - without).abs().max() > 1e-3


@pytest.mark.parametrize("mode", ["causal", "global", "direct"])
def test_batch_of_different_history_lengths_equals_one_by_one(mode):
    c = _tiny(history_attention=mode)
    m = _model(c, open_gates=True)
    hist, x, t, ctx = _inputs(c, histories=(25, 3, 0, 7))
    with torch.no_grad():
        mem = [m.update_memory(None, h) if h.shape[1] else None for h in hist]
        batched = m(x, t, ctx, m.encode_history(hist, mem))
        for i in range(len(hist)):
            one = m(x[i : i + 1], t[i : i + 1], ctx[i : i + 1], m.encode_history([hist[i]], [mem[i]]))
            torch.testing.assert_close(batched[i : i + 1], one, atol=2e-5, rtol=1e-4)


def test_causal_history_cache_equals_uncached_computation():
    c = _tiny(history_attention="causal")
    m = _model(c, open_gates=True)
    hist, x, t, ctx = _inputs(c, histories=(12, 5))
    with torch.no_grad():
        mem = [m.update_memory(None, h) for h in hist]
        history = m.encode_history(hist, mem, context=ctx)
        assert history.kv_cache is not None
        for step_t in (t, t * 0.5):  # two denoising steps reuse the same cache
            cached = m(x, step_t, ctx, history)
            uncached = m(x, step_t, ctx, history, use_history_cache=False)
            torch.testing.assert_close(cached, uncached, atol=2e-5, rtol=1e-4)


def test_causal_cache_is_recomputed_when_the_context_changes():
    c = _tiny()
    m = _model(c)
    hist, x, t, ctx = _inputs(c, histories=(4,))
    with torch.no_grad():
        history = m.encode_history(hist, context=ctx)
        other = ctx + 1.0
        cached = m(x, t, other, history)
        fresh = m(x, t, other, m.encode_history(hist), use_history_cache=False)
    torch.testing.assert_close(cached, fresh, atol=2e-5, rtol=1e-4)


def test_global_causal_and_direct_history_attention_differ():
    hist, x, t, ctx = _inputs(_tiny(), histories=(5,))
    outs = []
    for mode in ("causal", "global", "direct"):
        m = _model(_tiny(history_attention=mode))  # same seed: same weights
        with torch.no_grad():
            outs.append(m(x, t, ctx, m.encode_history(hist)))
    for i, j in ((0, 1), (0, 2), (1, 2)):
        assert (outs[i] - outs[j]).abs().max() > 1e-4


def test_direct_history_keys_are_each_blocks_projection_of_the_embedded_tokens():
    """Direct mode runs no history pass: every block's history keys/values are its own projection of
    the embedded history, so changing block 0 leaves block 1's untouched (in causal mode they move)."""
    hist, x, t, ctx = _inputs(_tiny(), histories=(7, 2))
    for mode, moves in (("direct", False), ("causal", True)):
        m = _model(_tiny(history_attention=mode))
        with torch.no_grad():
            history = m.encode_history(hist, context=ctx)
            keys = [k.clone() for k, _ in history.kv_cache]
            m.blocks[0].ffn[2].weight.add_(0.5)
            again = m.encode_history(hist, context=ctx)
        assert torch.equal(again.kv_cache[0][0], keys[0])
        assert (not torch.equal(again.kv_cache[1][0], keys[1])) == moves, mode
    with torch.no_grad():  # direct: the forward reads the same keys with or without the cache
        m = _model(_tiny(history_attention="direct"))
        history = m.encode_history(hist, context=ctx)
        torch.testing.assert_close(m(x, t, ctx, history), m(x, t, ctx, m.encode_history(hist)))


def test_zero_gate_memory_leaves_output_exactly_unchanged():
    c = _tiny()
    m = _model(c, open_gates=False)
    hist, x, t, ctx = _inputs(c, histories=(8, 2))
    with torch.no_grad():
        mem = [m.update_memory(None, h) for h in hist]
        with_mem = m(x, t, ctx, m.encode_history(hist), memory=mem)
        without = m(x, t, ctx, m.encode_history(hist), memory=None)
    assert torch.equal(with_mem, without)


def test_zero_gate_model_equals_model_without_channel_stream():
    c = _tiny()
    full = _model(c)
    plain = build_dit(c.replace(memory_enabled=False)).eval()
    plain.load_state_dict({k: v for k, v in full.state_dict().items() if k in set(full.published_state_dict_keys())})
    hist, x, t, ctx = _inputs(c, histories=(8, 2))
    with torch.no_grad():
        mem = [full.update_memory(None, h) for h in hist]
        a = full(x, t, ctx, full.encode_history(hist), memory=mem)
        b = plain(x, t, ctx, plain.encode_history(hist))
    assert torch.equal(a, b)


def test_open_gate_memory_changes_output():
    c = _tiny()
    m = _model(c, open_gates=True)
    hist, x, t, ctx = _inputs(c, histories=(8,))
    with torch.no_grad():
        mem = [m.update_memory(None, hist[0])]
        a = m(x, t, ctx, m.encode_history(hist), memory=mem)
        b = m(x, t, ctx, m.encode_history(hist))
    assert (a - b).abs().max() > 1e-4


def test_compact_history_storage_gives_the_same_output_as_full_history():
    from yume_env.model.tscm import frames_to_keep

    c = _tiny()
    m = _model(c)
    hist, x, t, ctx = _inputs(c, histories=(70,))
    keep = frames_to_keep(c.tscm_schedule, 70)
    assert len(keep) < 70
    with torch.no_grad():
        full = m(x, t, ctx, m.encode_history(hist))
        compact = m(x, t, ctx, m.encode_history([hist[0][:, keep]], n_history=[70]))
    assert torch.equal(full, compact)


def test_very_long_history_runs_with_bounded_tokens():
    from yume_env.model.tscm import frames_to_keep

    c = _tiny()
    m = _model(c)
    n = 100_000
    keep = frames_to_keep(c.tscm_schedule, n)
    _, x, t, ctx = _inputs(c, histories=(0,))
    lat = torch.randn(c.latent_channels, len(keep), *c.latent_hw)
    with torch.no_grad():
        history = m.encode_history([lat], n_history=[n])
        out = m(x, t, ctx, history)
    assert history.max_tokens <= 150 and torch.isfinite(out).all()


def test_rope_angles_are_exact_at_large_positions():
    pos = torch.tensor([[[100_000, 3, 7]]])
    cos, sin = rope_cos_sin(pos, 128)
    inv_t = 1.0 / 10000 ** (torch.arange(0, 44, 2, dtype=torch.float64) / 44)
    torch.testing.assert_close(cos[0, 0, :22], torch.cos(100_000 * inv_t).float())
    assert torch.isfinite(cos).all() and torch.isfinite(sin).all()


def test_cached_layout_positions_are_the_grids_positions_in_order():
    from yume_env.model.rope import grid_positions, layout_positions

    grids = ((0, 2, 3, 4), (2, 1, 5, 5), (3, 4, 1, 1))
    want = torch.cat([grid_positions(*g) for g in grids])
    assert torch.equal(layout_positions(grids), want)
    assert layout_positions(grids) is layout_positions(list(grids))  # built once
    assert layout_positions(()).shape == (0, 3)


def test_bfloat16_weights_run_and_track_float32():
    c = _tiny()
    m = _model(c)
    hist, x, t, ctx = _inputs(c, histories=(5, 2))
    with torch.no_grad():
        ref = m(x, t, ctx, m.encode_history(hist))
        m16 = m.to(torch.bfloat16)
        out = m16(x, t, ctx, m16.encode_history(hist))
    assert out.dtype == torch.float32
    assert (out - ref).abs().mean() < 0.1 * ref.abs().mean()


def test_wrong_latent_channels_are_named():
    c = _tiny()
    m = _model(c)
    with pytest.raises(ValueError, match="history\\[0\\] must be \\(C=16"):
        m.encode_history([torch.zeros(3, 2, 8, 8)])


def test_published_schedule_runs_every_band_kind_past_the_published_limit():
    """A small model on the "yume" schedule: the anchor, all five band kernels and the stride-4
    pre-shrink run at N = 2,000 (beyond the published 1,016 cap), from compact storage."""
    from yume_env.model.tscm import frames_to_keep, history_token_count

    c = WorldModelConfig.preset("yume-5b").replace(
        dim=64,
        ffn_dim=128,
        num_layers=1,
        num_heads=2,
        latent_channels=4,
        text_dim=32,
        text_tokens=4,
        memory_channels=8,
        memory_heads=2,
        memory_head_dim=8,
        height=256,
        width=384,
        latent_frames_per_chunk=2,
    )
    m = _model(c, open_gates=True)
    n = 2_000
    keep = frames_to_keep("yume", n)
    g = torch.Generator().manual_seed(0)
    lat = torch.randn(4, len(keep), 16, 24, generator=g)
    x = torch.randn(1, 4, 2, 16, 24, generator=g)
    ctx = torch.randn(1, 4, 32, generator=g)
    with torch.no_grad():
        history = m.encode_history([lat], [m.update_memory(None, lat)], n_history=[n])
        out = m(x, torch.tensor([500.0]), ctx, history)
    assert history.lengths == [history_token_count("yume", n, (16, 24))]
    assert history.next_t == [1016]
    assert torch.isfinite(out).all() and out.shape == x.shape


def test_per_chunk_caches_follow_the_memory_passed_to_each_step():
    c = _tiny()
    m = _model(c, open_gates=True)
    hist, x, t, ctx = _inputs(c, histories=(6,))
    with torch.no_grad():
        mem_a = [m.update_memory(None, hist[0])]
        mem_b = [m.update_memory(None, hist[0] * 2.0 + 1.0)]
        history = m.encode_history(hist, context=ctx)
        a1 = m(x, t, ctx, history, memory=mem_a)
        b = m(x, t, ctx, history, memory=mem_b)
        a2 = m(x, t, ctx, history, memory=mem_a)
    assert (a1 - b).abs().max() > 1e-4
    assert torch.equal(a1, a2)


def test_init_weights_sets_every_parameter_after_to_empty():
    c = _tiny()
    torch.manual_seed(5)
    a = build_dit(c)
    b = build_dit(c, device="meta")
    b.to_empty(device="cpu")
    with torch.no_grad():
        for p in b.parameters():
            p.fill_(float("nan"))  # whatever to_empty left behind must be overwritten
    torch.manual_seed(5)
    b.init_weights()
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), name
    assert all(torch.isfinite(p).all() for p in b.parameters())


def test_build_dit_allocates_directly_in_bfloat16():
    m = build_dit(_tiny(), dtype=torch.bfloat16)
    assert {p.dtype for p in m.parameters()} == {torch.bfloat16}
    assert all(torch.isfinite(p.float()).all() for p in m.parameters())


def test_worlds_with_same_layout_are_embedded_together_and_match_one_by_one():
    from yume_env.model.tscm import frames_to_keep

    c = _tiny()
    m = _model(c, open_gates=True)
    g = torch.Generator().manual_seed(7)
    ns = [40, 41, 57, 3]  # the first three share a layout shape (past the tiny budget), not frames
    hist = [torch.randn(16, len(frames_to_keep("tiny", n)), 8, 8, generator=g) for n in ns]
    _, x, t, ctx = _inputs(c, histories=(0, 0, 0, 0))
    with torch.no_grad():
        batched = m(x, t, ctx, m.encode_history(hist, n_history=ns))
        for i, n in enumerate(ns):
            one = m(x[i : i + 1], t[i : i + 1], ctx[i : i + 1], m.encode_history([hist[i]], n_history=[n]))
            torch.testing.assert_close(batched[i : i + 1], one, atol=2e-5, rtol=1e-4)
