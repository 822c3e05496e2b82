"""Pluggable reward and termination for the learned world.

`reward_fn=` of the envs takes:
- `"beacon"`: the default world's learned task head (`WorldModel.predict_task`): reward = decrease of
  the predicted distance to the beacon since the previous step, plus `bonus` and termination when
  the head's `reached_logit > 0` *and* its predicted distance is under `arrive_distance` (3 m; the
  simulator's reach radius is 1.5 m): on generated frames the arrival logit alone fires at 6-9 m.
  Two physical bounds, from the dead-reckoned pose, keep an agent from farming a drifting picture:
  the distance cannot change by more than the camera moved in the step (the progress term is
  clipped to +-that), and nobody arrives before walking the first predicted distance minus the
  arrival radius (with `distance_slack` for the head's error). Without them, PPO learned to turn
  in place until the generated frames drifted into something the head read as "arrived";
- `"none"`: reward 0.0, never terminates;
- `None` (default): `"beacon"` when the model has a task head, else `"none"`;
- a callable `fn(ctx: RewardContext) -> float | (float, bool)`, called once per world and step;
- a `RewardFunction` instance (batched, with per-world memory), for custom stateful rewards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch


@dataclass
class RewardContext:
    """What a reward function sees for one world after one step."""

    frames: np.ndarray  # uint8 (F, H, W, 3), the step's frames
    latents: torch.Tensor | None  # (C, F, h, w), the step's latents (before decoding)
    action: np.ndarray  # int (2,), (key, camera)
    pose: np.ndarray  # (4, 4) dead-reckoned camera-to-world
    step: int  # steps since reset, this one included
    event: str
    model: Any  # the WorldModel


class RewardFunction:
    """A batched reward with optional per-world memory (slot index = world index in the batch)."""

    name = "custom"

    def reset(self, index: int) -> None:
        """Forget world `index`'s memory (called on reset)."""

    def __call__(self, contexts: list[RewardContext], indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Returns rewards float64 (B,) and terminated bool (B,) for the worlds `indices`."""
        raise TypeError(f"{type(self).__name__} must implement __call__(contexts, indices)")

    def get_state(self, index: int) -> dict:
        """World `index`'s memory as plain values (saved in snapshots)."""
        return {}

    def set_state(self, index: int, state: dict) -> None:
        """Restores what `get_state` returned."""


class NoReward(RewardFunction):
    name = "none"

    def __call__(self, contexts, indices):
        return np.zeros(len(contexts)), np.zeros(len(contexts), dtype=bool)


class CallableReward(RewardFunction):
    """Wraps a user callable `fn(ctx) -> float | (float, bool)`."""

    def __init__(self, fn: Callable[[RewardContext], Any]):
        self.fn = fn
        self.name = getattr(fn, "__name__", "callable")

    def __call__(self, contexts, indices):
        rewards, terminated = np.zeros(len(contexts)), np.zeros(len(contexts), dtype=bool)
        for i, ctx in enumerate(contexts):
            out = self.fn(ctx)
            if isinstance(out, tuple):
                if len(out) != 2:
                    raise ValueError(f"reward_fn {self.name} must return a float or (float, bool), got {out!r}")
                out, terminated[i] = out[0], bool(out[1])
            rewards[i] = float(out)
        return rewards, terminated


class BeaconReward(RewardFunction):
    """The beacon task from the task head: progress towards the beacon, a bonus on arrival, both
    bounded by how far the camera actually moved (see the module docstring)."""

    name = "beacon"

    def __init__(self, bonus: float = 10.0, arrive_distance: float = 3.0, distance_slack: float = 2.0):
        self.bonus = float(bonus)
        # both heads must agree: the arrival logit alone also fires far from the beacon on blurry
        # generated frames, which made every dream episode "succeed" within a few steps
        self.arrive_distance = float(arrive_distance)
        self.distance_slack = float(distance_slack)  # about 1.5x the head's distance error on the simulator
        self._memory: dict[int, dict] = {}

    def reset(self, index):
        self._memory[index] = {}

    def __call__(self, contexts, indices):
        latents = torch.stack([c.latents for c in contexts])
        model = contexts[0].model
        with torch.no_grad():
            pred = model.predict_task(latents)
        if pred is None:
            raise ValueError("reward_fn='beacon' needs a model with a task head (task_head.safetensors); use 'none'")
        distance = pred["distance"].detach().float().cpu().numpy().reshape(-1)
        reached = (pred["reached_logit"].detach().float().cpu().numpy().reshape(-1) > 0) & (distance < self.arrive_distance)
        rewards = np.zeros(len(contexts))
        for b, index in enumerate(indices):
            mem = self._memory.setdefault(index, {})
            position = np.asarray(contexts[b].pose, dtype=np.float64)[:3, 3]
            d = float(distance[b])
            if not mem:  # the first step after reset: nothing to compare with yet
                mem.update(first_distance=d, walked=0.0)
            else:
                moved = float(np.linalg.norm(position - np.asarray(mem["position"])))
                mem["walked"] += moved
                rewards[b] = float(np.clip(mem["last_distance"] - d, -moved, moved))
            walked_enough = mem["walked"] + self.arrive_distance + self.distance_slack >= mem["first_distance"]
            reached[b] = bool(reached[b]) and walked_enough
            rewards[b] += self.bonus * bool(reached[b])
            mem.update(last_distance=d, position=position.tolist())
        return rewards, reached.astype(bool)

    def get_state(self, index):
        return dict(self._memory.get(index, {}))

    def set_state(self, index, state):
        self._memory[index] = dict(state)


def has_task_head(model: Any) -> bool:
    return getattr(model, "task_head", None) is not None


def make_reward(reward_fn: Any, model: Any) -> RewardFunction:
    """Turns the `reward_fn` argument into a `RewardFunction` (see the module docstring)."""
    if reward_fn is None:
        return BeaconReward() if has_task_head(model) else NoReward()
    if isinstance(reward_fn, RewardFunction):
        return reward_fn
    if isinstance(reward_fn, str):
        if reward_fn == "none":
            return NoReward()
        if reward_fn == "beacon":
            if not has_task_head(model):
                raise ValueError(
                    "reward_fn='beacon' needs a world with a task head (task_head.safetensors in the model folder); "
                    "this one has none: use reward_fn='none' or a callable"
                )
            return BeaconReward()
        raise ValueError(f"unknown reward_fn {reward_fn!r}; expected 'beacon', 'none', a callable or None")
    if callable(reward_fn):
        return CallableReward(reward_fn)
    raise TypeError(f"reward_fn must be 'beacon', 'none', a callable or None, got {type(reward_fn).__name__}")
