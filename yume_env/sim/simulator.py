"""`Simulator`: one first-person camera walking the procedural city (numpy, CPU).

    sim = Simulator(height=64, width=64, sub_frames=2, seed=0)
    frame = sim.reset()                      # (H, W, 3) uint8
    out = sim.step(np.array([1, 0]))         # W, no turn -> SimStep
    out.frames.shape                         # (2, H, W, 3): the step's sub-frames
    sim.set_event("it starts to snow")       # takes effect at the next step

The task: walk to the beacon (a tall glowing orange pillar placed in view at reset). Reward per
step = decrease of the distance to it (metres), plus `reach_bonus` and `terminated=True` once
within `reach_radius`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..actions import validate_action
from . import task
from .backend import NUMPY
from .events import RAMP_FRAMES, check_event, effect_intensities, event_index, match_event
from .motion import sub_frame_move
from .pose import c2w
from .render import Renderer, RenderState


@dataclass
class SimStep:
    frames: np.ndarray  # (F, H, W, 3) uint8, the last one is the current view
    poses: np.ndarray  # (F, 4, 4) float64 camera-to-world per sub-frame
    reward: float
    terminated: bool
    info: dict = field(default_factory=dict)
    ghost_mask: np.ndarray | None = None  # (F, H, W) bool, the ghost's pixels (step(..., ghost_mask=True))


class Simulator:
    """A deterministic first-person city walk with a beacon-reaching task and text events.

    Public state (read by trainers' scripted policies; shape (1,) float64 unless said):
    `x`, `z` (metres), `yaw`, `pitch` (radians), `beacon` (1, 2) x/z of the beacon,
    `world_seed` (1,) int64, `reach_radius`, `step_count`, `reached`.
    """

    def __init__(
        self,
        height: int = 64,
        width: int = 64,
        sub_frames: int = 2,
        seed: int | None = None,
        reach_radius: float = task.REACH_RADIUS,
        reach_bonus: float = 10.0,
    ):
        if int(sub_frames) != sub_frames or sub_frames < 1:
            raise ValueError(f"sub_frames must be a positive integer, got {sub_frames!r}")
        self.renderer = Renderer(height, width, NUMPY)
        self.height, self.width, self.sub_frames = int(height), int(width), int(sub_frames)
        self.reach_radius, self.reach_bonus = float(reach_radius), float(reach_bonus)
        self._seed = seed
        self.reset(seed)

    # -- state ---------------------------------------------------------------------------
    def reset(self, seed: int | None = None, event: str = "") -> np.ndarray:
        """New world and start pose (drawn from `seed`, else from the running generator)."""
        check_event(event, "reset event")
        if seed is not None or not hasattr(self, "rng"):
            self.rng = np.random.default_rng(seed if seed is not None else self._seed)
        self.world_seed = np.array([self.rng.integers(0, 2**31 - 1)], dtype=np.int64)
        x, z, yaw, axis = task.spawn(self.rng, self.world_seed)
        self.x, self.z, self.yaw, self.pitch = x, z, yaw, np.zeros(1)
        self.beacon = task.place_beacon(self.rng, self.world_seed, x, z, yaw, axis)
        self.sun = task.sun_direction(self.rng, 1)
        self.frame_count = 0  # sub-frames rendered since reset (animates snow/rain)
        self.step_count = 0
        self.reached = False
        self.ghost = np.zeros((1, 2))
        self._event_text, self._event_idx, self._event_start = "", -1, 0
        self._pending: str | None = None
        self._start_event(event, full=True)
        self._frame = self._render()
        return self._frame.copy()

    @property
    def pose(self) -> np.ndarray:
        """Current 4x4 camera-to-world matrix (float64, OpenCV camera axes, world y down)."""
        return c2w(self.x[0], self.z[0], self.yaw[0], self.pitch[0])

    @property
    def event(self) -> str:
        """The active event text ("" for none; unknown texts are kept and reported, not drawn)."""
        return self._event_text

    @property
    def event_name(self) -> str | None:
        return match_event(self._event_text)

    def set_event(self, text: str) -> None:
        """Start event `text` at the next step ("" clears it)."""
        self._pending = check_event(text)

    def beacon_distance(self) -> float:
        return float(np.hypot(self.x[0] - self.beacon[0, 0], self.z[0] - self.beacon[0, 1]))

    def render(self) -> np.ndarray:
        """The current view, (H, W, 3) uint8."""
        return self._frame.copy()

    # -- stepping -------------------------------------------------------------------------
    def step(self, action, ghost_mask: bool = False) -> SimStep:
        """One env step of `sub_frames` frames; `ghost_mask` also returns the ghost's pixels per frame."""
        key, cam = validate_action(action)
        if self._pending is not None:
            if self._pending != self._event_text:
                self._start_event(self._pending, full=False)
            self._pending = None
        before = self.beacon_distance()
        frames = np.empty((self.sub_frames, self.height, self.width, 3), dtype=np.uint8)
        poses = np.empty((self.sub_frames, 4, 4))
        masks = np.zeros((self.sub_frames, self.height, self.width), dtype=bool) if ghost_mask else None
        keys, cams = np.array([key]), np.array([cam])
        for f in range(self.sub_frames):
            self.x, self.z, self.yaw, self.pitch = sub_frame_move(
                NUMPY, self.x, self.z, self.yaw, self.pitch, keys, cams, self.world_seed, self.sub_frames
            )
            self.frame_count += 1
            out = self.renderer.render(self._state(), ghost_mask=ghost_mask)
            rgb, ghost = out if ghost_mask else (out, None)
            frames[f] = rgb[0]
            if masks is not None:
                masks[f] = ghost[0]
            poses[f] = self.pose
        self._frame = frames[-1]
        self.step_count += 1
        after = self.beacon_distance()
        reward = before - after
        newly = (after <= self.reach_radius) and not self.reached
        if newly:
            reward += self.reach_bonus
        self.reached = self.reached or newly
        info = {
            "event": self.event,
            "beacon_distance": after,
            "is_success": bool(self.reached),
            "step": self.step_count,
        }
        return SimStep(frames, poses, float(reward), bool(self.reached), info, masks)

    # -- internals ------------------------------------------------------------------------
    def _start_event(self, text: str, full: bool) -> None:
        self._event_text = text
        self._event_idx = event_index(self._event_text)
        self._event_start = self.frame_count - (RAMP_FRAMES if full else 0)
        if match_event(self._event_text) == "ghost":
            self.ghost = task.place_ghost(self.world_seed, self.x, self.z, self.yaw)

    def _state(self) -> RenderState:
        fx = effect_intensities(np.array([self._event_idx]), np.array([self.frame_count - self._event_start - 1]))
        f32 = lambda v: np.asarray(v, dtype=np.float32)  # noqa: E731
        return RenderState(
            x=f32(self.x),
            z=f32(self.z),
            yaw=f32(self.yaw),
            pitch=f32(self.pitch),
            seed=self.world_seed,
            sun=self.sun,
            time=f32([self.frame_count]),
            effects=fx,
            beacon=f32(self.beacon),
            beacon_on=f32([1.0]),
            ghost=f32(self.ghost),
        )

    def _render(self) -> np.ndarray:
        return self.renderer.render(self._state())[0]
