"""`yume-env record`: writes the video and a JSON log that replays to identical frames; an interrupt
writes nothing."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
from test_env_support import tiny_world_dir

from yume_env.cli import main
from yume_env.env.video import read_video


def test_record_writes_video_and_log_that_replays_identically(tmp_path, capsys):
    out, log = tmp_path / "episode.gif", tmp_path / "actions.json"
    rc = main(
        [
            "record",
            "--model",
            tiny_world_dir(),
            "--actions",
            "W,W+A →,↑",
            "--event-at",
            "1:night falls",
            "--seed",
            "3",
            "--out",
            str(out),
            "--log",
            str(log),
            "--no-overlay",
            "--upscale",
            "1",
        ]
    )
    assert rc == 0 and f"wrote {out}" in capsys.readouterr().out
    data = json.loads(log.read_text())
    assert data["actions"] == [[1, 0], [5, 1], [0, 3]] and data["events"] == [[1, "night falls"]] and data["seed"] == 3
    replay = tmp_path / "replay.gif"
    assert (
        main(
            [
                "record",
                "--model",
                tiny_world_dir(),
                "--agent",
                str(log),
                "--out",
                str(replay),
                "--no-overlay",
                "--upscale",
                "1",
            ]
        )
        == 0
    )
    a, b = read_video(out), read_video(replay)
    assert a.shape == (1 + 3 * 2, 64, 64, 3)
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_record_default_tour_writes_an_mp4_with_every_frame(tmp_path):
    out = tmp_path / "tour.mp4"
    assert main(["record", "--model", tiny_world_dir(), "--steps", "4", "--out", str(out)]) == 0
    video = read_video(out)
    assert video.shape[0] == 1 + 4 * 2 and video.shape[2] == 256
    assert json.loads(out.with_suffix(".json").read_text())["action_text"][0] == "W ·"


def test_tour_plan_walks_turns_looks_and_triggers_an_event():
    from yume_env.env.policies import builtin_script

    script = builtin_script("tour", None, seed=0)
    keys, cams = set(script.actions[:, 0]), set(script.actions[:, 1])
    assert len(script.actions) == 48 and 1 in keys and {1, 2, 3, 4} <= cams and script.events


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--event-at", "soon:rain"], "STEP:TEXT"),
        (["--agent", "wander"], "random, forward, lookaround, tour"),
        (["--actions", "W,Q"], "unknown camera move 'Q'"),
        (["--model", "no/such/world"], "does not exist"),
    ],
)
def test_record_reports_bad_arguments_and_exits_2(tmp_path, capsys, argv, message):
    argv = ["--model", tiny_world_dir(), *argv] if "--model" not in argv else argv
    assert main(["record", *argv, "--out", str(tmp_path / "x.mp4")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_record_from_a_start_image_replays_from_its_log(tmp_path):
    import imageio.v2 as imageio
    from test_env_support import start_views

    png = tmp_path / "start.png"
    imageio.imwrite(png, start_views((64, 64))[2])
    first, replay = tmp_path / "a.gif", tmp_path / "b.gif"
    common = ["--model", tiny_world_dir(), "--no-overlay", "--upscale", "1"]
    assert main(["record", *common, "--image", str(png), "--actions", "W", "--out", str(first)]) == 0
    assert main(["record", *common, "--agent", str(first.with_suffix(".json")), "--out", str(replay)]) == 0
    a, b = read_video(first), read_video(replay)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a[0].astype(int) - start_views((64, 64))[2]).mean() < 3


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_record_writes_nothing_and_leaves_no_temporary_folder(
    tmp_path, capsys, monkeypatch, signum, code
):
    from yume_env.env.recording import RecordEpisode

    step, seen = RecordEpisode.step, []

    def step_then_signal(self, action):
        result = step(self, action)
        seen.append([p.name for p in tmp_path.iterdir() if p.name.startswith(".")])
        if len(seen) == 3:  # mid-episode, with frames in the hidden temporary folder
            assert seen[-1]
            os.kill(os.getpid(), signum)
        return result

    monkeypatch.setattr(RecordEpisode, "step", step_then_signal)
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "episode.mp4"
    assert main(["record", "--model", tiny_world_dir(), "--steps", "6", "--out", str(out)]) == code
    assert f"interrupted by {signal.Signals(signum).name}" in capsys.readouterr().err
    assert len(seen) == 3 and list(tmp_path.iterdir()) == []  # no video, no log, nothing hidden
    assert signal.getsignal(signal.SIGTERM) is before  # the handler was put back


def test_the_action_log_goes_beside_the_video_under_its_name_and_the_help_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "videos" / "walk.gif"
    out.parent.mkdir()
    assert (
        main(
            [
                "record",
                "--model",
                tiny_world_dir(),
                "--actions",
                "W",
                "--out",
                str(out),
                "--no-overlay",
                "--upscale",
                "1",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.parent.iterdir()) == ["walk.gif", "walk.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["videos"]  # nothing lands in the working folder
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["record", "--help"])
    assert "(episode.mp4 -> episode.json)" in " ".join(capsys.readouterr().out.split())
