"""Pixel fidelity of the learned world: teacher-forced next-chunk and autoregressive PSNR / SSIM."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from yume_env.train.eval.metrics import psnr, ssim
from yume_env.train.eval.rollout import Rollout, frame_actions


def _per_step(metric, a: np.ndarray, b: np.ndarray, batch: int = 512) -> np.ndarray:
    """metric over frames (..., F, H, W, 3) -> (...) mean over the F frames of each step."""
    lead = a.shape[:-4]
    fa, fb = a.reshape(-1, *a.shape[-3:]), b.reshape(-1, *b.shape[-3:])
    vals = torch.cat([metric(fa[i : i + batch], fb[i : i + batch]) for i in range(0, len(fa), batch)])
    return vals.view(*lead, a.shape[-4]).mean(-1).numpy()


def autoregressive(rollout: Rollout, horizons: tuple[int, ...]) -> dict:
    """PSNR / SSIM of the generated frames against the simulator's, per step, averaged over worlds.

    `at[h]` is the value at step h (the h-th generated chunk); `mean_to[h]` averages steps 1..h.
    """
    p = _per_step(psnr, rollout.model, rollout.sim)  # (B, S)
    s = _per_step(ssim, rollout.model, rollout.sim)
    curve_p, curve_s = p.mean(0), s.mean(0)
    out = {"steps": int(p.shape[1]), "episodes": int(p.shape[0]), "psnr_curve": curve_p.tolist(), "ssim_curve": curve_s.tolist()}
    for h in horizons:
        if h <= p.shape[1]:
            out[f"psnr@{h}"] = float(curve_p[h - 1])
            out[f"ssim@{h}"] = float(curve_s[h - 1])
            out[f"psnr_mean_to@{h}"] = float(curve_p[:h].mean())
            out[f"ssim_mean_to@{h}"] = float(curve_s[:h].mean())
    return out


@torch.no_grad()
def teacher_forced(model, rollout: Rollout, points: int, context: int, generator: torch.Generator,
                   progress: bool = True) -> dict:
    """Next-chunk PSNR / SSIM with true history: at `points` steps spread over the rollout, each world
    restarts from the simulator's frames of its last `context` steps and predicts one chunk."""
    B, S, F = rollout.sim.shape[:3]
    times = np.unique(np.linspace(0, S - 1, points).round().astype(int))
    ps, ss = [], []
    for t in tqdm(times, desc="teacher-forced", disable=not progress):
        states = []
        for b in range(B):
            frames = np.concatenate([rollout.history[b], rollout.sim[b, :t].reshape(-1, *rollout.sim.shape[-3:])])
            acts = np.concatenate([rollout.burn_actions[b], rollout.actions[b, :t]])
            k = min(context, len(acts))
            states.append(model.init_state(frames[-(1 + k * F):], frame_actions(acts[-k:], F)))
        out = model.step(states, rollout.actions[:, t], generator).frames
        ps.append(_per_step(psnr, out, rollout.sim[:, t]))
        ss.append(_per_step(ssim, out, rollout.sim[:, t]))
    p, s = np.stack(ps, 1), np.stack(ss, 1)  # (B, points)
    return {"psnr": float(p.mean()), "ssim": float(s.mean()), "points": times.tolist(),
            "psnr_per_point": p.mean(0).tolist(), "context_steps": int(context), "predictions": int(p.size)}
