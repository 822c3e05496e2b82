"""Pixel fidelity of the learned world: teacher-forced next-chunk and autoregressive PSNR / SSIM, and
the autoregressive PSNR / SSIM of reference predictors that need no model (`references`)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from tqdm.auto import tqdm

from yume_env.eval.metrics import psnr, ssim
from yume_env.eval.rollout import Rollout, burn_in, frame_actions

OTHER_WORLD_SEED_OFFSET = 2_000_000
"""The other-world reference's simulators use the evaluated worlds' seeds plus this: far above every
block the evaluation draws from (`config.seed` + 0..400,000 and their episodes) and the probes'
training seeds (below 1,000,000), so an other world never repeats an evaluated or a training world."""

REFERENCES = {
    "copy_last_burn_in_frame": "every step predicted as the last burn-in frame: a world that never moves",
    "other_world": f"the simulator in another world (seed + {OTHER_WORLD_SEED_OFFSET:,}) under the same burn-in and "
    "rollout actions: a perfect world that does not know this street's layout",
    "other_worlds_mean_frame": "one constant image, the other worlds' mean frame (all episodes, steps and sub-frames): "
    "the blur that PSNR rewards when the street is unknown",
}
"""Reference predictors scored like the learned world (`references`), with what each stands for."""


def _per_step(metric, a: np.ndarray, b: np.ndarray, batch: int = 32) -> np.ndarray:
    """metric over frames (..., F, H, W, 3) -> (...) mean over the F frames of each step.

    Batches of 32 frames: on CPU, SSIM's convolutions run several times faster per frame on batches
    of up to ~48 frames than on larger ones (same values: each image is filtered on its own)."""
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
    return {"steps": int(p.shape[1]), "episodes": int(p.shape[0]), **_curves(p, s, horizons)}


def _curves(p: np.ndarray, s: np.ndarray, horizons: tuple[int, ...]) -> dict:
    """Per-world, per-step PSNR / SSIM (B, S) -> curves averaged over worlds, values at and means to
    each horizon the rollout reaches."""
    curve_p, curve_s = p.mean(0), s.mean(0)
    out = {"psnr_curve": curve_p.tolist(), "ssim_curve": curve_s.tolist()}
    for h in horizons:
        if h <= p.shape[1]:
            out[f"psnr@{h}"] = float(curve_p[h - 1])
            out[f"ssim@{h}"] = float(curve_s[h - 1])
            out[f"psnr_mean_to@{h}"] = float(curve_p[:h].mean())
            out[f"ssim_mean_to@{h}"] = float(curve_s[:h].mean())
    return out


def references(
    rollout: Rollout,
    seeds: list[int],
    horizons: tuple[int, ...],
    progress: bool = True,
    other: np.ndarray | None = None,
) -> dict:
    """PSNR / SSIM curves of the `REFERENCES` predictors against the rollout's simulator frames,
    scored step by step like the learned world. Simulators only, no model and no shared random
    stream: every other measure of the evaluation reads the same with or without this.

    `seeds` are the evaluated worlds' seeds (one per rollout episode); `other`, the other worlds'
    frames where the caller already rendered them (`other_world_frames`)."""
    last_burn_in = rollout.start_view[:, None]  # (B, 1, H, W, 3): broadcast over each step's sub-frames
    copy_p, copy_s = constant_prediction_scores(last_burn_in, rollout.sim, "reference: copy last frame", progress)
    other_p, other_s, mean_frame = other_world_scores(rollout, seeds, progress, frames=other)
    mean_p, mean_s = constant_prediction_scores(mean_frame, rollout.sim, "reference: mean frame", progress)
    scores = {
        "copy_last_burn_in_frame": (copy_p, copy_s),
        "other_world": (other_p, other_s),
        "other_worlds_mean_frame": (mean_p, mean_s),
    }
    return {name: {"about": REFERENCES[name], **_curves(p, s, horizons)} for name, (p, s) in scores.items()}


def _step_scores(predicted: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PSNR and SSIM (B,) of one step's frames (B, F, H, W, 3)."""
    return _per_step(psnr, predicted, truth), _per_step(ssim, predicted, truth)


def constant_prediction_scores(
    image: np.ndarray, sim: np.ndarray, desc: str = "reference", progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """PSNR / SSIM (B, S) of predicting `image` at every step and sub-frame; `image` broadcasts to
    one step's frames (B, F, H, W, 3), e.g. (B, 1, H, W, 3) per world or (H, W, 3) for all.
    Step by step, so the prediction is never materialised for the whole rollout."""
    B, S = sim.shape[:2]
    p, s = np.empty((B, S)), np.empty((B, S))
    for t in tqdm(range(S), desc=desc, disable=not progress):
        p[:, t], s[:, t] = _step_scores(np.broadcast_to(image, sim[:, t].shape), sim[:, t])
    return p, s


def other_world_simulators(
    seeds: list[int], burn_actions: np.ndarray, frame_size: tuple[int, int], frames_per_step: int
) -> list:
    """One simulator per evaluated seed, in the world of seed + `OTHER_WORLD_SEED_OFFSET`, after the
    same burn-in actions (B, burn_in, 2) as the evaluated one."""
    # All that burn_in reads of a model.
    size = SimpleNamespace(frame_size=tuple(frame_size), frames_per_step=int(frames_per_step))
    other_seeds = [int(seed) + OTHER_WORLD_SEED_OFFSET for seed in seeds]
    unused = np.random.default_rng(0)  # burn_in draws no actions when they are given
    return burn_in(size, other_seeds, burn_actions.shape[1], unused, actions=burn_actions).sims


def other_world_frames(rollout: Rollout, seeds: list[int], progress: bool = True) -> np.ndarray:
    """The other worlds' frames (B, S, F, H, W, 3) uint8 under the rollout's burn-in and actions
    (`other_world_simulators`)."""
    B, S, F, H, W = rollout.sim.shape[:5]
    if len(seeds) != B:
        raise ValueError(f"references need one seed per rollout episode: {len(seeds)} seeds for {B} episodes")
    sims = other_world_simulators(seeds, rollout.burn_actions, (H, W), F)
    frames = np.empty_like(rollout.sim)
    for t in tqdm(range(S), desc="reference: other worlds", disable=not progress):
        frames[:, t] = np.stack([sim.step(a).frames for sim, a in zip(sims, rollout.actions[:, t])])
    return frames


def mean_frame(frames: np.ndarray) -> np.ndarray:
    """One constant image (H, W, 3) uint8: `frames` (..., H, W, 3) averaged and rounded."""
    flat = frames.reshape(-1, *frames.shape[-3:])
    total = np.zeros(frames.shape[-3:], dtype=np.float64)
    for i in range(0, len(flat), 1024):  # in slices: no float64 copy of a whole rollout
        total += flat[i : i + 1024].sum(axis=0, dtype=np.float64)
    return np.round(total / len(flat)).clip(0, 255).astype(np.uint8)


def other_world_scores(
    rollout: Rollout, seeds: list[int], progress: bool = True, frames: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PSNR / SSIM (B, S) of the other worlds' frames under the rollout's actions, and their mean
    frame (H, W, 3) uint8 over all episodes, steps and sub-frames. `frames`: the other worlds'
    frames when already rendered (else rendered here)."""
    B, S = rollout.sim.shape[:2]
    if len(seeds) != B:
        raise ValueError(f"references need one seed per rollout episode: {len(seeds)} seeds for {B} episodes")
    frames = other_world_frames(rollout, seeds, progress) if frames is None else frames
    p, s = np.empty((B, S)), np.empty((B, S))
    for t in range(S):
        p[:, t], s[:, t] = _step_scores(frames[:, t], rollout.sim[:, t])
    return p, s, mean_frame(frames)


@torch.no_grad()
def teacher_forced(
    model, rollout: Rollout, points: int, context: int, generator: torch.Generator, progress: bool = True
) -> dict:
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
            states.append(model.init_state(frames[-(1 + k * F) :], frame_actions(acts[-k:], F)))
        out = model.step(states, rollout.actions[:, t], generator).frames
        ps.append(_per_step(psnr, out, rollout.sim[:, t]))
        ss.append(_per_step(ssim, out, rollout.sim[:, t]))
    p, s = np.stack(ps, 1), np.stack(ss, 1)  # (B, points)
    return {
        "psnr": float(p.mean()),
        "ssim": float(s.mean()),
        "points": times.tolist(),
        "psnr_per_point": p.mean(0).tolist(),
        "context_steps": int(context),
        "predictions": int(p.size),
    }
