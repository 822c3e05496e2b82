"""Recordings under stress: flat memory over long episodes, no temporary folder left by an exception
or Ctrl-C, and a SIGKILLed recording's temporary folder swept by the next recording."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from yume_env.env.recording import RecordEpisode
from yume_env.env.video import PART_PATTERN, VideoWriter, read_video, remove_stale_parts, write_video

REPO = Path(__file__).resolve().parents[1]


class FrameEnv(gym.Env):
    """A trivial env that reports two 64x64 frames per step in `info["frames"]`, like the worlds;
    it raises `fail_with` at step `fail_at`."""

    observation_space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    action_space = gym.spaces.MultiDiscrete([9, 9])

    def __init__(self, fail_at: int | None = None, fail_with: type[BaseException] = RuntimeError):
        self.t, self.fail_at, self.fail_with = 0, fail_at, fail_with

    def _info(self):
        frames = np.zeros((2, 64, 64, 3), np.uint8)
        frames[..., 0], frames[:, :, : 4 * (self.t % 16)] = (40 * self.t) % 256, 200
        return {"frames": frames, "event": "", "step": self.t}

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros((64, 64, 3), np.uint8), self._info()

    def step(self, action):
        self.t += 1
        if self.t == self.fail_at:
            raise self.fail_with(f"failed at step {self.t}")
        return np.zeros((64, 64, 3), np.uint8), 0.0, False, False, self._info()


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_recording_memory_stays_flat_from_n_to_4n_steps(tmp_path):
    env = RecordEpisode(FrameEnv(), tmp_path / "long.mp4")  # 256 x 288 frames with the panel: 0.42 MiB a step
    env.reset(seed=0)
    n = 20
    tracemalloc.start()
    try:
        for _ in range(n):
            env.step(np.array([1, 1]))
        at_n = tracemalloc.get_traced_memory()[0]
        for _ in range(3 * n):
            env.step(np.array([1, 1]))
        at_4n = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    env.close()
    growth_mib = (at_4n - at_n) / 2**20
    assert growth_mib < 2.0, f"recording memory grew {growth_mib:.1f} MiB over {3 * n} steps"  # kept frames: ~25 MiB
    assert read_video(tmp_path / "long.mp4").shape[0] == 2 * (1 + 4 * n)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_exception_mid_episode_leaves_no_temporary_file_and_no_video(tmp_path, error):
    env = RecordEpisode(FrameEnv(fail_at=4, fail_with=error), tmp_path, video_format="mp4")
    env.reset(seed=0)
    with pytest.raises(error):
        for _ in range(6):
            env.step(np.array([1, 0]))
    assert list(tmp_path.iterdir()) == []
    env.close()
    assert list(tmp_path.iterdir()) == [] and env.written == []


def test_discard_drops_the_episode_and_keeps_the_previous_file(tmp_path):
    target = tmp_path / "clip.gif"
    write_video(target, [np.full((16, 16, 3), 100, np.uint8)] * 2)
    before = target.read_bytes()
    env = RecordEpisode(FrameEnv(), target)
    env.reset(seed=0)
    env.step(np.array([1, 0]))
    assert len(hidden(tmp_path)) == 1  # the episode so far, in a hidden temporary folder
    env.discard()
    env.close()
    assert [p.name for p in tmp_path.iterdir()] == ["clip.gif"] and target.read_bytes() == before


def test_a_writer_that_is_never_closed_removes_its_file_when_collected(tmp_path):
    writer = VideoWriter(tmp_path / "lost.mp4")
    writer.append(np.zeros((32, 32, 3), np.uint8))
    assert len(hidden(tmp_path)) == 1
    del writer
    assert list(tmp_path.iterdir()) == []


def test_the_next_recording_sweeps_stale_temporary_files_but_not_live_ones(tmp_path):
    stale = tmp_path / ".old.mp4.abcd1234.part"
    stale.mkdir()
    (stale / "video.mp4").write_bytes(b"half a video")
    unrelated = tmp_path / ".notes.mp4"
    unrelated.write_bytes(b"a user's hidden file")
    live = VideoWriter(tmp_path / "live.mp4")
    live.append(np.zeros((32, 32, 3), np.uint8))  # starts a recording: sweeps the folder first
    assert not stale.exists() and unrelated.exists() and live.temporary_path.exists()
    assert remove_stale_parts(tmp_path) == []  # the live writer holds its lock
    live.append(np.zeros((32, 32, 3), np.uint8))
    assert live.close() == tmp_path / "live.mp4" and read_video(tmp_path / "live.mp4").shape[0] == 2
    assert hidden(tmp_path) == [".notes.mp4"]


KILLED_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from yume_env.env.video import VideoWriter

    writer = VideoWriter(sys.argv[1])
    for i in range(100_000):
        writer.append(np.full((32, 32, 3), i % 256, np.uint8))
        if i == 3:
            print(writer.temporary_path, flush=True)
    """
)


def test_a_sigkilled_recording_leaves_its_temporary_file_only_until_the_next_recording(tmp_path):
    target = tmp_path / "out" / "episode.mp4"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(target)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        part = Path(proc.stdout.readline().strip())  # the writer is mid-recording now
        assert part.name and PART_PATTERN.match(part.name) and part.exists(), proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert part.exists() and not target.exists()  # SIGKILL cannot be caught: the folder stays for now
    write_video(target, [np.zeros((32, 32, 3), np.uint8)] * 2)  # its lock died with the writer
    assert sorted(p.name for p in target.parent.iterdir()) == ["episode.mp4"]
