"""`YumeWorldVectorEnv`: N learned worlds stepped by one batched model forward (Gymnasium 1.x VectorEnv).

Autoreset mode: `AutoresetMode.SAME_STEP`. When a world terminates or truncates, it is reset in the
same `step()` call: the returned observation is the new episode's first one, and
`info["final_obs"]` / `info["final_info"]` (masked by `info["_final_obs"]` / `info["_final_info"]`)
hold the last observation and info of the finished episode. (SB3's VecEnv works the same way, so
`Sb3VecEnvAdapter` passes it through.)

World `i` behaves exactly like a `YumeWorldEnv` reset with seed `seed + i` (or `seed[i]`) and given
the same actions: same start view, same noise, same frames.

`tensors=True` keeps observations, rewards and terminations on the model's device as torch tensors
(`DeviceWorldBatch`), for agents that train there; the class docstring lists what changes.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from yume_env.env.core import WorldBatch, put_world_info, world_info
from yume_env.env.device_batch import DeviceWorldBatch, device_infos, finished_infos, put_reset_info
from yume_env.env.model_cache import load_world_model
from yume_env.env.options import parse_reset_options
from yume_env.env.rewards import make_reward
from yume_env.env.snapshot import WorldSnapshot
from yume_env.env.spaces import action_space, check_obs_size, observation_space, to_actions
from yume_env.env.world_config import configure_sampling


class YumeWorldVectorEnv(VectorEnv):
    """N worlds of one model, one forward per step. Arguments as `YumeWorldEnv`, plus `num_envs`.

    `reset(seed=s)` seeds world i with `s + i` (or pass a list of N seeds); `options` is one dict for
    every world, or a list of N dicts (None entries allowed), plus `"reset_mask"` (bool (N,)) to
    reset only some worlds. `set_event(text, index=None)`, `get_state(index)` and
    `reset(options=[{"state": ...}, ...])` work per world.

    ## Tensor path (`tensors=True`)
    `reset()` and `step()` return torch tensors on the model's device (`env.device`), and no frame
    is copied to the host on the way:

    | value | tensor |
    |-------|--------|
    | observation | uint8 (N, h, w, 3); `obs_size` resizes on the device as the numpy path does |
    | reward | float32 (N,) |
    | terminated, truncated | bool (N,) |
    | `info["frames"]` | uint8 (N, F, H, W, 3) (at reset (N, 1, H, W, 3)) |
    | `info["pose"]` | float64 (N, 4, 4) |
    | `info["step"]` | int64 (N,) |

    `info["event"]` (str) and `info["latency_s"]` (the host's seconds; a GPU may still be running)
    stay numpy, and so do the masks `info["_key"]`; `info["memory"]` is left out. Actions may be a
    tensor on any device: they come to the host, where the model looks up each action's text.
    Rewards run through `RewardFunction.batch` (`yume_env.env.rewards`). Same-step autoreset: a
    finished world is reset in Python (its start view is encoded again), alone; `info["final_obs"]`
    is an (N, h, w, 3) tensor and `info["final_info"]` the finished step's infos (both valid for
    the rows where `info["_final_obs"]` is True); in `info`, a reset world reports its new episode
    (step 0, its event and pose) and its `info["_frames"]` is False (its chunk is in `final_info`).
    On a CPU, observations and rewards equal the numpy path's bit for bit; poses agree to float64
    rounding, and so does the beacon reward, which reads them. `render()`, `get_state()` and the SB3 adapter read numpy: they copy to the host, and
    `Sb3VecEnvAdapter` refuses this path.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8, "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        model: Any = None,
        device: str = "cpu",
        dtype: Any = None,
        obs_size: tuple[int, int] | None = None,
        sample_steps: int | None = None,
        flatten_actions: bool = False,
        reward_fn: Any = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        spread_gain_max: float | None = None,
        tensors: bool = False,
    ):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if max_episode_steps is not None and int(max_episode_steps) < 1:
            raise ValueError(f"max_episode_steps must be a positive integer or None, got {max_episode_steps!r}")
        self.num_envs = int(num_envs)
        self.render_mode = render_mode
        self.model = configure_sampling(
            load_world_model(model, device=device, dtype=dtype), sample_steps, spread_gain_max
        )
        self.flatten_actions = bool(flatten_actions)
        self.max_episode_steps = None if max_episode_steps is None else int(max_episode_steps)
        self.tensors = bool(tensors)
        self.device = torch.device(self.model.device)
        batch_class = DeviceWorldBatch if self.tensors else WorldBatch
        self._world = batch_class(
            self.model, self.num_envs, make_reward(reward_fn, self.model), obs_size=check_obs_size(obs_size)
        )
        self.frame_size = self._world.frame_size
        self.vocabulary = self.model.config.vocabulary
        self.single_action_space = action_space(self.flatten_actions, self.vocabulary)
        self.single_observation_space = observation_space(self._world.obs_size or self.frame_size)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._rngs = [seeding.np_random()[0] for _ in range(self.num_envs)]
        self._started = np.zeros(self.num_envs, dtype=bool)

    # ---- reset -------------------------------------------------------------------------------
    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | list | None = None):
        seeds = self._seed_list(seed)
        mask, per_world = self._split_options(options)
        if not self._started.all() and not mask.all():
            raise ValueError("the first reset() must reset every world: drop 'reset_mask' or set it all True")
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seeds[0])
        reset_infos: dict[int, dict] = {}
        obs = None if self.tensors else np.zeros(self.observation_space.shape, dtype=np.uint8)
        for i in range(self.num_envs):
            if not mask[i]:
                if obs is not None:
                    obs[i] = self._world.observation(i)
                continue
            if seeds[i] is not None:
                self._rngs[i] = seeding.np_random(seeds[i])[0]
            parsed = parse_reset_options(per_world[i], self.frame_size, WorldSnapshot)
            world_obs, reset_infos[i] = self._world.reset_world(i, self._rngs[i], parsed)
            if obs is not None:
                obs[i] = world_obs
            self._started[i] = True
        if self.tensors:
            return self._world.observations(), device_infos(merge_infos(reset_infos, self.num_envs), self.device)
        return obs, merge_infos(reset_infos, self.num_envs)

    def _seed_list(self, seed) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(
                f"seed must be an int or a list of {self.num_envs} seeds (one per world), got {len(seeds)}"
            )
        return [None if s is None else int(s) for s in seeds]

    def _split_options(self, options) -> tuple[np.ndarray, list[dict | None]]:
        mask = np.ones(self.num_envs, dtype=bool)
        if options is None:
            return mask, [None] * self.num_envs
        if isinstance(options, (list, tuple)):
            if len(options) != self.num_envs:
                raise ValueError(
                    f"a list of reset options needs one entry per world ({self.num_envs}), got {len(options)}"
                )
            return mask, list(options)
        if not isinstance(options, dict):
            raise TypeError(
                f"reset options must be a dict, a list of {self.num_envs} dicts, or None, got {type(options).__name__}"
            )
        options = dict(options)
        if "reset_mask" in options:
            mask = np.asarray(options.pop("reset_mask"))
            if mask.shape != (self.num_envs,) or mask.dtype != bool:
                raise ValueError(
                    f"reset option 'reset_mask' must be a bool array of shape ({self.num_envs},), got {mask!r}"
                )
        return mask, [options or None] * self.num_envs

    # ---- step --------------------------------------------------------------------------------
    def step(self, actions):
        if not self._started.all():
            raise RuntimeError("step() before reset(): call reset() first")
        batch = self._check_actions(actions)
        if self.tensors:
            return self._step_tensors(batch)
        obs, rewards, terminated, infos = self._world.step(batch)
        steps = np.array(self._world.steps)
        truncated = (
            np.zeros(self.num_envs, dtype=bool) if self.max_episode_steps is None else steps >= self.max_episode_steps
        )
        truncated &= ~terminated
        done = terminated | truncated
        if done.any():
            final_obs = np.full(self.num_envs, None, dtype=object)
            final_info = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(done):
                final_obs[i], final_info[i] = obs[i].copy(), world_info(infos, i)
                # same-step autoreset: the observation and info of a done world are its new episode's
                obs[i], reset_info = self._world.reset_world(
                    i, self._rngs[i], parse_reset_options(None, self.frame_size, WorldSnapshot)
                )
                put_world_info(infos, i, reset_info)
            infos["final_obs"], infos["_final_obs"] = final_obs, done.copy()
            infos["final_info"], infos["_final_info"] = final_info, done.copy()
        return obs, rewards.copy(), terminated, truncated, infos

    def _step_tensors(self, actions: np.ndarray):
        """The tensor path's step: truncation and autoreset bookkeeping on the device; one read of
        the done mask tells which worlds to reset in Python."""
        obs, rewards, terminated, infos = self._world.step_tensors(actions)
        if self.max_episode_steps is None:
            truncated = torch.zeros_like(terminated)
        else:
            truncated = (self._world.step_counts >= self.max_episode_steps) & ~terminated
        done = terminated | truncated
        finished = done.nonzero().flatten().tolist()
        if finished:
            mask = np.zeros(self.num_envs, dtype=bool)
            mask[finished] = True
            infos["final_obs"], infos["final_info"] = obs, finished_infos(infos, mask)
            obs = obs.clone()
            for i in finished:  # same-step autoreset; the observation is the new episode's
                _, reset_info = self._world.reset_world(
                    i, self._rngs[i], parse_reset_options(None, self.frame_size, WorldSnapshot)
                )
                put_reset_info(infos, i, reset_info)
            obs[finished] = self._world.observations(finished)
            infos["_final_obs"], infos["_final_info"] = mask, mask.copy()
        return obs, rewards, terminated, truncated, infos

    def _check_actions(self, actions) -> np.ndarray:
        if isinstance(actions, torch.Tensor):  # a policy's actions on its device: checked on the host
            actions = actions.detach().cpu().numpy()
        return to_actions(actions, self.num_envs, self.flatten_actions, self.vocabulary)

    # ---- world control -----------------------------------------------------------------------
    def set_event(self, text: str, index: int | None = None) -> None:
        """Sets the event of world `index` (every world when None); it takes effect at the next chunk."""
        for i in range(self.num_envs) if index is None else [int(index)]:
            self._world.set_event(i, text)

    def get_state(self, index: int = 0) -> WorldSnapshot:
        return self._world.snapshot(int(index), self._rngs[int(index)])

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() without render_mode: make the env with render_mode='rgb_array'")
            return None
        return tuple(
            np.zeros((*self.frame_size, 3), np.uint8) if f is None else f.copy() for f in self._world.last_frames
        )


def merge_infos(infos: dict[int, dict], num_envs: int) -> dict:
    """Per-world info dicts -> Gymnasium's vector layout: `info[key]` batched over worlds, `info["_key"]` the mask.

    Arrays of one shape are stacked ((N, ...) with zeros where a world has no entry); arrays whose
    shapes differ (a reset's single frame beside a step's chunk) and strings go in object arrays.
    """
    merged: dict = {}
    keys = list(dict.fromkeys(k for info in infos.values() for k in info))
    for key in keys:
        present = {i: info[key] for i, info in infos.items() if key in info}
        mask = np.zeros(num_envs, dtype=bool)
        mask[list(present)] = True
        values = list(present.values())
        if all(isinstance(v, dict) for v in values):
            merged[key] = merge_infos(present, num_envs)
        elif all(isinstance(v, np.ndarray) for v in values) and len({(v.shape, v.dtype) for v in values}) == 1:
            out = np.zeros((num_envs, *values[0].shape), dtype=values[0].dtype)
            for i, v in present.items():
                out[i] = v
            merged[key] = out
        elif all(isinstance(v, (bool, np.bool_)) for v in values):
            merged[key] = np.zeros(num_envs, dtype=bool)
            merged[key][mask] = values
        elif all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in values):
            dtype = np.int64 if all(isinstance(v, (int, np.integer)) for v in values) else np.float64
            merged[key] = np.zeros(num_envs, dtype=dtype)
            merged[key][mask] = [float(v) if dtype == np.float64 else int(v) for v in values]
        else:
            out = np.full(num_envs, None, dtype=object)
            for i, v in present.items():
                out[i] = v
            merged[key] = out
        merged[f"_{key}"] = mask
    return merged
