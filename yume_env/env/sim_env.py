"""`YumeSim-v0`: the procedural ground-truth city walk behind Gymnasium's step/reset API."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from yume_env.env.spaces import action_space, observation_space, to_key_camera
from yume_env.sim import Simulator
from yume_env.sim.task import REACH_RADIUS

RESET_OPTION_KEYS = ("event",)


class YumeSimEnv(gym.Env):
    """
    ## Description
    A first-person walk through an endless procedural city (street grid, building blocks with
    windows, parks, landmark towers, lamps and trees, a sky with a sun), rendered by a vectorised
    raycaster (`yume_env.sim`). It is the ground truth the learned world `YumeWorld-v0` imitates:
    same actions, same observations, same info keys. The task: walk to the beacon, a tall striped
    orange pillar with a glowing top, placed 6-15 m ahead (in view) at reset.

    ## Action Space
    `MultiDiscrete([9, 9])`: `(key, camera)` with keys `None, W, A, S, D, W+A, W+D, S+A, S+D` and
    camera moves `·, →, ←, ↑, ↓, ↑→, ↑←, ↓→, ↓←`; `flatten_actions=True` gives `Discrete(81)`
    (index `key * 9 + camera`). Strings work too: `env.step("W+A →")`. Per step the camera moves
    0.5 m (`actions.MOVE_SPEED`), pans 10 deg, tilts 5 deg (pitch within +-35 deg), split over
    `sub_frames` frames. Buildings block movement (the camera slides along walls).

    ## Observation Space
    `Box(0, 255, (height, width, 3), uint8)`: the last frame of the step. Fresh arrays every call.

    ## Rewards
    The decrease of the distance to the beacon during the step (metres, a Python float), plus
    `reach_bonus` (10) on the step that comes within `reach_radius` (1.5 m).

    ## Starting State
    A new city and start pose drawn from the env's `np_random` (so `reset(seed=s)` repeats
    exactly): on a street, looking along it, the beacon in view.

    ## Episode End
    `terminated` when the beacon is reached; `truncated` by the step limit (200 steps through
    `gym.make`'s `TimeLimit`).

    ## Events
    `reset(options={"event": text})` starts an event at once; `env.unwrapped.set_event(text)`
    starts one at the next step ("" clears it). Known events (with paraphrases, see
    `yume_env.sim.events.EVENTS`): "a ghost suddenly appears", "it starts to snow", "night falls",
    "thick fog rolls in", "the street lights turn on", "it starts to rain". Unknown text is kept
    and reported in `info["event"]` but draws nothing.

    ## Info
    | key | value |
    |---|---|
    | `"frames"` | uint8 (sub_frames, H, W, 3): the step's frames (the observation is the last) |
    | `"event"` | the active event text ("" for none) |
    | `"pose"` | float64 (4, 4) camera-to-world of the observation (OpenCV camera axes, world y down) |
    | `"poses"` | float64 (sub_frames, 4, 4) one per frame |
    | `"step"` | steps since reset |
    | `"beacon_distance"` | metres to the beacon |
    | `"is_success"` | the beacon was reached |

    ## Arguments
    `gym.make("YumeSim-v0", height=64, width=64, sub_frames=2, render_mode="rgb_array",
    flatten_actions=False, reach_radius=1.5, reach_bonus=10.0)`; sides must be multiples of 16.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(
        self,
        height: int = 64,
        width: int = 64,
        sub_frames: int = 2,
        render_mode: str | None = None,
        flatten_actions: bool = False,
        reach_radius: float = REACH_RADIUS,
        reach_bonus: float = 10.0,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.flatten_actions = bool(flatten_actions)
        self.sim = Simulator(height, width, sub_frames, seed=0, reach_radius=reach_radius, reach_bonus=reach_bonus)
        self.action_space = action_space(self.flatten_actions)
        self.observation_space = observation_space((height, width))
        self.metadata = dict(self.metadata, render_fps=8 * int(sub_frames) // 2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        event = ""
        if options is not None:
            if not isinstance(options, dict):
                raise TypeError(f"reset options must be a dict or None, got {type(options).__name__}")
            unknown = sorted(set(options) - set(RESET_OPTION_KEYS))
            if unknown:
                raise ValueError(f"unknown reset option(s) {unknown}; YumeSim-v0 accepts {list(RESET_OPTION_KEYS)}")
            event = options.get("event") or ""
            if not isinstance(event, str):
                raise TypeError(f"reset option 'event' must be a str, got {type(event).__name__}")
        frame = self.sim.reset(seed=int(self.np_random.integers(0, 2**31 - 1)), event=event)
        pose = self.sim.pose
        info = {
            "frames": frame[None].copy(),
            "event": self.sim.event,
            "pose": pose,
            "poses": pose[None].copy(),
            "step": 0,
            "beacon_distance": self.sim.beacon_distance(),
            "is_success": False,
        }
        return frame, info

    def step(self, action):
        key, camera = to_key_camera(action, self.flatten_actions)
        out = self.sim.step(np.array([key, camera], dtype=np.int64))
        info = {
            "frames": out.frames,
            "event": out.info["event"],
            "pose": out.poses[-1].copy(),
            "poses": out.poses,
            "step": out.info["step"],
            "beacon_distance": out.info["beacon_distance"],
            "is_success": out.info["is_success"],
        }
        return out.frames[-1].copy(), float(out.reward), bool(out.terminated), False, info

    def set_event(self, text: str) -> None:
        """Start event `text` at the next step ("" clears it)."""
        self.sim.set_event(text)

    def render(self):
        if self.render_mode == "rgb_array":
            return self.sim.render()
        return None
