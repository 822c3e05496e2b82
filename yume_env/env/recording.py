"""`RecordEpisode`: a wrapper that writes each episode to mp4 or gif, with every generated frame.

Unlike Gymnasium's `RecordVideo` (one rendered frame per step, needs moviepy), it records all the
frames of each chunk from `info["frames"]` (F per step) and writes them with imageio, atomically.
Works on `YumeWorld-v0` and `YumeSim-v0` (both report `info["frames"]` and `info["event"]`).

Frames stream to the encoder as the steps come (mp4: memory stays flat over any number of steps;
gif holds its frames until the episode ends). An episode's video appears under its final name only
once the episode is over; `discard()` or an exception inside the wrapper drops it instead, and
`video.py` says what a killed process leaves behind.

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
from yume_env.env.video import VIDEO_FORMATS, VideoWriter


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
        self._writer: VideoWriter | None = None
        self._recording = False
        self._flatten = isinstance(env.action_space, gym.spaces.Discrete)
        vocabulary = getattr(env.unwrapped, "vocabulary", None)
        self._keys = vocabulary is None or vocabulary.is_yume  # the panel draws Yume's keys and camera moves

    def reset(self, *, seed=None, options=None):
        self._flush()
        obs, info = self._guarded(self.env.reset, seed=seed, options=options)
        self.episode += 1
        self._recording = bool(self.episode_trigger(self.episode))
        if self._recording:
            self._add(info, action=None)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self._guarded(self.env.step, action)
        if self._recording:
            self._add(info, action=to_key_camera(action, self._flatten) if self.overlay and self._keys else None)
            if terminated or truncated:
                self._flush()
        return obs, reward, terminated, truncated, info

    def close(self):
        """Writes the episode being recorded (if any), then closes the env."""
        try:
            self._flush()
        finally:
            super().close()

    def discard(self) -> None:
        """Drops the episode being recorded: its temporary folder goes, nothing is written."""
        writer, self._writer, self._recording = self._writer, None, False
        if writer is not None:
            writer.abort()

    # ---- internals ---------------------------------------------------------------------------
    def _guarded(self, call, *args, **kwargs):
        """`call(...)`; an exception (Ctrl-C included) drops the episode being recorded."""
        try:
            return call(*args, **kwargs)
        except BaseException:
            self.discard()
            raise

    def _add(self, info: dict, action: tuple[int, int] | None) -> None:
        """Streams the step's frames (upscaled, with the panel) to the episode's writer."""
        try:
            if "frames" not in info:
                raise KeyError("RecordEpisode needs info['frames'] (F, H, W, 3) from the env's reset() and step()")
            frames = np.asarray(info["frames"], dtype=np.uint8)
            factor = self.upscale or default_upscale(frames.shape[1:3])
            if self.overlay:
                frames = annotate(frames, factor, action, str(info.get("event", "")), int(info.get("step", 0)))
            else:
                frames = upscale(frames, factor)
            if self._writer is None:
                self._writer = VideoWriter(self._target(), fps=self.fps)
            for frame in frames:
                self._writer.append(frame)
        except BaseException:
            self.discard()
            raise

    def _target(self) -> Path:
        if self.file is not None:
            return self.file
        return self.folder / f"{self.name_prefix}-{self.episode:06d}.{self.video_format}"

    def _flush(self) -> None:
        """Finishes the episode's video under its final name."""
        writer, self._writer, self._recording = self._writer, None, False
        if writer is not None and writer.frames_written:
            self.written.append(writer.close())
        elif writer is not None:
            writer.abort()
