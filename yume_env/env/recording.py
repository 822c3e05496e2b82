"""`RecordEpisode`: a wrapper that writes each episode to mp4 or gif, with every generated frame.

Unlike Gymnasium's `RecordVideo` (one rendered frame per step, needs moviepy), it records all the
frames of each chunk from `info["frames"]` (F per step) and writes them with imageio, atomically.
Works on `YumeWorld-v0` and `YumeSim-v0` (both report `info["frames"]` and `info["event"]`).

    env = RecordEpisode(gym.make("YumeWorld-v0"), "videos/", overlay=True)
    env.reset(seed=0); ...; env.close()   # videos/episode-000000.mp4, ...
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np

from yume_env.env.overlay import annotate, default_upscale, upscale
from yume_env.env.spaces import to_key_camera
from yume_env.env.video import VIDEO_FORMATS, write_video


class RecordEpisode(gym.Wrapper):
    """Records episodes to `path`.

    Args:
        env: an env whose infos carry `"frames"` (F, H, W, 3) at reset and step (and `"event"`).
        path: a folder (files `{name_prefix}-{episode:06d}.{video_format}`), or a file path ending in
            .mp4/.gif (every episode overwrites it; for one-episode recordings).
        video_format: "mp4" or "gif" (folders only).
        fps: frames per second of the video (frames, not env steps).
        upscale: integer zoom for viewing; None = about 256 px on the longer side.
        overlay: draw a panel with the pressed keys, the camera move, the step and the event.
        episode_trigger: `fn(episode_index) -> bool`, which episodes to record (default: all).
    Attributes: `written` (paths written so far).
    """

    def __init__(
        self,
        env: gym.Env,
        path: str | os.PathLike,
        video_format: str = "mp4",
        fps: float = 16.0,
        upscale: int | None = None,
        overlay: bool = True,
        episode_trigger: Callable[[int], bool] | None = None,
        name_prefix: str = "episode",
    ):
        super().__init__(env)
        path = Path(path)
        if path.suffix.lower() in VIDEO_FORMATS:
            self.file, self.folder = path, None
        else:
            if video_format not in ("mp4", "gif"):
                raise ValueError(f"video_format must be 'mp4' or 'gif', got {video_format!r}")
            self.file, self.folder = None, path
        self.video_format = video_format
        self.fps = float(fps)
        if upscale is not None and (not isinstance(upscale, int) or upscale < 1):
            raise ValueError(f"upscale must be a positive integer or None, got {upscale!r}")
        self.upscale = upscale
        self.overlay = bool(overlay)
        self.episode_trigger = episode_trigger or (lambda episode: True)
        self.name_prefix = name_prefix
        self.episode = -1
        self.written: list[Path] = []
        self._frames: list[np.ndarray] = []
        self._recording = False
        self._flatten = isinstance(env.action_space, gym.spaces.Discrete)

    def reset(self, *, seed=None, options=None):
        self._flush()
        obs, info = self.env.reset(seed=seed, options=options)
        self.episode += 1
        self._recording = bool(self.episode_trigger(self.episode))
        if self._recording:
            self._add(info, action=None)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self._recording:
            self._add(info, action=to_key_camera(action, self._flatten))
            if terminated or truncated:
                self._flush()
        return obs, reward, terminated, truncated, info

    def close(self):
        self._flush()
        super().close()

    # ---- internals ---------------------------------------------------------------------------
    def _add(self, info: dict, action: tuple[int, int] | None) -> None:
        if "frames" not in info:
            raise KeyError("RecordEpisode needs info['frames'] (F, H, W, 3) from the env's reset() and step()")
        frames = np.asarray(info["frames"], dtype=np.uint8)
        factor = self.upscale or default_upscale(frames.shape[1:3])
        if self.overlay:
            frames = annotate(frames, factor, action, str(info.get("event", "")), int(info.get("step", 0)))
        else:
            frames = upscale(frames, factor)
        self._frames.extend(np.array(f) for f in frames)

    def _flush(self) -> None:
        if self._recording and self._frames:
            if self.file is not None:
                target = self.file
            else:
                target = self.folder / f"{self.name_prefix}-{self.episode:06d}.{self.video_format}"
            self.written.append(write_video(target, self._frames, fps=self.fps))
        self._frames = []
        self._recording = False
