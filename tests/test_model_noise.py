"""`WorldNoise`: each world's counter-based noise stream, drawn for all worlds at once (issue 32)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from model_support import CountOps, awake, small_config, synthetic_text
from tolerances import assert_frames_close

from yume_env.model import sampler
from yume_env.model.noise import WorldNoise, check_state, mix64_
from yume_env.model.pipeline import WorldModel

pytestmark = pytest.mark.usefixtures("one_thread")
KEYS = [5, 1, 2, 3, 2**62, -7, 0, 123456789]  # neighbours, the extremes of int64 and zero


def _splitmix64_finalizer(z: int) -> int:
    """The reference, in Python's unbounded ints (Vigna's splitmix64.c, output function)."""
    mask = 2**64 - 1
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_the_int64_mixer_is_splitmix64_with_logical_shifts():
    """torch's >> on int64 is arithmetic and its multiply wraps: the mixer must still be splitmix64's."""
    words = [0, 1, 2, 2**63 - 1, 2**63, 2**64 - 1, 0x9E3779B97F4A7C15, 123456789123456789]
    signed = torch.tensor([w - 2**64 if w >= 2**63 else w for w in words], dtype=torch.int64)
    got = [v % 2**64 for v in mix64_(signed.clone()).tolist()]
    assert got == [_splitmix64_finalizer(w) for w in words]


@pytest.mark.parametrize("shape", [(1,), (3,), (16, 2, 5, 7), (4, 1, 33, 61)])
def test_a_world_draws_the_same_noise_alone_as_in_any_batch_row(shape):
    batch = WorldNoise(KEYS, counters=range(8))
    first, second = batch.draw(shape), batch.draw(shape)
    assert first.shape == (8, *shape) and first.dtype == torch.float32
    alone = WorldNoise([KEYS[3]], counters=[3])
    assert torch.equal(alone.draw(shape)[0], first[3]) and torch.equal(alone.draw(shape)[0], second[3])
    reversed_rows = WorldNoise(KEYS[::-1], counters=range(7, -1, -1)).draw(shape)
    assert torch.equal(reversed_rows.flip(0), first)


def test_draws_are_reproducible_and_each_advances_the_counter():
    a, b = WorldNoise(KEYS), WorldNoise(torch.tensor(KEYS))
    x = a.draw((4, 6))
    assert torch.equal(x, b.draw((4, 6))) and a.counters.tolist() == [1] * 8
    y = a.draw((4, 6))
    assert not torch.equal(x, y) and a.counters.tolist() == [2] * 8
    again = WorldNoise(KEYS, counters=[1] * 8)
    assert torch.equal(again.draw((4, 6)), y)


def test_one_worlds_stream_is_two_ints_that_resume_it():
    noise = WorldNoise(KEYS)
    noise.draw((5,))
    state = noise.state(4)
    assert state == {"key": 2**62, "counter": 1}
    expected = noise.draw((5,))[4]
    other = WorldNoise([0, 0])
    other.load_state(1, state)
    assert torch.equal(other.draw((5,))[1], expected)
    other.seed(1, 2**62)  # a reset: the key again, the counter at 0
    assert other.state(1) == {"key": 2**62, "counter": 0}


def test_rows_and_set_rows_take_and_write_worlds_streams():
    noise = WorldNoise(KEYS, counters=range(8))
    part = noise.rows([6, 2])
    assert part.keys.tolist() == [0, 2] and part.counters.tolist() == [6, 2]
    part.draw((3,))  # a copy: the batch is untouched
    assert noise.counters.tolist() == list(range(8))
    noise.set_rows([0, 1], part)
    assert noise.keys[:2].tolist() == [0, 2] and noise.counters[:2].tolist() == [7, 3]
    with pytest.raises(ValueError, match="set_rows got 2 streams for 3 worlds"):
        noise.set_rows([0, 1, 2], part)


@pytest.mark.parametrize(
    "state, error, pattern",
    [
        ([1, 2], TypeError, r'must be a dict \{"key": int, "counter": int\}'),
        ({"key": 1}, TypeError, r"got \['key'\]"),
        ({"key": True, "counter": 0}, TypeError, r"'key' must be an int, got bool"),
        ({"key": 1, "counter": -1}, ValueError, r"'counter' must be in \[0, 2\*\*63\)"),
        ({"key": -(2**63) - 1, "counter": 0}, ValueError, r"'key' must fit in int64"),
    ],
)
def test_a_bad_stream_state_is_refused_naming_the_field(state, error, pattern):
    with pytest.raises(error, match=pattern):
        check_state(state)
    with pytest.raises(error, match=pattern):
        WorldNoise([0]).load_state(0, state)


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    return float(((a - a.mean()) * (b - b.mean())).mean() / (a.std() * b.std()))


def test_the_noise_is_standard_normal_and_uncorrelated_between_worlds_elements_and_draws():
    """Keys 0..63 (neighbours are the hard case for a hash), 2 draws of 8,193 elements (an odd
    count: the last pair's second half is dropped). At 2**20 values, 5 / sqrt(n) is ~0.005."""
    noise = WorldNoise(range(64))
    x, y = noise.draw((8193,)), noise.draw((8193,))
    n = x.numel()
    assert abs(float(x.mean())) < 5 / math.sqrt(n) and abs(float(x.std()) - 1) < 5 / math.sqrt(n)
    # quantiles of a standard normal: P(z < q) for q = -2, -1, 0, 1, 2
    for q, p in [(-2.0, 0.02275), (-1.0, 0.15866), (0.0, 0.5), (1.0, 0.84134), (2.0, 0.97725)]:
        assert abs(float((x < q).double().mean()) - p) < 5 * math.sqrt(p * (1 - p) / n), q
    assert abs(float((x**4).mean()) - 3.0) < 0.05  # kurtosis: the tails are a normal's
    half = 8193 // 2 + 1  # a pair's two normals are elements j and half + j
    for a, b, what in [
        (x[:-1], x[1:], "neighbouring worlds"),
        (x[:, :-1], x[:, 1:], "neighbouring elements"),
        (x[:, : 8193 - half], x[:, half:], "the two normals of one pair"),
        (x, y, "successive draws"),
        (x**2, y**2, "successive draws' magnitudes"),
    ]:
        assert abs(_correlation(a, b)) < 5 / math.sqrt(a.numel()), what


def test_a_draw_runs_the_same_torch_ops_for_one_world_or_a_thousand():
    """The draw is whole-batch tensor ops: no Python loop over worlds, no per-world launch."""
    counts = []
    for n in (1, 5, 20, 1000):
        noise = WorldNoise(range(n))
        with CountOps() as counter:
            noise.draw((4, 1, 3, 5))
        counts.append(counter.count)
    assert len(set(counts)) == 1, counts


def test_initial_noise_draws_a_world_noise_batch_and_refuses_a_mismatch():
    noise = WorldNoise(KEYS[:3])
    out = sampler.initial_noise([(2, 3)] * 3, noise, dtype=torch.float64)
    assert out.dtype == torch.float64 and torch.equal(out.float(), WorldNoise(KEYS[:3]).draw((2, 3)))
    with pytest.raises(ValueError, match=r"a WorldNoise of 3 worlds draws one shape for each of them, got 2"):
        sampler.initial_noise([(2, 3)] * 2, noise)
    with pytest.raises(ValueError, match=r"shapes \[\(2,\), \(2, 3\)\]"):
        sampler.initial_noise([(2, 3), (2, 3), (2,)], noise)


def test_a_stochastic_sampler_draws_every_worlds_fresh_noise_from_its_own_stream():
    """With `sample_renoise` the sampler draws fresh noise between its steps: each draw advances every
    world's counter, and a world stepped in a batch equals it stepped alone with the same stream."""
    mc = small_config(sample_steps=3, sample_renoise=0.5)
    model = awake(WorldModel.from_config(mc, seed=0, text=synthetic_text(mc.text_dim)), seed=1)
    frames = np.random.default_rng(0).integers(0, 255, (3, *model.frame_size, 3)).astype(np.uint8)
    worlds = [model.init_state(frames[i : i + 1]) for i in range(3)]
    actions = np.array([[1, 0], [2, 3], [0, 4]])
    noise = WorldNoise([11, 12, 13])
    many = model.step(model.join_states([w.clone() for w in worlds]), actions, noise)
    assert noise.counters.tolist() == [3, 3, 3]  # the start noise, then one fresh draw per step but the last
    alone = [model.step([w.clone()], actions[i : i + 1], WorldNoise([11 + i])).frames[0] for i, w in enumerate(worlds)]
    for i in range(3):
        assert_frames_close(many.frames[i], alone[i])
    again = model.step([worlds[0].clone()], actions[:1], WorldNoise([11])).frames[0]
    assert np.array_equal(again, alone[0])  # the same stream again: the same chunk, bit for bit
