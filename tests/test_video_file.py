"""Recordings are ordinary files: written atomically, with the user's umask (not mkstemp's 0600)."""

import os

import numpy as np

from yume_env.env.video import read_video, write_video


def test_written_video_follows_the_umask_and_reads_back(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_video(tmp_path / "clip.mp4", [np.full((32, 32, 3), 100, np.uint8)] * 3, fps=8)
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert read_video(path).shape[0] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temp file left behind
