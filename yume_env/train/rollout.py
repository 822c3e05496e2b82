"""Generation during training and the measurements the stages log.

- `snapshot_world`: a `WorldModel` around frozen *copies* of the weights (EMA where given), for
  measurements that must match inference exactly: teacher-forced next-chunk PSNR and
  autoregressive rollout PSNR (drift) against the simulator.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from yume_env.data.sim_clips import Clips
from yume_env.model.config import WorldModelConfig


def snapshot_world(
    config: WorldModelConfig,
    dit: nn.Module,
    vae: nn.Module,
    text,
    task_head: nn.Module | None = None,
    ema_state: dict[str, torch.Tensor] | None = None,
):
    """A `WorldModel` over deep copies of the modules (EMA shadow weights loaded when given)."""
    from yume_env.model.pipeline import WorldModel

    dit_copy = copy.deepcopy(dit)
    if ema_state is not None:
        own = dit_copy.state_dict()
        dit_copy.load_state_dict({k: ema_state[k].to(own[k].dtype) if k in ema_state else v for k, v in own.items()})
    head = copy.deepcopy(task_head) if task_head is not None else None
    return WorldModel(config, dit_copy, copy.deepcopy(vae), text, head)


def frame_psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-item PSNR (dB) of uint8 arrays (n, ...)."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = (diff.reshape(len(a), -1) ** 2).mean(1)
    return 10.0 * np.log10(255.0**2 / np.maximum(mse, 1e-10))


@torch.no_grad()
def rollout_psnr(
    world, clips: Clips, steps: int, burn_in_steps: int = 0, seed: int = 0
) -> dict[str, list[float] | float]:
    """Autoregressive rollout of the learned world under the clips' actions and events, from the
    clips' first `1 + burn_in_steps * F` frames; PSNR of each step's frames against the simulator's.

    Returns {"psnr_by_step": [...], "psnr_mean": float, "frames": uint8 (n, steps*F, H, W, 3)}.
    """
    F_ = clips.sub_frames
    n = clips.frames.shape[0]
    steps = min(int(steps), clips.steps - burn_in_steps)
    gt = clips.frames.cpu().numpy()
    acts = clips.actions.cpu().numpy()
    states = []
    for i in range(n):
        upto = 1 + burn_in_steps * F_
        per_frame = np.repeat(acts[i, :burn_in_steps], F_, axis=0)  # init_state takes one action per frame pair
        states.append(world.init_state(gt[i, :upto], per_frame if burn_in_steps else None))
    gen = torch.Generator(device=world.device).manual_seed(int(seed))
    by_step, frames = [], []
    for s in range(burn_in_steps, burn_in_steps + steps):
        for i, st in enumerate(states):
            world.set_event(st, clips.events[i][s])
        out = world.step(states, acts[:, s], gen)
        lo = 1 + s * F_
        by_step.append(float(frame_psnr(out.frames, gt[:, lo : lo + F_]).mean()))
        frames.append(out.frames)
    return {"psnr_by_step": by_step, "psnr_mean": float(np.mean(by_step)), "frames": np.concatenate(frames, axis=1)}


@torch.no_grad()
def teacher_forced_psnr(world, clips: Clips, history_steps: list[int], seed: int = 0) -> float:
    """Mean PSNR of one generated chunk given the simulator's own history of k steps, over k in `history_steps`."""
    values = []
    for k in history_steps:
        if k >= clips.steps:
            continue
        values.append(rollout_psnr(world, clips, steps=1, burn_in_steps=k, seed=seed)["psnr_mean"])
    return float(np.mean(values)) if values else float("nan")
