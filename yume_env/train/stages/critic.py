"""A transition critic: the adversarial term of the `unroll` stage.

Regression alone makes a one-step world predict the mean of the futures it cannot tell apart,
a blur that grows as the world feeds on its own frames. The critic instead judges whether a
step looks like the simulator's: it sees the frame before the step and the step's frames, and
the action taken, and scores each patch real or generated (hinge loss, spectral-normalised
convolutions: the usual stable choice for a small discriminator). The world is trained to be
scored real, so it is asked for sharp frames that move the way the action moves them, rather
than for the average of the frames it might show. This is the adversarial term of
distribution-matching one-step training (as in Self-Forcing's and adversarial post-training's
GAN variants), on decoded pixels, with a projection on the action (Miyato & Koyama 2018).

The critic is trained by the same optimizer step as the world: its own loss reads the generated
frames detached, and the world's term reads the critic through detached weights
(`generator_logits`), so neither term moves the other's network.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

from yume_env.actions import NUM_ACTIONS


class TransitionCritic(nn.Module):
    """forward(before (B, 3, H, W), frames (B, 3, F, H, W), action (B,) flat) -> patch logits (B, H/8, W/8)."""

    def __init__(self, frames_per_step: int, width: int = 32, num_actions: int = NUM_ACTIONS):
        super().__init__()
        if frames_per_step < 1 or width < 1:
            raise ValueError(f"critic needs frames_per_step >= 1 and width >= 1, got {frames_per_step}, {width}")
        self.frames_per_step = int(frames_per_step)
        w = int(width)
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        self.body = nn.Sequential(
            spectral_norm(nn.Conv2d(3 * (1 + self.frames_per_step), w, 4, 2, 1)), act(),  # H/2
            spectral_norm(nn.Conv2d(w, 2 * w, 4, 2, 1)), act(),  # H/4
            spectral_norm(nn.Conv2d(2 * w, 4 * w, 4, 2, 1)), act(),  # H/8: one logit per 8x8 patch
            spectral_norm(nn.Conv2d(4 * w, 4 * w, 3, 1, 1)), act(),
        )
        self.out = spectral_norm(nn.Conv2d(4 * w, 1, 1))
        # projection: a patch scores higher when its features agree with the action's embedding
        self.action = spectral_norm(nn.Embedding(num_actions, 4 * w))
        # training steps taken (the unroll stage counts them): drives its warm-up, saved with the run
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def forward(self, before: torch.Tensor, frames: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        if frames.ndim != 5 or frames.shape[2] != self.frames_per_step or before.shape != frames[:, :, 0].shape:
            raise ValueError(f"critic takes before (B, 3, H, W) and frames (B, 3, {self.frames_per_step}, H, W), "
                             f"got {tuple(before.shape)} and {tuple(frames.shape)}")
        x = torch.cat([before[:, :, None], frames], dim=2).flatten(1, 2)
        h = self.body(x.to(self.out.bias.dtype))  # inputs follow the weights (bf16 on a GPU)
        return self.out(h)[:, 0] + torch.einsum("bchw,bc->bhw", h, self.action(action))


def generator_logits(critic: TransitionCritic, before: torch.Tensor, frames: torch.Tensor,
                     action: torch.Tensor) -> torch.Tensor:
    """The critic's logits with its weights detached: gradients reach the frames, not the critic."""
    params = {name: p.detach() for name, p in critic.named_parameters()}
    return torch.func.functional_call(critic, params, (before, frames, action))


def critic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the critic: real patches above +1, generated ones below -1."""
    return F.relu(1.0 - real_logits.float()).mean() + F.relu(1.0 + fake_logits.float()).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the world: raise the critic's score of its own frames."""
    return -fake_logits.float().mean()


def critic_like(model_state: dict[str, torch.Tensor]) -> TransitionCritic | None:
    """A critic shaped like the one under `critic.` in a train module's state (None if there is none)."""
    first = model_state.get("critic.body.0.parametrizations.weight.original")
    if first is None:
        return None
    action = model_state["critic.action.parametrizations.weight.original"]
    return TransitionCritic(frames_per_step=first.shape[1] // 3 - 1, width=first.shape[0], num_actions=action.shape[0])
