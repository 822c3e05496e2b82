"""`WorldBatch`: N learned worlds stepped by one model forward; shared by the single and vector envs.

The single env is a batch of one, so a vector env and N single envs with the same seeds run the same
code and give the same frames. It keeps the model's `WorldState` of all worlds (history, pose, step
count, event: resets write rows), every world's sampler noise stream (`WorldNoise`: a key seeded
from the env's `np_random` and a counter, on the model's device), and each world's newest frame. It
never imports Gymnasium.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from yume_env.env.options import ResetOptions
from yume_env.env.poses import pose_matrices
from yume_env.env.rewards import RewardContext, RewardFunction
from yume_env.env.snapshot import WorldSnapshot
from yume_env.model.noise import WorldNoise


class Latency(float):
    """Seconds a step took: a plain float for arithmetic and printing, but any two compare equal.

    A wall-clock time is a measurement, not part of the world's state: Gymnasium's `check_env`
    compares the infos of two seeded runs, and the step is deterministic even though its timing is
    not. Use `float(info["latency_s"])` to compare timings by value.
    """

    def __eq__(self, other):
        return isinstance(other, Latency) or float(self) == other

    def __ne__(self, other):
        return not self == other

    __hash__ = float.__hash__

    def __reduce__(self):
        return float, (float(self),)


def start_frames_of(model: Any) -> tuple[np.ndarray, list[str]] | None:
    """The model's start views as (frames uint8 (K,H,W,3), events (K,)), or None if it has none."""
    start = getattr(model, "start_frames", None)
    if callable(start):
        start = start()
    if start is None:
        return None
    if isinstance(start, np.ndarray):
        frames, events = start, None
    elif isinstance(start, dict) or hasattr(start, "files"):  # dict or an open npz
        frames, events = start["frames"], (start["events"] if "events" in start else None)
    else:
        frames, events = start.frames, getattr(start, "events", None)
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or len(frames) == 0:
        return None
    events = [""] * len(frames) if events is None else [str(e) for e in np.asarray(events).reshape(-1)]
    return frames, events


def resize_frame(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (*size, 3), antialiased; a fresh copy when no resize is needed."""
    if size is None or tuple(frame.shape[:2]) == tuple(size):
        return np.array(frame, dtype=np.uint8, copy=True)
    x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float()
    y = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    return y[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def resize_pixels(pixels: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> uint8 (N, *size, 3) on the same device: `resize_frame` for a batch
    (the same antialiased bilinear resize, bit for bit on a CPU); a fresh copy when no resize is needed."""
    if size is None or tuple(pixels.shape[1:3]) == tuple(size):
        return pixels.clone()
    x = pixels.contiguous().permute(0, 3, 1, 2).float()
    y = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    return y.permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).contiguous()


class WorldBatch:
    """The state and stepping of `num_worlds` worlds of one model: one batched `WorldState`."""

    def __init__(self, model: Any, num_worlds: int, reward: RewardFunction, obs_size: tuple[int, int] | None = None):
        self.model = model
        self.num_worlds = int(num_worlds)
        self.reward = reward
        self.frame_size: tuple[int, int] = tuple(int(s) for s in model.frame_size)
        self.frames_per_step = int(model.frames_per_step)
        self.obs_size = tuple(obs_size) if obs_size is not None else None
        self.state: Any = None  # the WorldState of all worlds, once each has been reset
        self._fresh: dict[int, Any] = {}  # worlds reset before all of them were
        # every world's noise stream, drawn for all worlds at once on the model's device
        self.noise = WorldNoise([0] * self.num_worlds, device=getattr(model, "device", "cpu"))
        self._last: list[np.ndarray | None] = [None] * self.num_worlds
        self._start = start_frames_of(model)
        self._start_states: dict[int, Any] = {}  # start view k's state, encoded at its first reset

    @property
    def last_frames(self) -> list[np.ndarray | None]:
        """Each world's newest frame, uint8 (H, W, 3) (None before its first reset)."""
        return self._last

    def _set_last(self, i: int, frame: np.ndarray) -> None:
        self._last[i] = np.array(frame, dtype=np.uint8, copy=True)

    def _put(self, i: int, world: Any) -> None:
        """Makes `world` (a state of one world) world i."""
        if self.state is not None:
            self.state.set_rows([i], world)
            return
        self._fresh[i] = world
        if len(self._fresh) == self.num_worlds:
            self.state = self.model.join_states([self._fresh[j] for j in range(self.num_worlds)])
            self._fresh = {}

    def world(self, i: int) -> Any:
        """World i's state (a batch of one; a copy once the worlds are joined)."""
        if self.state is not None:
            return self.state.rows([i])
        if i not in self._fresh:
            raise RuntimeError("this world has not been reset: call reset() first")
        return self._fresh[i]

    # ---- reset -------------------------------------------------------------------------------
    def reset_world(self, i: int, np_random: np.random.Generator, options: ResetOptions) -> tuple[np.ndarray, dict]:
        """Starts world `i` from the options (or a start view drawn with `np_random`)."""
        if options.state is not None:
            self._restore(i, options.state, np_random)
            if options.event is not None:
                self.set_event(i, options.event)
            return self.observation(i), self.info(i, self._last[i][None], latency_s=0.0)
        # the noise key comes first, so every start kind draws the same noise for a seed
        self.noise.seed(i, int(np_random.integers(0, 2**63 - 1)))
        event = options.event
        if options.frames is not None:
            frames, actions = options.frames, options.actions
        elif options.image is not None:
            frames, actions = options.image[None], None
        else:
            if self._start is None:
                raise ValueError(
                    "this world has no start frames (start_frames.npz in the model folder): "
                    "reset with options={'image': uint8 (H, W, 3)} or {'frames': ..., 'actions': ...}"
                )
            k = int(np_random.integers(len(self._start[0])))
            frames, actions = self._start[0][k : k + 1], None
            if event is None:  # the start view as shipped: its state is encoded once, then copied
                start = time.perf_counter()
                if k not in self._start_states:
                    self._start_states[k] = self.model.init_state(frames, event=self._start[1][k] or "")
                return self._started(i, self._start_states[k].clone(), frames[-1], start)
        start = time.perf_counter()
        return self._started(i, self.model.init_state(frames, actions, event=event or ""), frames[-1], start)

    def _started(self, i: int, world: Any, frame: np.ndarray, start: float) -> tuple[np.ndarray, dict]:
        """Makes the freshly started `world` world i; its observation and reset info."""
        self._put(i, world)
        self._set_last(i, frame)
        self.reward.reset(i)
        return self.observation(i), self.info(i, self._last[i][None], latency_s=time.perf_counter() - start)

    def _restore(self, i: int, snap: WorldSnapshot, np_random: np.random.Generator) -> None:
        """Resumes world i from a snapshot, all or nothing: the snapshot is checked (`check_snapshot`:
        frame size, newest frame, noise, RNG and reward states) and the world built and checked by the
        model (`load_state`) before anything changes; the reward state, the one step that may still
        refuse it, is put back if it does; then the rest is swapped in."""
        from yume_env.env.snapshot import check_snapshot

        check_snapshot(snap, self.frame_size, type(np_random.bit_generator))
        snap = snap.copy()
        world = self.model.load_state(snap.world, where="reset option 'state': world")
        before = self.reward.get_state(i)
        try:
            self.reward.reset(i)
            self.reward.set_state(i, dict(snap.reward_state))
        except Exception as exc:
            self.reward.reset(i)
            self.reward.set_state(i, before)
            raise ValueError(
                f"reset option 'state': field 'reward_state' does not fit this env's reward function "
                f"({type(exc).__name__}: {exc}); save the snapshot from an env with the same reward_fn"
            ) from exc
        self._put(i, world)
        self.noise.load_state(i, dict(snap.generator_state))
        np_random.bit_generator.state = snap.np_random_state
        self._set_last(i, snap.last_frame)

    def snapshot(self, i: int, np_random: np.random.Generator) -> WorldSnapshot:
        if self.state is None and i not in self._fresh:
            raise RuntimeError("get_state() needs a world: call reset() first")
        world = self.world(i)
        return WorldSnapshot(
            world=world.clone().to_dict()[0],
            generator_state=self.noise.state(i),
            np_random_state=dict(np_random.bit_generator.state),
            reward_state=dict(self.reward.get_state(i)),
            last_frame=self.last_frames[i].copy(),
            frame_size=self.frame_size,
        )

    # ---- events ------------------------------------------------------------------------------
    def set_event(self, i: int, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f'event must be a str ("" for none), got {type(text).__name__}')
        if self.state is None and i not in self._fresh:
            raise RuntimeError("set_event() needs a world: call reset() first (or pass options={'event': ...})")
        if self.state is not None:
            self.model.set_event(self.state, text, world=i)
        else:
            self.model.set_event(self._fresh[i], text)

    @property
    def steps(self) -> list[int]:
        """Chunks each world generated since its reset."""
        return (
            list(self.state.step_count)
            if self.state is not None
            else [self._fresh[i].step_count[0] if i in self._fresh else 0 for i in range(self.num_worlds)]
        )

    @property
    def events(self) -> list[str]:
        return (
            list(self.state.events)
            if self.state is not None
            else [self._fresh[i].events[0] if i in self._fresh else "" for i in range(self.num_worlds)]
        )

    # ---- step --------------------------------------------------------------------------------
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """One model forward for all worlds; `actions` int (N, 2), already validated.

        Returns observations (N, h, w, 3), rewards float64 (N,), terminated bool (N,), and the infos
        of all worlds in Gymnasium's vector layout (`batch_info`; `world_info(infos, i)` is world i's).
        """
        start = time.perf_counter()
        out = self.forward(actions)
        frames = np.asarray(out.frames)
        poses = pose_matrices(self.state.pose, self.state.origin)  # (N, 4, 4)
        # whole-batch copies and views, not one copy or tensor index per world: each world's
        # newest frame, action and pose is its own row of a private array
        steps, events = list(self.state.step_count), list(self.state.events)
        last = frames[:, -1].copy()
        self._last[:] = list(last)
        own_actions, own_poses = np.array(actions, dtype=np.int64), poses.copy()
        latents = [None] * self.num_worlds if out.latents is None else out.latents.unbind(0)
        contexts = [
            RewardContext(
                frames=frames[i],
                latents=latents[i],
                action=own_actions[i],
                pose=own_poses[i],
                step=steps[i],
                event=events[i],
                model=self.model,
            )
            for i in range(self.num_worlds)
        ]
        rewards, terminated = self.reward(contexts, list(range(self.num_worlds)))
        latency = time.perf_counter() - start
        obs = last.copy() if self.obs_size is None else np.stack([self.observation(i) for i in range(self.num_worlds)])
        infos = self.batch_info(frames, latency, poses)
        return obs, np.asarray(rewards, dtype=np.float64), np.asarray(terminated, dtype=bool), infos

    def forward(self, actions: np.ndarray) -> Any:
        """The model's step of every world (its `StepOutput`), each world drawing its own noise stream."""
        if self.state is None:
            raise RuntimeError("step() before reset(): call reset() first")
        with torch.no_grad():
            return self.model.step(self.state, torch.as_tensor(actions, dtype=torch.long), self.noise)

    # ---- views -------------------------------------------------------------------------------
    def observation(self, i: int) -> np.ndarray:
        return resize_frame(self.last_frames[i], self.obs_size)

    def batch_info(self, frames: np.ndarray, latency_s: float, poses: np.ndarray) -> dict:
        """Every world's `info` of one step at once, in Gymnasium's vector layout (`info[key]` over
        worlds, `info["_key"]` the mask): equal to merging the per-world dicts, without building
        them (at 1,024 worlds the dicts and their merge were a visible share of a GPU step)."""
        n = self.num_worlds
        stats = self.state.memory_stats()
        memory: dict = {}
        for key in stats[0]:
            memory[key], memory[f"_{key}"] = np.array([st[key] for st in stats], dtype=np.int64), np.ones(n, bool)
        values = {
            "frames": np.array(frames, dtype=np.uint8, copy=True),
            "event": np.array(self.state.events, dtype=object),
            "pose": np.array(poses, dtype=np.float64, copy=True),
            "step": np.array(self.state.step_count, dtype=np.int64),
            "latency_s": np.full(n, float(latency_s)),
            "memory": memory,
        }
        out: dict = {}
        for key, value in values.items():
            out[key], out[f"_{key}"] = value, np.ones(n, bool)
        return out

    def info(self, i: int, frames: np.ndarray, latency_s: float, pose: np.ndarray | None = None) -> dict:
        """World `i`'s info dict (at reset; a step builds all worlds' at once with `batch_info`),
        read from the batched state in place (no copy of the world)."""
        if self.state is not None:
            state, row = self.state, i
        elif i in self._fresh:
            state, row = self._fresh[i], 0
        else:
            raise RuntimeError("this world has not been reset: call reset() first")
        return {
            "frames": np.array(frames, dtype=np.uint8, copy=True),
            "event": state.events[row],
            "pose": pose_matrices(state.pose[row : row + 1], state.origin[row : row + 1])[0]
            if pose is None
            else pose.copy(),
            "step": int(state.step_count[row]),
            "latency_s": Latency(latency_s),
            "memory": {k: int(v) for k, v in state.memory_stats([row])[0].items()},
        }


def world_info(infos: dict, i: int) -> dict:
    """World `i`'s info dict from a vector-layout `infos` in which every world has every key (what
    `WorldBatch.batch_info` builds): the per-world `info` of the single env."""
    out: dict = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        if isinstance(value, dict):
            out[key] = world_info(value, i)
        elif key == "latency_s":
            out[key] = Latency(value[i])
        elif value.dtype == object or value.ndim > 1:
            out[key] = value[i].copy() if isinstance(value[i], np.ndarray) else value[i]
        else:
            out[key] = value[i].item()
    return out


def put_world_info(infos: dict, i: int, info: dict) -> None:
    """Writes world `i`'s `info` into a vector-layout `infos` in place, as `merge_infos` would have
    merged it: an array whose shape differs from the others (a reset's single frame beside the
    step's chunks) turns that key into an object array."""
    for key, value in info.items():
        if isinstance(value, dict):
            put_world_info(infos[key], i, value)
            continue
        column = infos[key]
        if (
            isinstance(value, np.ndarray)
            and column.dtype != object
            and (value.shape != column.shape[1:] or value.dtype != column.dtype)
        ):
            rows = np.empty(len(column), dtype=object)
            for j, row in enumerate(column):
                rows[j] = row
            infos[key] = column = rows
        column[i] = value
