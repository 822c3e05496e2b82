"""Measures of generated frames that blur cannot fool: a Fréchet distance to the simulator's frames
and a sharpness ratio, with their references, at the rollout's horizons.

At horizon h both read the `window` steps that end at step h (steps 1..16 at h = 16, 49..64 at
h = 64, 241..256 at h = 256 by default), in every world:

- Fréchet distance between the Gaussians of the features (`features.FrechetFeatures`: the event
  classifier's penultimate layer, trained on simulator frames only, projected to 64-d) of the
  generated frames and of the simulator's (`frechet`), on the last frame of each step (a step's
  sub-frames are near copies, and the classifier costs about 10 ms a frame on a CPU core);
- sharpness: the mean Laplacian energy of the luminance (`metrics.laplacian_energy`) of the
  generated frames over the simulator's, every frame (1.0 = as sharp as the simulator).

References, scored the same way against the same simulator frames: the simulator in other worlds
under the same actions (the floor: a perfect world that draws a different street), and one
constant image, those worlds' mean frame (the blur that PSNR rewards).

`scripted_rollout` runs the evaluation's action scripts (the loop of the loop closure, then a turn
back) for the same measures under actions that are not random.
"""

from __future__ import annotations

import numpy as np
import torch

from yume_env.eval.features import FrechetFeatures
from yume_env.eval.fidelity import mean_frame
from yume_env.eval.frechet import Gaussian, frechet_distance
from yume_env.eval.loop_closure import TURN, TURN_BACK, loop_script
from yume_env.eval.metrics import laplacian_energy
from yume_env.eval.rollout import Rollout, burn_in, lockstep

WINDOW_STEPS = 16
SCRIPT_WALK, SCRIPT_TURN, SCRIPT_TURN_BACK = 6, 18, 8
REFERENCES = {
    "other_world": "the simulator in other worlds under the same actions: the floor",
    "mean_frame": "one constant image, the other worlds' mean frame",
}
"""The references of the realism measures (JSON name: what it stands for)."""


def window(horizon: int, steps: int = WINDOW_STEPS) -> tuple[int, int]:
    """(first, last) generated steps read at `horizon`, 1-based and inclusive."""
    return max(1, horizon - steps + 1), horizon


def action_script(steps: int) -> np.ndarray:
    """(steps, 2) actions: the loop closure's loop (W x 6, → x 18, W x 6, → x 18), then a turn back
    of 8 (→ x 8, ← x 8), 64 steps in all, repeated and cut to `steps`."""
    period = np.concatenate(
        [loop_script(SCRIPT_WALK, SCRIPT_TURN), np.array([TURN] * SCRIPT_TURN_BACK + [TURN_BACK] * SCRIPT_TURN_BACK)]
    )
    return np.resize(period, (steps, 2)).astype(np.int64)


def scripted_rollout(
    model,
    episodes: int,
    steps: int,
    burn: int,
    seed: int,
    rng: np.random.Generator,
    generator: torch.Generator,
    progress: bool = True,
) -> tuple[Rollout, list[int]]:
    """Worlds of seeds `seed`.. after a burn-in of keys only (level camera, as the loop closure's),
    all taking `action_script(steps)`; the lockstep rollout and its seeds."""
    from yume_env.actions import KEYS

    seeds = [seed + i for i in range(episodes)]
    start = burn_in(model, seeds, burn, rng, actions=rng.integers(0, [len(KEYS), 1], size=(episodes, burn, 2)))
    actions = np.broadcast_to(action_script(steps), (episodes, steps, 2)).copy()
    return lockstep(model, start, actions, generator, desc="scripted rollout", progress=progress), seeds


def _energy(frames: np.ndarray) -> np.ndarray:
    """(B, S, F, H, W, 3) -> (S,) mean Laplacian energy per step over worlds and sub-frames."""
    return laplacian_energy(frames).double().mean(dim=(0, 2)).numpy()


def realism(
    features: FrechetFeatures,
    sim: np.ndarray,
    model: np.ndarray,
    other: np.ndarray,
    horizons: tuple[int, ...],
    steps: int = WINDOW_STEPS,
) -> dict:
    """Fréchet distances and sharpness of the generated frames `model` and of the references against
    the simulator's `sim`, all (B, S, F, H, W, 3) uint8 (`other`: the other worlds' frames)."""
    constant = mean_frame(other)
    energy = {"sim": _energy(sim), "world": _energy(model), "other_world": _energy(other)}
    flat_energy = float(laplacian_energy(constant))
    constant_features = Gaussian.fit(features(constant[None]))
    out: dict = {
        "episodes": int(sim.shape[0]),
        "window_steps": int(steps),
        "feature_dim": int(features.dim),
        "windows": {},
        "frames_per_window": {},
        "world": {},
        "other_world": {},
        "mean_frame": {},
        "sharpness_curve": (energy["world"] / energy["sim"]).tolist(),
        "sharpness_curve_other_world": (energy["other_world"] / energy["sim"]).tolist(),
    }
    for h in (h for h in horizons if h <= sim.shape[1]):
        lo, hi = window(h, steps)
        pick = slice(lo - 1, hi)
        truth = Gaussian.fit(features(sim[:, pick, -1]))
        sim_energy = energy["sim"][pick].mean()
        out["windows"][str(h)] = [lo, hi]
        out["frames_per_window"][str(h)] = int(truth.count)
        for name, frames in (("world", model), ("other_world", other)):
            out[name][f"frechet@{h}"] = frechet_distance(Gaussian.fit(features(frames[:, pick, -1])), truth)
            out[name][f"sharpness@{h}"] = float(energy[name][pick].mean() / sim_energy)
        out["mean_frame"][f"frechet@{h}"] = frechet_distance(constant_features, truth)
        out["mean_frame"][f"sharpness@{h}"] = flat_energy / float(sim_energy)
        out[f"frechet_over_floor@{h}"] = out["world"][f"frechet@{h}"] / max(out["other_world"][f"frechet@{h}"], 1e-12)
    late = [out["world"][f"sharpness@{h}"] for h in horizons if h >= 64 and f"sharpness@{h}" in out["world"]]
    if late:
        out["sharpness_min_from_64"] = float(min(late))
    return out
