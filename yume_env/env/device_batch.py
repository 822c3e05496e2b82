"""`DeviceWorldBatch`: a `WorldBatch` whose step keeps every frame on the model's device (the tensor path).

`step_tensors` returns observations uint8 (N, h, w, 3), rewards float32 (N,) and terminated bool
(N,) as tensors on the model's device, and infos whose frames and poses are device tensors: no
frame is copied to the host. Each world's newest frame lives in `pixels` (N, H, W, 3) on the device,
and its step count in `step_counts` (N,); `last_frames` (render, snapshots) copies the frames to the
host only when read. Resets, snapshots and events work as in `WorldBatch` (a reset encodes its
start view from the host, as there).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from yume_env.env.core import WorldBatch, resize_pixels
from yume_env.env.options import ResetOptions
from yume_env.env.poses import pose_matrices_tensor
from yume_env.env.rewards import RewardBatch, RewardFunction
from yume_env.host_to_device import to_device


class DeviceWorldBatch(WorldBatch):
    """N worlds of one model whose observations, rewards and terminations stay on the model's device."""

    def __init__(self, model: Any, num_worlds: int, reward: RewardFunction, obs_size: tuple[int, int] | None = None):
        super().__init__(model, num_worlds, reward, obs_size)
        self.device = torch.device(model.device)
        self.pixels = torch.zeros((self.num_worlds, *self.frame_size, 3), dtype=torch.uint8, device=self.device)
        self.step_counts = torch.zeros(self.num_worlds, dtype=torch.int64, device=self.device)
        self._host_stale = False  # `pixels` is newer than the host copies in `_last`

    @property
    def last_frames(self) -> list[np.ndarray | None]:
        """Each world's newest frame on the host, uint8 (H, W, 3): copied from `pixels` when a step made them new."""
        if self._host_stale:
            self._last[:] = list(np.array(self.pixels.cpu().numpy()))
            self._host_stale = False
        return self._last

    def _set_last(self, i: int, frame: np.ndarray) -> None:
        super()._set_last(i, frame)
        self.pixels[i] = to_device(self._last[i], self.device)

    def reset_world(self, i: int, np_random: np.random.Generator, options: ResetOptions) -> tuple[torch.Tensor, dict]:
        """As `WorldBatch.reset_world`; the observation is a device tensor, the info stays on the host."""
        obs, info = super().reset_world(i, np_random, options)
        self.step_counts[i] = int(self.state.step_count[i] if self.state is not None else self._fresh[i].step_count[0])
        return obs, info

    def observation(self, i: int) -> torch.Tensor:
        return self.observations([i])[0]

    def observations(self, worlds: list[int] | None = None) -> torch.Tensor:
        """uint8 (n, h, w, 3) on the device: the newest frames of `worlds` (all when None), resized to `obs_size`."""
        return resize_pixels(self.pixels if worlds is None else self.pixels[worlds], self.obs_size)

    def step(self, actions: np.ndarray):
        raise TypeError("a DeviceWorldBatch steps with step_tensors (tensors out); WorldBatch.step gives numpy")

    def step_tensors(self, actions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """One model forward for all worlds; `actions` int (N, A), already validated.

        Returns observations uint8 (N, h, w, 3), rewards float32 (N,), terminated bool (N,) on the
        device, and the infos in Gymnasium's vector layout: "frames" uint8 (N, F, H, W, 3) and "pose"
        float64 (N, 4, 4) and "step" int64 (N,) on the device, "event" and "latency_s" numpy, every
        mask a numpy bool (N,). The reward runs through `RewardFunction.batch`.
        """
        start = time.perf_counter()
        out = self.forward(actions)
        self.step_counts += 1
        self.pixels = out.pixels[:, -1].clone()
        self._host_stale = True
        pose_state = (self.state.pose, self.state.origin)
        batch = RewardBatch(
            frames=out.pixels,
            latents=out.latents,
            actions=to_device(actions, self.device, torch.long),
            poses=pose_matrices_tensor(*pose_state),
            steps=self.step_counts.clone(),
            events=list(self.state.events),
            model=self.model,
            pose_state=pose_state,
        )
        rewards, terminated = self.reward.batch(batch)
        rewards = rewards.to(self.device, torch.float32).reshape(self.num_worlds)
        terminated = terminated.to(self.device, torch.bool).reshape(self.num_worlds)
        obs = self.observations()
        values = {
            "frames": out.pixels,
            "event": np.array(batch.events, dtype=object),
            "pose": batch.poses,
            "step": self.step_counts.clone(),
            "latency_s": np.full(self.num_worlds, time.perf_counter() - start),
        }
        infos: dict = {}
        for key, value in values.items():
            infos[key], infos[f"_{key}"] = value, np.ones(self.num_worlds, bool)
        return obs, rewards, terminated, infos


def device_infos(infos: dict, device: torch.device) -> dict:
    """Reset infos (merged numpy, `merge_infos`) in the tensor path's layout: "frames", "pose" and
    "step" as device tensors, "memory" left out (it is not kept on this path)."""
    out = {k: v for k, v in infos.items() if k not in ("memory", "_memory")}
    for key in ("frames", "pose", "step"):
        if key in out:
            out[key] = torch.as_tensor(out[key]).to(device)
    return out


def finished_infos(infos: dict, done: np.ndarray) -> dict:
    """A step's tensor-path infos for `info["final_info"]`: copies (the resets of the finished
    worlds then write into `infos`), every mask `done`; the frames are shared, resets leave them."""
    out: dict = {}
    for key, value in infos.items():
        if key.startswith("_"):
            out[key] = done.copy()
        elif key == "frames":
            out[key] = value
        else:
            out[key] = value.clone() if isinstance(value, torch.Tensor) else value.copy()
    return out


def put_reset_info(infos: dict, i: int, info: dict) -> None:
    """Writes world `i`'s reset info (`WorldBatch.reset_world`) into a step's tensor-path infos: its
    new episode's event, pose, step and latency; its "_frames" mask goes False (the new episode's
    start frame is the observation, the finished chunk is in `final_info`)."""
    infos["event"][i] = info["event"]
    infos["pose"][i] = to_device(info["pose"], infos["pose"].device, infos["pose"].dtype)
    infos["step"][i] = int(info["step"])
    infos["latency_s"][i] = float(info["latency_s"])
    infos["_frames"][i] = False
