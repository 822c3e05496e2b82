"""The world step: one chunk for a batch of worlds, from their history, actions, event and noise.

    latents = step_chunk(dit, config, history, context, noise, action=flat, poses=chunk_poses)

Reads the history (`History.read`: TSCM tokens, pose features, recalled views), denoises the chunk
in `config.sample_steps` steps from `noise` (`sampler.sample`), keeps its spread where the config
asks (`spread.py`), and appends it to the history. Inference (`WorldModel.step`), the training
stages that roll a world out, and the evaluation all call this one function.
"""

from __future__ import annotations

from typing import Sequence

import torch

from yume_env.host_to_device import to_device
from yume_env.model import sampler, spread
from yume_env.model.config import WorldModelConfig
from yume_env.model.history import History
from yume_env.model.noise import WorldNoise


def step_chunk(
    dit: torch.nn.Module,
    config: WorldModelConfig,
    history: History,
    context: torch.Tensor,
    noise: torch.Tensor,
    *,
    action: torch.Tensor | None = None,
    poses: torch.Tensor | None = None,
    spread_active: Sequence[bool] | None = None,
    sample_steps: int | None = None,
    generator: WorldNoise | torch.Generator | Sequence[torch.Generator] | None = None,
) -> torch.Tensor:
    """The next chunk's latents (B, C, F, h, w) of B worlds; `history` is updated in place.

    config: the model's config (its sampler settings: `sample_steps`, `shift`, `spread_gain_max`).
    context (B, L, text_dim): [action, event] text; noise: like the latents; action (B,): flat actions
    (key * 9 + camera) for DiTs with a learned action embedding; poses (B, F, 4): the chunk's frame
    poses (models with pose memory); spread_active: per world, whether the spread guard applies
    (default: every world); sample_steps: override `config.sample_steps`; generator: where a
    stochastic sampler (`config.sample_renoise`) draws its fresh noise, like `sampler.initial_noise`
    (a `WorldNoise` advances each world's counter once per draw). Gradients flow where
    they are enabled (training rollouts), into this chunk only: the history is read as it is."""
    c = config
    memory = history.memory
    target = poses[:, -1] if poses is not None else None
    tokens = history.read(dit, context=context, target=target)
    kw = {"action": action} if action is not None and getattr(dit, "action_embedding", None) is not None else {}

    if c.frame_conditioning:
        kw["frame"] = newest_frame(history)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = dit(x, t, context, tokens, memory, **kw).float()
        return out if c.prediction == "velocity" else sampler.velocity(out, x, t / 1000.0, c.prediction)

    steps = c.sample_steps if sample_steps is None else int(sample_steps)
    shapes = [tuple(noise.shape[1:])] * noise.shape[0]
    latents = sampler.sample(
        velocity,
        noise,
        sampler.sigma_schedule(steps, c.shift),
        c.sample_renoise,
        lambda: sampler.initial_noise(shapes, generator, noise.device, noise.dtype),
    )
    if c.spread_gain_max > 1.0:  # before the append: the reference is the chunk before this one
        active = [True] * history.batch_size if spread_active is None else list(spread_active)
        if any(active):
            f = c.latent_frames_per_chunk
            reference = spread.reference_spread(history.newest(f) if min(history.kept) >= f else history.tail(f), f)
            latents = spread.keep_spread(
                latents,
                reference.to(latents.device),
                c.spread_gain_max,
                active=None if all(active) else to_device(active, latents.device, torch.long),
            )
    history.append(dit, latents.detach(), poses)
    return latents


def newest_frame(history: History) -> torch.Tensor:
    """(B, C, 1, h, w): each world's newest kept latent (what a frame-conditioned DiT stacks on the chunk)."""
    return history.newest(1).float()
