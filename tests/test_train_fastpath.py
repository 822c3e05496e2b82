"""The batched training hot path equals the per-example one; the learned action embedding."""

import pytest
import torch

from yume_env.actions import NUM_ACTIONS
from yume_env.model.config import WorldModelConfig
from yume_env.model.dit import build_dit
from yume_env.model.text_cache import TextConditioner
from yume_env.motion import clip_poses
from yume_env.train.clip_batches import ContextTable
from yume_env.train.stages.pretrain import PretrainConfig, denoise_batch


def small_config(**kw):
    return WorldModelConfig.preset("tiny").replace(dim=64, ffn_dim=128, num_layers=2, num_heads=2, **kw)


def test_memory_summaries_equal_per_world_update_memory():
    torch.manual_seed(0)
    dit = build_dit(small_config())
    lat = torch.randn(4, 16, 7, 8, 8)
    lengths = [0, 1, 4, 7]
    batched = dit.memory_summaries(lat, lengths)
    for i, n in enumerate(lengths):
        one = dit.update_memory(None, lat[i, :, :n])
        assert torch.allclose(batched[i].kv, one.kv, atol=1e-5) and torch.allclose(
            batched[i].k_sum, one.k_sum, atol=1e-5
        )
        assert (batched[i].n_latents, batched[i].n_tokens) == (one.n_latents, one.n_tokens)


def test_encode_history_of_mixed_lengths_equals_one_world_at_a_time():
    torch.manual_seed(0)
    dit = build_dit(small_config())
    hist = [torch.randn(16, n, 8, 8) for n in (1, 5, 5, 3, 9)]
    both = dit.encode_history(hist)
    for i, h in enumerate(hist):
        one = dit.encode_history([h])
        n = one.lengths[0]
        assert both.lengths[i] == n
        assert torch.allclose(both.tokens[i, :n], one.tokens[0], atol=1e-6)
        # unit rotations from cos/sin of batches of other sizes (SIMD body or scalar tail): float32 ulps
        torch.testing.assert_close(both.freqs[i, :n], one.freqs[0], rtol=0, atol=1e-6)
        assert not both.tokens[i, n:].any()


def _text(dim=8):
    g = torch.Generator().manual_seed(0)
    actions = [torch.randn(1 + a % 2, dim, generator=g) for a in range(NUM_ACTIONS)]
    events = {"fog rolls in": torch.randn(2, dim, generator=g), "a ghost appears": torch.randn(1, dim, generator=g)}
    return TextConditioner(name="t", model_id="t", dim=dim, tokens_per_text=1, actions=actions, events=events)


def test_context_table_equals_text_context():
    text = _text()
    flat = torch.tensor([0, 1, 80, 41, 7])
    events = ["", "fog rolls in", "a ghost appears", "fog rolls in", ""]
    for length in (1, 2, 4):
        assert torch.equal(ContextTable(text, length, "cpu")(flat, events), text.context(flat.tolist(), events, length))


class _Clips:
    def __init__(self, B, steps):
        g = torch.Generator().manual_seed(1)
        self.actions = torch.stack(
            [torch.randint(9, (B, steps), generator=g), torch.randint(9, (B, steps), generator=g)], 2
        )
        self.events = [["fog rolls in" if (i + s) % 3 == 0 else "" for s in range(steps)] for i in range(B)]


def test_denoise_batch_is_a_pure_function_of_the_generator_and_slices_the_target():
    config = small_config(text_dim=8, text_tokens=2)
    lat = torch.randn(3, 16, 1 + 2 * 4, 8, 8)
    clips, k = _Clips(3, 4), 2
    make = lambda: denoise_batch(lat, clips, k, _text(), config, PretrainConfig(), torch.Generator().manual_seed(5))  # noqa: E731
    a, b = make(), make()
    assert all(torch.equal(a[n], b[n]) for n in ("x0", "eps", "t", "context", "action", "history", "history_noise"))
    assert torch.equal(a["x0"], lat[:, :, 1 + 2 * k : 3 + 2 * k]) and a["history"].shape[2] == 1 + 2 * k
    for i in range(3):
        assert int(a["action"][i]) == int(clips.actions[i, k, 0]) * 9 + int(clips.actions[i, k, 1])


def test_poses_given_by_the_pool_equal_the_batch_dead_reckoning_its_own():
    config = small_config(text_dim=8, text_tokens=2, pose_memory=True)
    steps, k = 6, 3
    lat, clips = torch.randn(3, 16, 1 + 2 * steps, 8, 8), _Clips(3, steps)
    pooled = clip_poses(clips.actions, 2)  # what a pool computes once for the whole clips
    make = (
        lambda poses: denoise_batch(  # noqa: E731
            lat[:, :, : 1 + 2 * (k + 1)],
            clips,
            k,
            _text(),
            config,
            PretrainConfig(),
            torch.Generator().manual_seed(5),
            poses,
        )
    )
    own, given = make(None), make(pooled)
    assert torch.equal(own["history_poses"], given["history_poses"]) and torch.equal(
        own["target_pose"], given["target_pose"]
    )
    assert own["history_poses"].shape[1] == 1 + 2 * k


def test_frame_conditioning_changes_the_output_only_once_learned():
    torch.manual_seed(0)
    dit = build_dit(small_config(frame_conditioning=True)).eval()
    torch.nn.init.normal_(dit.head.head.weight, std=0.02)
    x, ctx = torch.randn(2, 16, 2, 8, 8), torch.randn(2, 2, 384)
    hist = dit.encode_history([torch.randn(16, 3, 8, 8)] * 2)
    frame = torch.randn(2, 16, 1, 8, 8)
    run = lambda f: dit(x, torch.tensor([500.0, 500.0]), ctx, hist, frame=f)  # noqa: E731
    assert torch.equal(run(frame), run(torch.zeros_like(frame)))  # zero-initialised
    torch.nn.init.normal_(dit.frame_embedding.weight)
    assert not torch.allclose(run(frame), run(torch.zeros_like(frame)))


def test_a_frame_residual_world_starts_by_copying_the_newest_frame():
    torch.manual_seed(0)
    dit = build_dit(small_config(frame_conditioning=True, prediction="sample", frame_residual=True)).eval()
    x, ctx = torch.randn(2, 16, 2, 8, 8), torch.randn(2, 2, 384)
    hist = dit.encode_history([torch.randn(16, 3, 8, 8)] * 2)
    frame = torch.randn(2, 16, 1, 8, 8)
    run = lambda t: dit(x, torch.tensor([t, t]), ctx, hist, frame=frame)  # noqa: E731
    assert torch.allclose(run(1000.0), frame.expand_as(x))  # zero-initialised head, pure noise: the frame
    assert torch.allclose(run(0.0), x, atol=1e-6)  # no noise: the input itself
    torch.nn.init.normal_(dit.head.head.weight, std=0.02)
    assert not torch.allclose(run(1000.0), frame.expand_as(x))
    with pytest.raises(ValueError, match="frame_residual"):
        small_config(frame_residual=True)  # a velocity world without frame conditioning


def test_the_sample_preconditioning_keeps_the_input_at_low_noise_and_unit_scales():
    from yume_env.model.sampler import SIGMA_DATA, preconditioning

    t = torch.tensor([0.0, 0.3, 0.7, 1.0])
    c_in, c_skip, c_out = preconditioning(t)
    assert torch.allclose(c_skip[[0, -1]], torch.tensor([1.0, 0.0])) and torch.allclose(
        c_out[[0, -1]], torch.tensor([0.0, SIGMA_DATA])
    )
    x0, eps = SIGMA_DATA * torch.randn(4, 200_000), torch.randn(4, 200_000)
    x_t = (1 - t[:, None]) * x0 + t[:, None] * eps
    assert torch.allclose((c_in[:, None] * x_t).std(1), torch.ones(4), atol=0.02)  # F reads unit variance
    target = (x0 - c_skip[:, None] * x_t)[1:] / c_out[1:, None]  # and learns a unit-variance target
    assert torch.allclose(target.std(1), torch.ones(3), atol=0.02)


def test_action_embedding_changes_the_output_only_once_learned():
    torch.manual_seed(0)
    dit = build_dit(small_config(action_embedding=True)).eval()
    assert not dit.action_embedding.weight.any()  # zero-initialised: a fresh model ignores it
    torch.nn.init.normal_(dit.head.head.weight, std=0.02)
    x, ctx = torch.randn(2, 16, 2, 8, 8), torch.randn(2, 2, 384)
    hist = dit.encode_history([torch.randn(16, 3, 8, 8)] * 2)
    run = lambda a: dit(x, torch.tensor([500.0, 500.0]), ctx, hist, action=torch.tensor(a))  # noqa: E731
    assert torch.equal(run([0, 5]), dit(x, torch.tensor([500.0, 500.0]), ctx, hist))
    torch.nn.init.normal_(dit.action_embedding.weight)
    out = run([0, 5])
    assert not torch.allclose(out, run([0, 6])) and torch.equal(out[0], run([0, 6])[0])


def test_action_embedding_is_only_in_configs_that_ask_for_it():
    assert WorldModelConfig.preset("tiny").action_embedding and not WorldModelConfig.preset("yume-5b").action_embedding
    assert build_dit(small_config(action_embedding=False), device="meta").action_embedding is None
    keys = build_dit(small_config(action_embedding=True), device="meta").state_dict()
    assert "action_embedding.weight" in keys and keys["action_embedding.weight"].shape == (NUM_ACTIONS, 64)
