"""The flow-matching Euler sampler: schedule values, exactness on a known flow, seeded noise."""

import pytest
import torch

from yume_env.model import sampler


def test_schedule_matches_the_shift_formula_for_yume_settings():
    sigmas = sampler.sigma_schedule(4, 7.0)
    expected = torch.tensor([1.0, 5.25 / 5.5, 3.5 / 4.0, 1.75 / 2.5, 0.0], dtype=torch.float64)
    assert torch.allclose(sigmas, expected)
    assert torch.allclose(sampler.timesteps(sigmas), expected[:-1] * 1000)


def test_shift_one_is_uniform():
    assert torch.allclose(sampler.sigma_schedule(3, 1.0), torch.linspace(1, 0, 4, dtype=torch.float64))


@pytest.mark.parametrize("steps,shift", [(0, 5.0), (3, 0.0), (-1, 1.0)])
def test_bad_schedule_arguments_are_rejected_with_the_value(steps, shift):
    with pytest.raises(ValueError, match="must be"):
        sampler.sigma_schedule(steps, shift)


def test_sampling_a_perfect_velocity_recovers_the_data_exactly():
    x0 = torch.randn(2, 4, 3)
    noise = torch.randn(2, 4, 3)
    seen = []

    def denoise(x, t):  # exact velocity of the straight path from x0 to noise
        seen.append(t.clone())
        return noise - x0

    out = sampler.sample(denoise, noise, sampler.sigma_schedule(3, 5.0))
    assert torch.allclose(out, x0, atol=1e-6)
    assert [tuple(t.shape) for t in seen] == [(2,)] * 3
    assert seen[0][0].item() == pytest.approx(1000.0)


def test_euler_step_moves_along_the_velocity():
    x, v = torch.ones(3), torch.full((3,), 2.0)
    assert torch.allclose(sampler.euler_step(x, v, 0.75, 0.25), torch.zeros(3))


def test_a_seed_fixes_the_noise():
    a = sampler.initial_noise([(2, 3)] * 2, torch.Generator().manual_seed(7))
    b = sampler.initial_noise([(2, 3)] * 2, torch.Generator().manual_seed(7))
    c = sampler.initial_noise([(2, 3)] * 2, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_batched_noise_equals_consecutive_single_draws():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    batched = sampler.initial_noise([(4, 5, 5)] * 3, g1)
    singles = torch.cat([sampler.initial_noise([(4, 5, 5)], g2) for _ in range(3)])
    assert torch.equal(batched, singles)


def test_one_generator_per_element_draws_each_elements_noise_from_its_own():
    gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    out = sampler.initial_noise([(3,), (3,)], gens)
    assert torch.equal(out[1], torch.randn(3, generator=torch.Generator().manual_seed(2)))
    with pytest.raises(ValueError, match="2 generators for a batch of 3"):
        sampler.initial_noise([(3,)] * 3, gens)
