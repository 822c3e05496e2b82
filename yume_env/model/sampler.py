"""Flow-matching Euler sampler: the schedule, one step, the loop. Pure tensor math.

Convention (Wan / Yume): x_t = (1 - t) * x0 + t * eps, the model predicts the velocity
v = eps - x0, so dx/dt = v and one Euler step from t to t' is x + (t' - t) * v.
The model's timestep is t * 1000. No classifier-free guidance (Yume-5B samples without it).
History tokens are clean (timestep 0); that is the model's business, not the sampler's.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from yume_env.model.noise import WorldNoise

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


def velocity(output: torch.Tensor, x: torch.Tensor, t: torch.Tensor, prediction: str) -> torch.Tensor:
    """The flow velocity eps - x0 implied by a model output at x (B, ...) and noise level t (B,) in (0, 1]:
    the output itself ("velocity") or (x - x0) / t for a predicted clean sample x0 ("sample")."""
    if prediction == "velocity":
        return output
    if prediction == "sample":
        return (x - output) / t.view(-1, *[1] * (x.dim() - 1)).to(x.dtype)
    raise ValueError(f"prediction must be 'velocity' or 'sample', got {prediction!r}")


def clean_sample(output: torch.Tensor, x: torch.Tensor, t: torch.Tensor, prediction: str) -> torch.Tensor:
    """The clean sample x0 implied by a model output at x and noise level t (B,)."""
    if prediction == "sample":
        return output
    return x - t.view(-1, *[1] * (x.dim() - 1)).to(x.dtype) * output


SIGMA_DATA = 0.5
"""The spread of clean pixels in [-1, 1] that the "sample" worlds' preconditioning assumes."""


def preconditioning(t: torch.Tensor, sigma_data: float = SIGMA_DATA) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EDM's (c_in, c_skip, c_out) at flow noise levels t in [0, 1], for x_t = (1 - t) x0 + t eps:
    a denoiser F gives the clean sample c_skip * x_t + c_out * F(c_in * x_t), so at low noise it
    starts from the input itself and at t = 1 from nothing (F alone), and F's input and target have
    about unit variance at every level (Karras et al. 2022, written for the flow's scaling 1 - t)."""
    s, sd2 = 1.0 - t, sigma_data**2
    norm = (t.square() + s.square() * sd2).sqrt()
    return 1.0 / norm, sd2 * s / norm.square(), t * sigma_data / norm


def euler_step(x: torch.Tensor, velocity: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """One Euler update of the flow ODE from `sigma` to `sigma_next`."""
    return x + (float(sigma_next) - float(sigma)) * velocity.to(x.dtype)


def initial_noise(
    shapes: list[tuple[int, ...]],
    generator: WorldNoise | torch.Generator | Sequence[torch.Generator | None] | None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise, one draw per batch element in order, stacked.

    `generator`: a `WorldNoise` with one stream per element (what the envs use: one draw for the
    whole batch on its device, each element's noise from its own key and counter), one
    torch.Generator for the whole batch (drawn from in order), one per element, or None (torch's
    global generator). Torch generators are drawn from per element (not one big draw), so a batch
    of B worlds gets exactly the noise that B single-world calls with the same generator(s) would
    get: batching never changes results. That noise is drawn on the generator's device, then moved.
    """
    if isinstance(generator, WorldNoise):
        if len(generator) != len(shapes) or len(set(shapes)) > 1:
            raise ValueError(
                f"a WorldNoise of {len(generator)} worlds draws one shape for each of them, "
                f"got {len(shapes)} elements of shapes {sorted(set(shapes))}"
            )
        return generator.draw(shapes[0]).to(device=device, dtype=dtype)
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


def renoise_step(
    x: torch.Tensor, velocity: torch.Tensor, sigma: float, sigma_next: float, amount: float, fresh: torch.Tensor
) -> torch.Tensor:
    """A stochastic step from `sigma` to `sigma_next`: the implied clean sample x0 = x - sigma * v is
    noised again to `sigma_next` with its implied noise eps = x0 + v, of which a share `amount` (in
    [0, 1], by variance) is replaced by `fresh` noise. amount 0 is the Euler step."""
    v = velocity.to(x.dtype)
    x0 = x - float(sigma) * v
    eps = (1.0 - amount**2) ** 0.5 * (x0 + v) + amount * fresh
    return (1.0 - float(sigma_next)) * x0 + float(sigma_next) * eps


def sample(
    denoise: Denoiser,
    noise: torch.Tensor,
    sigmas: torch.Tensor,
    renoise: float = 0.0,
    draw_noise: Callable[[], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Integrates from `noise` (sigma = sigmas[0]) to sigmas[-1]: Euler steps, or with `renoise` > 0
    stochastic steps (`renoise_step`) whose fresh noise comes from `draw_noise()` (shaped like `noise`).

    `denoise(x, timestep)` gets the timestep as a (B,) tensor of sigma * 1000 in x's dtype.
    """
    if renoise and draw_noise is None:
        raise ValueError("a stochastic sampler (renoise > 0) needs draw_noise for its fresh noise")
    x = noise
    batch = x.shape[0]
    pairs = list(zip(sigmas[:-1].tolist(), sigmas[1:].tolist()))
    for i, (sigma, sigma_next) in enumerate(pairs):
        t = torch.full((batch,), sigma * 1000.0, device=x.device, dtype=torch.float32)
        v = denoise(x, t)
        if renoise and i + 1 < len(pairs):  # the last step lands on the clean sample: nothing to renoise
            x = renoise_step(x, v, sigma, sigma_next, renoise, draw_noise())
        else:
            x = euler_step(x, v, sigma, sigma_next)
    return x
