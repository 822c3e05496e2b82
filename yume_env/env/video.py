"""Writes frames to mp4 (imageio + imageio-ffmpeg, which ships its own ffmpeg) or gif, atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

VIDEO_FORMATS = (".mp4", ".gif")


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray] | np.ndarray, fps: float = 16.0) -> Path:
    """Writes uint8 (H, W, 3) frames to `path` (.mp4 or .gif): a temp file beside it, then `os.replace`.

    mp4 is H.264 (yuv420p, so sides should be even; multiples of 16 avoid ffmpeg's resizing).
    Returns the path written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_FORMATS:
        raise ValueError(f"video path must end in .mp4 or .gif, got {str(path)!r}")
    frames = [np.asarray(f) for f in frames]
    if not frames:
        raise ValueError(f"no frames to write to {path}")
    shape = frames[0].shape
    for n, f in enumerate(frames):
        if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3 or f.shape != shape:
            raise ValueError(f"frame {n} must be uint8 {shape}, got {f.dtype} {f.shape}")
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        if suffix == ".mp4":
            with imageio.get_writer(
                tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8,
                pixelformat="yuv420p", macro_block_size=16, ffmpeg_log_level="error",
            ) as writer:
                for f in frames:
                    writer.append_data(f)
        else:
            imageio.mimsave(tmp, frames, format="GIF", duration=1000.0 / fps, loop=0)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a recording is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_video(path: str | os.PathLike) -> np.ndarray:
    """Reads every frame of an mp4/gif back: uint8 (T, H, W, 3)."""
    import imageio.v2 as imageio

    frames = [np.asarray(f)[..., :3] for f in imageio.mimread(str(path), memtest=False)]
    return np.stack(frames).astype(np.uint8)
