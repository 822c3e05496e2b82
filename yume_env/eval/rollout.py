"""Lockstep rollouts: B simulators and B learned worlds under the same actions.

Each world starts from simulator frames (the burn-in: the reset view and `burn_in` steps), then the
simulator and the model take the same actions; both sides' frames are kept for the measures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from yume_env.eval.labels import effective_actions
from yume_env.eval.simulate import make_simulator, random_actions


@dataclass
class BurnIn:
    sims: list  # the simulators, each at the end of its burn-in
    frames: np.ndarray  # (B, 1 + burn_in * F, H, W, 3) uint8: reset view + every sub-frame
    actions: np.ndarray  # (B, burn_in, 2) per step


def frame_actions(step_actions: np.ndarray, frames_per_step: int) -> np.ndarray:
    """(T, 2) per-step actions -> (T * F, 2) per-frame transitions, as `init_state` takes them."""
    return np.repeat(np.asarray(step_actions, dtype=np.int64).reshape(-1, 2), frames_per_step, axis=0)


def burn_in(model, seeds: list[int], steps: int, rng: np.random.Generator, actions: np.ndarray | None = None) -> BurnIn:
    """Reset one simulator per seed (at the model's frame size and frames per step) and take
    `steps` steps of random (or the given (B, steps, 2)) actions."""
    h, w = model.frame_size
    f = model.frames_per_step
    sims, frames, acts = [], [], []
    for b, seed in enumerate(seeds):
        sim = make_simulator(h, w, f, seed)
        first = sim.reset(seed)
        a = random_actions(rng, steps) if actions is None else np.asarray(actions[b], dtype=np.int64)
        seq = [first[None]] + [sim.step(x).frames for x in a]
        sims.append(sim)
        frames.append(np.concatenate(seq))
        acts.append(a)
    return BurnIn(sims, np.stack(frames), np.stack(acts).reshape(len(seeds), steps, 2))


def init_states(model, start: BurnIn, event: str = "") -> list:
    return [
        model.init_state(fr, frame_actions(a, model.frames_per_step), event=event)
        for fr, a in zip(start.frames, start.actions)
    ]


@dataclass
class Rollout:
    """Both sides of a lockstep rollout of `steps` steps (index t = the t+1-th generated chunk)."""

    history: np.ndarray  # (B, T0, H, W, 3) the burn-in frames the model started from
    burn_actions: np.ndarray  # (B, burn_in, 2)
    actions: np.ndarray  # (B, steps, 2) commanded
    effective: np.ndarray  # (B, steps, 2) what the simulator's camera did
    sim: np.ndarray  # (B, steps, F, H, W, 3)
    model: np.ndarray  # (B, steps, F, H, W, 3)
    step_seconds: np.ndarray  # (steps,) wall time of each batched model step

    @property
    def start_view(self) -> np.ndarray:
        return self.history[:, -1]


def lockstep(
    model,
    start: BurnIn,
    actions: np.ndarray,
    generator: torch.Generator,
    states: list | None = None,
    desc: str = "rollout",
    progress: bool = True,
) -> Rollout:
    """Step the simulators in `start` and fresh learned worlds (or `states`) with `actions` (B, S, 2)."""
    import time

    states = init_states(model, start) if states is None else states
    B, S = actions.shape[:2]
    h, w = model.frame_size
    f = model.frames_per_step
    sim_frames = np.empty((B, S, f, h, w, 3), dtype=np.uint8)
    model_frames = np.empty_like(sim_frames)
    effective = np.empty((B, S, 2), dtype=np.int64)
    seconds = np.empty(S)
    for t in tqdm(range(S), desc=desc, disable=not progress):
        for b, sim in enumerate(start.sims):
            pose = np.array(sim.pose, dtype=np.float64)
            out = sim.step(actions[b, t])
            sim_frames[b, t] = out.frames
            effective[b, t] = effective_actions(pose[None], np.asarray(out.poses)[-1:])[0]
        t0 = time.perf_counter()
        model_frames[:, t] = model.step(states, actions[:, t], generator).frames
        seconds[t] = time.perf_counter() - t0
    return Rollout(start.frames, start.actions, np.asarray(actions), effective, sim_frames, model_frames, seconds)
