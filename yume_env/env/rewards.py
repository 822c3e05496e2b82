"""Pluggable reward and termination for the learned world.

`reward_fn=` of the envs takes:
- `"beacon"`: the default world's learned task head (`WorldModel.predict_task`): reward = decrease of
  the predicted distance to the beacon since the previous step, plus `bonus` and termination when
  the head's `reached_logit > 0` *and* its predicted distance is under `arrive_distance` (3 m).
  Two bounds from the dead-reckoned pose keep an agent from farming a drifting picture: the
  distance cannot change by more than the camera moved in the step, and nobody arrives before
  walking the first predicted distance minus the arrival radius (`distance_slack` for the head's error);
- `"learned"`: a world trained on a recorded env (`yume-env train world --data`): its task head's
  predicted reward of the step, and termination when its episode-end logit is above 0;
- `"none"`: reward 0.0, never terminates;
- `None` (default): the world's own task head (`"beacon"` or `"learned"`, by the head's kind), else `"none"`;
- a callable `fn(ctx: RewardContext) -> float | (float, bool)`, called once per world and step;
- a `RewardFunction` instance (batched, with per-world memory), for custom stateful rewards.

The numpy path calls `fn(contexts, indices)` with one `RewardContext` of host arrays per world; the
tensor path (`YumeWorldVectorEnv(tensors=True)`) calls `fn.batch(RewardBatch)` with every world's
tensors on the model's device and takes float32 rewards and bool terminations (N,) back. The three
built-ins compute `batch` on the device with no host read; any other `RewardFunction` gets per-world
contexts with host copies of the frames. Both paths give the same rewards (the beacon's float64
memory to rounding: its tensor path uses torch's trigonometry; see docs/env.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from yume_env.env.poses import pose_matrices


@dataclass
class RewardContext:
    """What a reward function sees for one world after one step."""

    frames: np.ndarray  # uint8 (F, H, W, 3), the step's frames
    latents: torch.Tensor | None  # (C, F, h, w), the step's latents (before decoding)
    action: np.ndarray  # int (A,): one integer per component of the world's actions ((key, camera) for Yume's)
    pose: np.ndarray  # (4, 4) dead-reckoned camera-to-world
    step: int  # steps since reset, this one included
    event: str
    model: Any  # the WorldModel


@dataclass
class RewardBatch:
    """What a reward function sees for all N worlds after one step, as tensors on the model's device
    (the tensor path). World i is row i and memory slot i."""

    frames: torch.Tensor  # uint8 (N, F, H, W, 3), the step's frames
    latents: torch.Tensor | None  # (N, C, F, h, w), the step's latents (before decoding)
    actions: torch.Tensor  # int64 (N, A): one integer per component of each world's action
    poses: torch.Tensor  # float64 (N, 4, 4) dead-reckoned camera-to-world (`poses.pose_matrices_tensor`)
    steps: torch.Tensor  # int64 (N,): steps since reset, this one included
    events: list[str]
    model: Any  # the WorldModel
    # (pose (N, 4), origin (N, 4)) that `poses` were made from: `host_poses` then computes the
    # numpy path's matrices bit for bit (torch's trigonometry differs from numpy's in the last bit)
    pose_state: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def num_worlds(self) -> int:
        return int(self.frames.shape[0])

    def host_poses(self) -> np.ndarray:
        """float64 (N, 4, 4) on the host: from `pose_state` exactly as the numpy path computes them
        when given, else a copy of `poses`."""
        if self.pose_state is not None:
            return pose_matrices(*self.pose_state)
        return self.poses.detach().to("cpu", torch.float64).numpy()

    def contexts(self) -> list[RewardContext]:
        """One `RewardContext` per world, holding what the numpy path gives it (host copies of the
        frames, actions and poses; the latents stay where they are)."""
        n = self.num_worlds
        frames = self.frames.cpu().numpy()
        latents = [None] * n if self.latents is None else self.latents.unbind(0)
        actions = np.array(self.actions.cpu().numpy(), dtype=np.int64)
        poses, steps = self.host_poses(), self.steps.tolist()
        return [
            RewardContext(frames[i], latents[i], actions[i], poses[i], int(steps[i]), self.events[i], self.model)
            for i in range(n)
        ]


class RewardFunction:
    """A batched reward with optional per-world memory (slot index = world index in the batch)."""

    name = "custom"

    def reset(self, index: int) -> None:
        """Forget world `index`'s memory (called on reset)."""

    def __call__(self, contexts: list[RewardContext], indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Returns rewards float64 (B,) and terminated bool (B,) for the worlds `indices`."""
        raise TypeError(f"{type(self).__name__} must implement __call__(contexts, indices)")

    def batch(self, batch: RewardBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Rewards float32 (N,) and terminated bool (N,) of every world, on the batch's device.

        By default this calls `self(batch.contexts(), [0, ..., N-1])` (host copies of the frames);
        override it with a rule on tensors to keep the step on the device."""
        rewards, terminated = self(batch.contexts(), list(range(batch.num_worlds)))
        return to_tensors(rewards, terminated, batch.frames.device)

    def get_state(self, index: int) -> dict:
        """World `index`'s memory as plain values (saved in snapshots)."""
        return {}

    def set_state(self, index: int, state: dict) -> None:
        """Restores what `get_state` returned."""


class NoReward(RewardFunction):
    name = "none"

    def __call__(self, contexts, indices):
        return np.zeros(len(contexts)), np.zeros(len(contexts), dtype=bool)

    def batch(self, batch):
        n, device = batch.num_worlds, batch.frames.device
        return torch.zeros(n, dtype=torch.float32, device=device), torch.zeros(n, dtype=torch.bool, device=device)


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
    bounded by how far the camera actually moved (see the module docstring).

    The per-world memory is a dict of torch tensors, one row per world (slot), kept where the latest
    step ran: on the batch's device for the tensor path (`batch` reads nothing on the host and runs
    the same ops for any number of worlds), on the host for the numpy path (`__call__`, which runs
    the rule in numpy on views of the tensors)."""

    name = "beacon"

    def __init__(self, bonus: float = 10.0, arrive_distance: float = 3.0, distance_slack: float = 2.0):
        self.bonus = float(bonus)
        # both heads must agree: the arrival logit alone also fires far from the beacon on blurry
        # generated frames, which made every dream episode "succeed" within a few steps
        self.arrive_distance = float(arrive_distance)
        self.distance_slack = float(distance_slack)  # about 1.5x the head's distance error on the simulator
        self._memory = {
            "started": torch.zeros(0, dtype=torch.bool),  # a step since reset: the other rows hold values
            "first": torch.zeros(0, dtype=torch.float64),  # predicted distance at the first step
            "walked": torch.zeros(0, dtype=torch.float64),  # metres the camera moved since then
            "last": torch.zeros(0, dtype=torch.float64),  # predicted distance at the previous step
            "position": torch.zeros(0, 3, dtype=torch.float64),  # camera position at the previous step
        }

    def _place(self, device: torch.device, dtype: torch.dtype, size: int) -> None:
        """Moves the memory to `device` (its floats to `dtype`) and grows it to at least `size` rows."""
        for name, a in self._memory.items():
            a = a.to(device, dtype if a.is_floating_point() else a.dtype)
            if len(a) < size:
                a = torch.cat([a, a.new_zeros(size - len(a), *a.shape[1:])])
            self._memory[name] = a

    def reset(self, index):
        floats = self._memory["first"]
        self._place(floats.device, floats.dtype, index + 1)
        self._memory["started"][index] = False

    def __call__(self, contexts, indices):
        pred = self._predict(contexts[0].model, torch.stack([c.latents for c in contexts]))
        distance = pred["distance"].detach().float().cpu().numpy().reshape(-1).astype(np.float64)
        reached = pred["reached_logit"].detach().float().cpu().numpy().reshape(-1) > 0
        position = np.stack([np.asarray(c.pose, dtype=np.float64)[:3, 3] for c in contexts])
        self._place(torch.device("cpu"), torch.float64, max(indices) + 1)
        memory = {name: a.numpy() for name, a in self._memory.items()}  # views: the rule writes the tensors
        return self._advance(memory, distance, reached, position, np.asarray(indices, dtype=np.int64))

    def batch(self, batch):
        """The same rule in torch on the batch's device, with the positions of `batch.poses`."""
        n, position = batch.num_worlds, batch.poses[:, :3, 3]
        self._place(position.device, position.dtype, n)
        pred = self._predict(batch.model, batch.latents)
        distance = pred["distance"].detach().float().reshape(-1).to(position.device, position.dtype)
        reached = pred["reached_logit"].detach().float().reshape(-1).to(position.device) > 0
        rewards, reached = self._advance(self._memory, distance, reached, position, slice(0, n))
        return rewards.float(), reached

    @staticmethod
    def _predict(model: Any, latents: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            pred = model.predict_task(latents)
        if pred is None:
            raise ValueError("reward_fn='beacon' needs a model with a task head (task_head.safetensors); use 'none'")
        return pred

    def _advance(self, memory: dict, distance, reached, position, rows):
        """Rewards and arrivals (B,) of the memory's `rows` from the head's distances and arrival
        signs (B,) and the cameras' positions (B, 3); advances their memory. Numpy arrays or torch
        tensors throughout (`memory` of the same kind, written in place)."""
        xp = np if isinstance(distance, np.ndarray) else torch
        reached = reached & (distance < self.arrive_distance)
        started = memory["started"][rows]  # else the first step after reset: nothing to compare with yet
        step = position - memory["position"][rows]
        if xp is np:
            norm = np.linalg.norm(step, axis=1)
        else:  # the sums in np.linalg.norm's order
            sq = step * step
            norm = (sq[:, 0] + sq[:, 1] + sq[:, 2]).sqrt()
        moved = xp.where(started, norm, 0.0)
        walked = xp.where(started, memory["walked"][rows] + moved, 0.0)
        first = xp.where(started, memory["first"][rows], distance)
        rewards = xp.where(started, xp.clip(memory["last"][rows] - distance, -moved, moved), 0.0)
        reached = reached & (walked + self.arrive_distance + self.distance_slack >= first)
        rewards = rewards + self.bonus * xp.asarray(reached, dtype=rewards.dtype)
        memory["started"][rows], memory["first"][rows], memory["walked"][rows] = True, first, walked
        memory["last"][rows], memory["position"][rows] = distance, position
        return rewards, reached

    def get_state(self, index):
        mem = self._memory
        if index >= len(mem["started"]) or not bool(mem["started"][index]):
            return {}
        return {
            "first_distance": float(mem["first"][index]),
            "walked": float(mem["walked"][index]),
            "last_distance": float(mem["last"][index]),
            "position": mem["position"][index].tolist(),
        }

    def set_state(self, index, state):
        self.reset(index)
        if state:
            mem = self._memory
            mem["first"][index], mem["walked"][index] = state["first_distance"], state["walked"]
            mem["last"][index] = state["last_distance"]
            mem["position"][index] = torch.as_tensor(state["position"], dtype=mem["position"].dtype)
            mem["started"][index] = True


class LearnedReward(RewardFunction):
    """The task head of a world trained on a recorded env: its reward and episode end, per step."""

    name = "learned"

    def __call__(self, contexts, indices):
        pred = contexts[0].model.predict_task(torch.stack([c.latents for c in contexts]))
        reward = pred["reward"].detach().float().cpu().numpy().reshape(-1).astype(np.float64)
        done = pred["terminated_logit"].detach().float().cpu().numpy().reshape(-1) > 0
        return reward, done

    def batch(self, batch):
        pred = batch.model.predict_task(batch.latents)
        return pred["reward"].detach().float().reshape(-1), pred["terminated_logit"].detach().float().reshape(-1) > 0


def to_tensors(rewards: Any, terminated: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Host rewards and terminations (N,) -> float32 and bool tensors on `device`."""
    r = torch.from_numpy(np.asarray(rewards, dtype=np.float32).reshape(-1))
    t = torch.from_numpy(np.asarray(terminated, dtype=bool).reshape(-1))
    return r.to(device), t.to(device)


def has_task_head(model: Any, kind: str | None = None) -> bool:
    head = getattr(model, "task_head", None)
    return head is not None and (kind is None or getattr(head, "kind", "beacon") == kind)


def make_reward(reward_fn: Any, model: Any) -> RewardFunction:
    """Turns the `reward_fn` argument into a `RewardFunction` (see the module docstring)."""
    if reward_fn is None:
        if has_task_head(model, "reward"):
            return LearnedReward()
        return BeaconReward() if has_task_head(model, "beacon") else NoReward()
    if isinstance(reward_fn, RewardFunction):
        return reward_fn
    if isinstance(reward_fn, str):
        if reward_fn == "none":
            return NoReward()
        if reward_fn in ("beacon", "learned"):
            kind = "beacon" if reward_fn == "beacon" else "reward"
            if not has_task_head(model, kind):
                raise ValueError(
                    f"reward_fn={reward_fn!r} needs a world whose task head (task_head.safetensors) predicts "
                    f"{'the beacon task' if kind == 'beacon' else 'a recorded reward'}; this one has "
                    f"{'none' if not has_task_head(model) else 'another kind'}: use reward_fn=None, 'none' or a callable"
                )
            return BeaconReward() if kind == "beacon" else LearnedReward()
        raise ValueError(f"unknown reward_fn {reward_fn!r}; expected 'beacon', 'learned', 'none', a callable or None")
    if callable(reward_fn):
        return CallableReward(reward_fn)
    raise TypeError(
        f"reward_fn must be 'beacon', 'learned', 'none', a callable or None, got {type(reward_fn).__name__}"
    )
