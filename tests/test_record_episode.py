"""RecordEpisode and the video writer: every chunk frame lands in the file, atomically."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from test_env_support import tiny_world_dir

import yume_env  # noqa: F401
from yume_env.env.overlay import PANEL_H, panel
from yume_env.env.recording import RecordEpisode
from yume_env.env.video import read_video, write_video


def make(**kwargs):
    return gym.make("YumeWorld-v0", model=tiny_world_dir(), disable_env_checker=True, **kwargs)


def play(env, steps, seed=0):
    env.reset(seed=seed)
    for _ in range(steps):
        *_, terminated, truncated, _ = env.step(np.array([1, 1]))
        if terminated or truncated:
            break


@pytest.mark.slow
def test_recorded_mp4_has_every_chunk_frame(tmp_path):
    env = RecordEpisode(make(max_episode_steps=3), tmp_path)
    play(env, 3)
    env.close()
    assert [p.name for p in env.written] == ["episode-000000.mp4"]
    video = read_video(env.written[0])
    frames_per_step = env.unwrapped.frames_per_step
    assert video.shape == (1 + 3 * frames_per_step, 256 + PANEL_H, 256, 3)


def test_recorded_gif_without_overlay_holds_the_exact_upscaled_frames(tmp_path):
    env = RecordEpisode(make(), tmp_path / "run.gif", overlay=False, upscale=2)
    env.reset(seed=0)
    _, info0 = env.reset(seed=0)
    *_, info1 = env.step(np.array([1, 0]))
    env.close()
    video = read_video(tmp_path / "run.gif")
    expected = np.concatenate([info0["frames"], info1["frames"]]).repeat(2, axis=1).repeat(2, axis=2)
    assert video.shape == expected.shape
    assert np.abs(video.astype(int) - expected).mean() < 3  # gif palette quantisation only


@pytest.mark.slow
def test_each_episode_gets_its_own_file_and_no_temp_files_remain(tmp_path):
    env = RecordEpisode(make(max_episode_steps=1), tmp_path, video_format="gif", episode_trigger=lambda e: e != 1)
    for seed in range(3):
        play(env, 1, seed)
    env.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode-000000.gif", "episode-000002.gif"]


def test_overlay_panel_shows_which_keys_are_pressed():
    forward, left = panel(256, (1, 0), "", 1), panel(256, (2, 0), "", 1)
    still = panel(256, (0, 0), "", 1)
    assert not np.array_equal(forward, left) and not np.array_equal(forward, still)
    assert not np.array_equal(panel(256, (0, 1), "", 1), still)  # the camera grid lights up
    assert not np.array_equal(panel(256, None, "it starts to snow", 0), panel(256, None, "", 0))


def test_write_video_rejects_unknown_formats_and_bad_frames(tmp_path):
    with pytest.raises(ValueError, match=r"\.mp4 or \.gif"):
        write_video(tmp_path / "x.avi", [np.zeros((16, 16, 3), np.uint8)])
    with pytest.raises(ValueError, match="frame 1"):
        write_video(tmp_path / "x.mp4", [np.zeros((16, 16, 3), np.uint8), np.zeros((16, 32, 3), np.uint8)])
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "keep.gif"
    write_video(target, [np.full((16, 16, 3), 200, np.uint8)] * 2)
    before = target.read_bytes()
    with pytest.raises(ValueError):
        write_video(target, [np.zeros((16, 16, 3), np.float32)])
    assert target.read_bytes() == before


def test_records_the_simulator_env_too(tmp_path):
    env = RecordEpisode(gym.make("YumeSim-v0", max_episode_steps=2), tmp_path / "sim.mp4")
    _, info = env.reset(seed=0)
    counts = [len(info["frames"])]
    for _ in range(2):
        counts.append(len(env.step(np.array([1, 1]))[4]["frames"]))
    env.close()
    assert read_video(tmp_path / "sim.mp4").shape[0] == sum(counts)


@pytest.mark.parametrize("nvec", [(3,), (12, 3), (2, 2, 2)])
def test_a_world_of_other_actions_records_with_and_without_the_panel(tmp_path, nvec):
    """The panel draws Yume's keys only; any other vocabulary records its frames as they are."""
    from test_play_support import make_other_env

    from yume_env.env.recording import RecordEpisode

    for overlay in (True, False):
        env = RecordEpisode(make_other_env(nvec), tmp_path / f"{overlay}", overlay=overlay)
        env.reset(seed=0)
        for _ in range(2):
            env.step(env.action_space.sample())
        env.close()
        assert [p.suffix for p in env.written] == [".mp4"]
