"""Keeping a generated chunk's spread: the counter to a few-step world's slide into blur.

A world that samples a chunk in one or two steps predicts close to the mean of the futures it cannot
tell apart, and a mean varies less than any one future: the latents of a new chunk spread a few per
cent less around their own mean than the chunk before them. Fed back as history, the shrink
compounds. The shipped world's per-channel standard deviation fell to 0.6 of the data's by step 16
and to 0.4 by step 48, and its frames faded into a uniform blur in which the keys no longer show.

`keep_spread` scales each new chunk's deviations from its per-channel mean back up to the spread
of the chunk before it (`reference_spread`), by at most `max_gain`. The rollout's latents then keep
the statistics of the data. A chunk may still lose spread faster than 1 / max_gain per step (fog and
night fade in over a few steps), and it may always gain spread.

An event (fog, night, rain) changes a scene's spread on purpose, over the simulator's fade-in. The
guard holds a scene's spread, so a world waits `EVENT_SETTLE_CHUNKS` chunks after its event text
changes before the guard applies again (`WorldState.chunks_since_event`). Without the wait the
shipped world's rain, which it draws mostly as a washed-out grey, appeared in 5 of 8 episodes
instead of 8 of 8.

Per world and channel, so a batch gives exactly what its worlds give one by one.
"""

from __future__ import annotations

from typing import Sequence

import torch

EVENT_SETTLE_CHUNKS = 2  # chunks after an event change before the spread is kept again


def reference_spread(histories: Sequence[torch.Tensor], frames: int) -> torch.Tensor:
    """(B, C) standard deviation of each history's newest `frames` latents; histories (C, K_i, h, w),
    K_i >= 1, or one tensor (B, C, K, h, w)."""
    if torch.is_tensor(histories):
        return histories[:, :, -int(frames) :].float().std(dim=(2, 3, 4))
    if not histories:
        raise ValueError("reference_spread needs at least one history")
    tails = [h[:, -int(frames) :].float() for h in histories]
    if all(t.shape == tails[0].shape for t in tails):  # the usual case: one op for the batch
        return torch.stack(tails).std(dim=(2, 3, 4))
    return torch.stack([t.std(dim=(1, 2, 3)) for t in tails])


def keep_spread(
    latents: torch.Tensor, reference: torch.Tensor, max_gain: float, active: torch.Tensor | None = None
) -> torch.Tensor:
    """latents (B, C, F, h, w) with each (world, channel)'s deviations from its mean scaled by
    clamp(reference / spread, 1, max_gain); reference (B, C). `active` (B,) bool: only those worlds
    (default all). max_gain 1 returns `latents` unchanged."""
    if not max_gain >= 1.0:
        raise ValueError(f"max_gain must be >= 1 (1 = off), got {max_gain!r}")
    if max_gain == 1.0:
        return latents
    if latents.dim() != 5 or reference.shape != latents.shape[:2]:
        raise ValueError(
            f"latents (B, C, F, h, w) and reference (B, C) expected, got {tuple(latents.shape)} "
            f"and {tuple(reference.shape)}"
        )
    x = latents.float()
    mean = x.mean(dim=(2, 3, 4), keepdim=True)
    spread = x.std(dim=(2, 3, 4), keepdim=True)
    gain = (reference.to(x)[:, :, None, None, None] / spread.clamp_min(1e-6)).clamp(1.0, float(max_gain))
    if active is not None:
        gain = torch.where(active.to(gain.device, torch.bool).reshape(-1, 1, 1, 1, 1), gain, torch.ones_like(gain))
    return (mean + (x - mean) * gain).to(latents.dtype)
