"""Flow-matching Euler sampler: the schedule, one step, the loop. Pure tensor math.

Convention (Wan / Yume): x_t = (1 - t) * x0 + t * eps, the model predicts the velocity
v = eps - x0, so dx/dt = v and one Euler step from t to t' is x + (t' - t) * v.
The model's timestep is t * 1000. No classifier-free guidance (Yume-5B samples without it).
History tokens are clean (timestep 0); that is the model's business, not the sampler's.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(x (B, ...), timestep (B,) in [0, 1000]) -> velocity, same shape as x."""


def shift_sigma(sigma: torch.Tensor, shift: float) -> torch.Tensor:
    """sigma' = s * sigma / (1 + (s - 1) * sigma): s > 1 spends more steps at high noise."""
    return shift * sigma / (1.0 + (shift - 1.0) * sigma)


def sigma_schedule(steps: int, shift: float) -> torch.Tensor:
    """The `steps + 1` noise levels from 1 down to 0 (float64, CPU), shifted.

    Uniform in sigma before the shift, like Wan's `linspace(1, 0, steps + 1)`.
    """
    if int(steps) < 1:
        raise ValueError(f"sample steps must be an integer >= 1, got {steps!r}")
    if not float(shift) > 0:
        raise ValueError(f"shift must be > 0, got {shift!r}")
    sigma = torch.linspace(1.0, 0.0, int(steps) + 1, dtype=torch.float64)
    return shift_sigma(sigma, float(shift))


def timesteps(sigmas: torch.Tensor) -> torch.Tensor:
    """The model's timestep for each denoising step (the first `steps` sigmas) times 1000."""
    return sigmas[:-1] * 1000.0


def euler_step(x: torch.Tensor, velocity: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """One Euler update of the flow ODE from `sigma` to `sigma_next`."""
    return x + (float(sigma_next) - float(sigma)) * velocity.to(x.dtype)


def initial_noise(
    shapes: list[tuple[int, ...]],
    generator: torch.Generator | Sequence[torch.Generator | None] | None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise, one draw per batch element in order, stacked.

    `generator`: one generator for the whole batch (drawn from in order), one per element, or
    None (torch's global generator). Drawing per element (not one big draw) makes a batch of B
    worlds get exactly the noise that B single-world calls with the same generator(s) would get,
    so batching never changes results. Noise is drawn on the generator's device, then moved.
    """
    if generator is None or isinstance(generator, torch.Generator):
        generators = [generator] * len(shapes)
    else:
        generators = list(generator)
        if len(generators) != len(shapes):
            raise ValueError(f"got {len(generators)} generators for a batch of {len(shapes)}")
    draws = [
        torch.randn(shape, generator=g, device=g.device if g is not None else "cpu", dtype=torch.float32)
        for shape, g in zip(shapes, generators)
    ]
    return torch.stack(draws).to(device=device, dtype=dtype)


def sample(denoise: Denoiser, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Integrates from `noise` (sigma = sigmas[0]) to sigmas[-1] with Euler steps.

    `denoise(x, timestep)` gets the timestep as a (B,) tensor of sigma * 1000 in x's dtype.
    """
    x = noise
    batch = x.shape[0]
    for sigma, sigma_next in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
        t = torch.full((batch,), sigma * 1000.0, device=x.device, dtype=torch.float32)
        x = euler_step(x, denoise(x, t), sigma, sigma_next)
    return x
