"""`BatchSimulator`: B independent city walks rendered at once with torch (CPU or GPU).

The same city, motion and renderer code as `Simulator` (through `Backend("torch")`), so a trainer
can stream (frames, actions, events) batches on the GPU without touching the disk:

    sim = BatchSimulator(batch=64, height=64, width=64, sub_frames=2, device="cuda", seed=0)
    frames = sim.reset()                                  # (B, H, W, 3) uint8 torch
    out = sim.step(actions)                               # actions (B, 2) int (numpy or torch)
    out.frames                                            # (B, F, H, W, 3) uint8 torch

Torch and numpy only (no gymnasium). State is kept in float64 (poses stay exact for the camera
quantizer); rendering is float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..actions import NUM_CAMERAS, NUM_KEYS
from . import task
from .backend import Backend
from .events import RAMP_FRAMES, check_event, effect_intensities, event_index, match_event
from .motion import sub_frame_move
from .pose import c2w
from .render import Renderer, RenderState


@dataclass
class BatchStep:
    frames: torch.Tensor  # (B, F, H, W, 3) uint8
    poses: torch.Tensor  # (B, F, 4, 4) float64 camera-to-world
    reward: torch.Tensor  # (B,) float32 distance closed (+ bonus on reaching)
    beacon_distance: torch.Tensor  # (B,) float32 metres
    reached: torch.Tensor  # (B,) bool, within the reach radius (sticky until reset)
    events: list[str]  # (B,) active event text per world
    ghost_mask: torch.Tensor | None = None  # (B, F, H, W) bool, the ghost's pixels (step(..., ghost_mask=True))


class BatchSimulator:
    """B worlds stepped and rendered together; each world has its own city, beacon and event."""

    def __init__(
        self,
        batch: int,
        height: int = 64,
        width: int = 64,
        sub_frames: int = 2,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        reach_radius: float = task.REACH_RADIUS,
        reach_bonus: float = 10.0,
    ):
        if int(batch) != batch or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        if int(sub_frames) != sub_frames or sub_frames < 1:
            raise ValueError(f"sub_frames must be a positive integer, got {sub_frames!r}")
        self.b = Backend("torch", device)
        self.device = self.b.device
        self.renderer = Renderer(height, width, self.b)
        self.batch, self.height, self.width, self.sub_frames = int(batch), int(height), int(width), int(sub_frames)
        self.reach_radius, self.reach_bonus = float(reach_radius), float(reach_bonus)
        self.rng = np.random.default_rng(seed)
        self._allocated = False

    # -- reset / events -------------------------------------------------------------------
    def reset(self, indices=None, events: list[str] | None = None) -> torch.Tensor:
        """(Re)start the worlds at `indices` (all by default); returns the (B, H, W, 3) current views."""
        B = self.batch
        idx = np.arange(B) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        if events is not None:
            events = [check_event(t, f"reset events[{j}]") for j, t in enumerate(events)]
        if not self._allocated:
            idx = np.arange(B)
            self._np = {
                "x": np.zeros(B),
                "z": np.zeros(B),
                "yaw": np.zeros(B),
                "pitch": np.zeros(B),
                "seed": np.zeros(B, np.int64),
                "beacon": np.zeros((B, 2)),
                "ghost": np.zeros((B, 2)),
                "sun": np.zeros((B, 3), np.float32),
            }
            self.frame_count = np.zeros(B, np.int64)
            self.event_text = [""] * B
            self.event_idx = np.full(B, -1, np.int64)
            self.event_start = np.zeros(B, np.int64)
            self._pending: dict[int, str] = {}
            self._allocated = True
        else:
            self._pull()
        n = len(idx)
        if n:
            seed = self.rng.integers(0, 2**31 - 1, n).astype(np.int64)
            x, z, yaw, axis = task.spawn(self.rng, seed)
            s = self._np
            s["x"][idx], s["z"][idx], s["yaw"][idx], s["pitch"][idx] = x, z, yaw, 0.0
            s["seed"][idx] = seed
            s["beacon"][idx] = task.place_beacon(self.rng, seed, x, z, yaw, axis)
            s["sun"][idx] = task.sun_direction(self.rng, n)
            self.frame_count[idx] = 0
            for j, i in enumerate(idx):
                self._pending.pop(int(i), None)
                self._start_event(int(i), "" if events is None else events[j], full=True)
        self._push()
        if not hasattr(self, "reached"):
            self.reached = torch.zeros(B, dtype=torch.bool, device=self.device)
        self.reached[torch.as_tensor(idx, device=self.device)] = False
        self._frames = self.renderer.render(self._render_state())
        return self._frames.clone()

    def set_event(self, text: str | list[str], indices=None) -> None:
        """Start event `text` (one text for all, or one per index) at the next step."""
        idx = range(self.batch) if indices is None else [int(i) for i in np.asarray(indices).reshape(-1)]
        if not isinstance(text, (str, list, tuple, np.ndarray)):
            raise TypeError(f'set_event text must be a str ("" for none) or a list of them, got {type(text).__name__}')
        texts = (
            [text] * len(idx)
            if isinstance(text, str)
            else [check_event(t, f"set_event text {j}") for j, t in enumerate(text)]
        )
        if len(texts) != len(idx):
            raise ValueError(f"set_event got {len(texts)} texts for {len(idx)} worlds")
        for i, t in zip(idx, texts):
            self._pending[i] = t

    @property
    def events(self) -> list[str]:
        return list(self.event_text)

    @property
    def poses(self) -> torch.Tensor:
        """(B, 4, 4) float64 current camera-to-world matrices."""
        return c2w(self.x, self.z, self.yaw, self.pitch)

    def beacon_distance(self) -> torch.Tensor:
        return torch.hypot(self.x - self.beacon[:, 0], self.z - self.beacon[:, 1]).float()

    # -- stepping -------------------------------------------------------------------------
    def step(self, actions, ghost_mask: bool = False) -> BatchStep:
        """One env step of every world; `ghost_mask` also returns the ghost's pixels per frame."""
        a = torch.as_tensor(np.asarray(actions) if not torch.is_tensor(actions) else actions, device=self.device)
        if a.shape != (self.batch, 2) or a.dtype.is_floating_point:
            raise ValueError(f"actions must be integers of shape ({self.batch}, 2), got {tuple(a.shape)} {a.dtype}")
        a = a.long()
        if bool(((a[:, 0] < 0) | (a[:, 0] >= NUM_KEYS) | (a[:, 1] < 0) | (a[:, 1] >= NUM_CAMERAS)).any()):
            raise ValueError(f"actions must be (key in [0, {NUM_KEYS}), camera in [0, {NUM_CAMERAS})) pairs")
        if self._pending:
            self._pull()
            for i, text in self._pending.items():
                if text != self.event_text[i]:
                    self._start_event(i, text, full=False)
            self._pending = {}
            self._push()
        before = self.beacon_distance()
        frames, poses, masks = [], [], []
        for _ in range(self.sub_frames):
            self.x, self.z, self.yaw, self.pitch = sub_frame_move(
                self.b, self.x, self.z, self.yaw, self.pitch, a[:, 0], a[:, 1], self.seed, self.sub_frames
            )
            self.frame_count += 1
            out = self.renderer.render(self._render_state(), ghost_mask=ghost_mask)
            rgb, ghost = out if ghost_mask else (out, None)
            frames.append(rgb)
            masks.append(ghost)
            poses.append(self.poses)
        self._frames = frames[-1]
        after = self.beacon_distance()
        newly = (after <= self.reach_radius) & ~self.reached
        reward = (before - after) + newly.float() * self.reach_bonus
        self.reached = self.reached | newly
        return BatchStep(
            torch.stack(frames, 1),
            torch.stack(poses, 1),
            reward,
            after,
            self.reached.clone(),
            self.events,
            torch.stack(masks, 1) if ghost_mask else None,
        )

    # -- internals ------------------------------------------------------------------------
    def _start_event(self, i: int, text: str, full: bool) -> None:
        self.event_text[i] = text
        self.event_idx[i] = event_index(self.event_text[i])
        self.event_start[i] = self.frame_count[i] - (RAMP_FRAMES if full else 0)
        if match_event(self.event_text[i]) == "ghost":
            s = self._np
            sl = slice(i, i + 1)
            s["ghost"][i] = task.place_ghost(s["seed"][sl], s["x"][sl], s["z"][sl], s["yaw"][sl])[0]

    def _push(self) -> None:
        """numpy state -> device tensors."""
        t = lambda v, dt=torch.float64: torch.as_tensor(v, dtype=dt, device=self.device)  # noqa: E731
        s = self._np
        self.x, self.z, self.yaw, self.pitch = t(s["x"]), t(s["z"]), t(s["yaw"]), t(s["pitch"])
        self.seed = t(s["seed"], torch.int64)
        self.beacon, self.ghost = t(s["beacon"]), t(s["ghost"])
        self.sun = t(s["sun"], torch.float32)

    def _pull(self) -> None:
        """device tensors -> numpy state (before host-side edits: resets, ghosts)."""
        s = self._np
        for k in ("x", "z", "yaw", "pitch"):
            s[k] = getattr(self, k).cpu().numpy().copy()

    def _render_state(self) -> RenderState:
        fx = effect_intensities(self.event_idx, self.frame_count - self.event_start - 1)
        f = lambda v: v.float()  # noqa: E731
        return RenderState(
            x=f(self.x),
            z=f(self.z),
            yaw=f(self.yaw),
            pitch=f(self.pitch),
            seed=self.seed,
            sun=self.sun,
            time=torch.as_tensor(self.frame_count, dtype=torch.float32, device=self.device),
            effects=torch.as_tensor(fx, device=self.device),
            beacon=f(self.beacon),
            beacon_on=torch.ones(self.batch, device=self.device),
            ghost=f(self.ghost),
        )
