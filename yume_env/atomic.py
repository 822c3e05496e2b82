"""Atomic file writes: a reader sees the old file or the new one, never half a file.

    atomic_write(path, lambda tmp: np.save(tmp, array))        # any writer that takes a path
    atomic_write_text(path, text, durable=True)                # text; fsynced (checkpoints)

The writer fills a hidden temporary file beside `path`, named `.NAME.XXXXXXXX.tmp.SUFFIX` (the
suffix kept, so format-sniffing writers such as numpy, imageio or matplotlib still work), which
then replaces `path` with `os.replace`; on any error it is removed. `durable=True` also fsyncs the
file before the rename and the folder after it, so the write survives a power loss. Imports
nothing of the package.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def temp_name_glob(name: str) -> str:
    """The glob that matches the temporary files of `name` left by killed writes."""
    return f".{name}.*.tmp*"


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object], durable: bool = False) -> Path:
    """Runs `write(tmp)` on a temporary path beside `path`, then renames it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; these are ordinary outputs
        if durable:
            fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if durable:
        fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, durable: bool = False) -> Path:
    """Writes `text` (UTF-8) to `path` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), durable=durable)


def fsync_file(path: str | os.PathLike) -> None:
    """Flushes a written file's data to the disk (a crash after this keeps its bytes)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flushes a folder's entries (files created, renamed or removed in it) to the disk.

    A no-op on Windows, where folders cannot be opened for fsync (NTFS journals renames)."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
