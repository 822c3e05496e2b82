"""Writes frames to mp4 (imageio + imageio-ffmpeg, which ships its own ffmpeg) or gif, atomically.

A recording is written into a hidden temporary folder beside its destination,
`.NAME.XXXXXXXX.part/video.mp4`, and renamed onto the destination once complete (after an fsync);
until then the destination keeps what it held before. mp4 frames stream to ffmpeg as they come, so
memory stays flat however long the recording; gif frames are held until the end, because Pillow
writes a gif in one go.

What a stop leaves behind: an exception, Ctrl-C or `VideoWriter.abort()` removes the temporary
folder, and so does the garbage collection of an unfinished writer (at the latest, interpreter
exit). A process killed outright (SIGKILL) cannot clean up: its temporary folder stays until the
next recording into the same folder starts, which removes every such folder that no live writer
holds (each writer holds an advisory `flock` on its temporary folder while it writes; on systems
without `fcntl` the folders stay and can be deleted by hand).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Iterable

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so no sweeping of killed recordings
    fcntl = None

VIDEO_FORMATS = (".mp4", ".gif")
PART_PATTERN = re.compile(r"^\..+\.[a-z0-9_]{8}\.part$")  # the temporary folders `tempfile.mkdtemp` makes below


class VideoWriter:
    """An mp4 or gif being written to `path`: `append` frames, then `close` (or `abort`).

    Frames are uint8 (H, W, 3), all of the first one's shape. As a context manager it closes on
    success and aborts on any exception. mp4 is H.264 (yuv420p, so sides should be even;
    multiples of 16 avoid ffmpeg's resizing).
    """

    def __init__(self, path: str | os.PathLike, fps: float = 16.0):
        self.path = Path(path)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in VIDEO_FORMATS:
            raise ValueError(f"video path must end in .mp4 or .gif, got {str(self.path)!r}")
        self.fps = float(fps)
        self.frames_written = 0
        self._shape: tuple[int, ...] | None = None
        self._part: _PartFile | None = None
        self._finished = False

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @property
    def temporary_path(self) -> Path | None:
        """The hidden folder being written in (None before the first frame and after close/abort)."""
        return self._part.folder if self._part is not None else None

    def append(self, frame: np.ndarray) -> None:
        """Adds one frame: to ffmpeg at once (mp4), or to the frames held for the end (gif)."""
        if self._finished:
            raise ValueError(f"the recording of {self.path} is already closed")
        frame = np.asarray(frame)
        expected = self._shape or "(H, W, 3)"
        if (
            frame.dtype != np.uint8
            or frame.ndim != 3
            or frame.shape[2] != 3
            or (self._shape and frame.shape != self._shape)
        ):
            raise ValueError(f"frame {self.frames_written} must be uint8 {expected}, got {frame.dtype} {frame.shape}")
        if self._part is None:
            self._shape = frame.shape
            self._part = _PartFile(self.path, self.fps)
        self._part.append(frame)
        self.frames_written += 1

    def close(self) -> Path:
        """Finishes the file and renames it onto `path`; returns `path`."""
        if self._finished:
            raise ValueError(f"the recording of {self.path} is already closed")
        if self._part is None:
            self._finished = True
            raise ValueError(f"no frames to write to {self.path}")
        try:
            self._part.finish(self.path)
        except BaseException:
            self.abort()
            raise
        self._part, self._finished = None, True
        return self.path

    def abort(self) -> None:
        """Stops writing and removes the temporary file; `path` keeps what it held before."""
        part, self._part, self._finished = self._part, None, True
        if part is not None:
            part.discard()


class _PartFile:
    """The hidden temporary folder of one recording, `.NAME.XXXXXXXX.part/`, locked while written.

    The video inside is `video.mp4` (or .gif). A folder, not a file: when a writer is killed, its
    ffmpeg child may still be starting; once the folder is swept, ffmpeg cannot create the file
    anew (it does not create folders), so nothing reappears beside the destination."""

    def __init__(self, path: Path, fps: float):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_parts(path.parent)
        self.fd, self.folder = _locked_temp_folder(path)
        self.path = self.folder / f"video{path.suffix.lower()}"
        self.fps = fps
        self.held: list[np.ndarray] = []  # gif only
        self.writer = None
        if path.suffix.lower() == ".mp4":
            try:
                self.writer = _mp4_writer(self.path, fps)
            except BaseException:
                _discard(None, self.folder, self.fd)
                raise
        # an unfinished recording goes when the writer is collected or the interpreter exits
        self._cleanup = weakref.finalize(self, _discard, self.writer, self.folder, self.fd)

    def append(self, frame: np.ndarray) -> None:
        if self.writer is not None:
            self.writer.append_data(frame)
        else:
            self.held.append(np.array(frame))

    def finish(self, target: Path) -> None:
        """Completes the video, makes it an ordinary file (umask permissions), renames it to `target`."""
        if self.writer is not None:
            self.writer.close()
        else:
            import imageio.v2 as imageio

            imageio.mimsave(str(self.path), self.held, format="GIF", duration=1000.0 / self.fps, loop=0)
            self.held = []
        os.chmod(self.path, 0o666 & ~_umask())
        _fsync(self.path)
        os.replace(self.path, target)
        _fsync(target.parent)
        self._cleanup.detach()
        _discard(None, self.folder, self.fd)

    def discard(self) -> None:
        self.held = []
        self._cleanup()


def _mp4_writer(path: Path, fps: float):
    """imageio's ffmpeg writer: H.264, yuv420p; ffmpeg starts at the first frame."""
    import imageio.v2 as imageio

    return imageio.get_writer(
        str(path),
        format="FFMPEG",
        mode="I",
        fps=fps,
        codec="libx264",
        quality=8,
        pixelformat="yuv420p",
        macro_block_size=16,
        ffmpeg_log_level="error",
    )


def _discard(writer, folder: Path, fd: int | None) -> None:
    """Stops ffmpeg, removes the temporary folder, releases its lock (errors ignored: cleanup)."""
    if writer is not None:
        try:
            writer.close()
        except Exception:
            pass
    shutil.rmtree(folder, ignore_errors=True)
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def _locked_temp_folder(path: Path) -> tuple[int | None, Path]:
    """Creates and locks `.NAME.XXXXXXXX.part/` beside `path`; returns (the locked fd, the folder).

    A sweeper in another process may remove the folder between its creation and the lock; then
    the name no longer means the locked folder, and another one is made."""
    for _ in range(8):
        folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
        if fcntl is None:
            return None, folder
        fd = os.open(folder, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.path.samestat(os.fstat(fd), os.stat(folder)):
                return fd, folder
        except FileNotFoundError:
            pass
        os.close(fd)
    raise OSError(f"could not create a temporary folder for {path} in {path.parent}")


def remove_stale_parts(folder: str | os.PathLike) -> list[Path]:
    """Removes the temporary folders that killed recordings left in `folder`; returns them.

    A folder counts as stale when its name is a recording's temporary name and no process holds
    its lock (the kernel drops a dead process's locks). Without `fcntl` nothing is removed."""
    if fcntl is None:
        return []
    removed = []
    for path in Path(folder).iterdir():
        if not PART_PATTERN.match(path.name):
            continue
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:  # gone meanwhile, or not a folder
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                shutil.rmtree(path)
                removed.append(path)
        except OSError:  # locked by a live writer, or removed meanwhile
            pass
        finally:
            os.close(fd)
    return removed


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray] | np.ndarray, fps: float = 16.0) -> Path:
    """Writes uint8 (H, W, 3) frames to `path` (.mp4 or .gif) through a `VideoWriter`; returns `path`.

    Nothing changes at `path` unless every frame is valid and the file is complete."""
    with VideoWriter(path, fps=fps) as writer:
        for frame in frames:
            writer.append(frame)
    return writer.path


def _fsync(path: Path) -> None:
    """Flushes a file's data, or a folder's entries, to the disk (a no-op for folders on Windows)."""
    if os.name == "nt" and path.is_dir():
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_video(path: str | os.PathLike) -> np.ndarray:
    """Reads every frame of an mp4/gif back: uint8 (T, H, W, 3)."""
    import imageio.v2 as imageio

    frames = [np.asarray(f)[..., :3] for f in imageio.mimread(str(path), memtest=False)]
    return np.stack(frames).astype(np.uint8)
