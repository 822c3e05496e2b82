"""Unit tests of the parts of `yume-env play` that need no model: input validation, the one-tab
lease, held keys, the update hub, frame encoding, the recording and the action-log format."""

from __future__ import annotations

import argparse
import json

import imageio.v3 as iio
import numpy as np
import pytest

from yume_env.cli import play as play_cli
from yume_env.env.policies import ActionScript
from yume_env.play import validate
from yume_env.play.controls import Controls
from yume_env.play.frames import decode_frame, encode_frame, fit_image, from_data_url, to_data_url
from yume_env.play.hub import Hub
from yume_env.play.owner import Owner, WorldBusy
from yume_env.play.recording import Recording
from yume_env.play.server import check_host, format_action_log


@pytest.mark.parametrize(
    "body",
    [
        {"action": [9, 0]},
        {"action": [0, -1]},
        {"action": [1.0, 0]},
        {"action": [True, 0]},
        {"action": "W"},
        {"action": [1]},
        {},
        [1, 0],
    ],
)
def test_bad_action_is_rejected_with_a_message(body):
    with pytest.raises(ValueError, match="action|JSON object"):
        validate.parse_action(body)


def test_good_action_is_returned_as_ints():
    assert validate.parse_action({"action": [5, 1]}) == (5, 1)


@pytest.mark.parametrize("body", [{"event": 3}, {"event": None}, {"event": "x" * 501}, {"event": "a\x00b"}])
def test_bad_event_is_rejected_with_a_message(body):
    with pytest.raises(ValueError, match="event"):
        validate.parse_event(body)


def test_event_is_stripped_and_empty_clears():
    assert validate.parse_event({"event": "  it starts to snow \n"}) == "it starts to snow"
    assert validate.parse_event({"event": ""}) == ""


@pytest.mark.parametrize("value, expected", [(None, None), ("", None), (7, 7), ("12", 12)])
def test_seed_accepts_ints_and_blank(value, expected):
    assert validate.parse_seed({"seed": value}) == expected


@pytest.mark.parametrize("value", [-1, 1.5, "abc", True, 2**63])
def test_bad_seed_is_rejected(value):
    with pytest.raises(ValueError, match="seed"):
        validate.parse_seed({"seed": value})


def test_second_tab_is_refused_while_first_streams():
    owner = Owner(grace_s=10.0)
    first = owner.claim()
    owner.stream_opened(first)
    with pytest.raises(WorldBusy, match="another browser tab"):
        owner.claim()
    with pytest.raises(WorldBusy):
        owner.check("someone-else")
    owner.check(first)


def test_lease_is_kept_for_a_reload_and_freed_after_grace():
    now = [0.0]
    owner = Owner(grace_s=5.0, clock=lambda: now[0])
    first = owner.claim()
    owner.stream_opened(first)
    owner.stream_closed()
    assert owner.claim(previous=first) == first  # the same tab reloading
    with pytest.raises(WorldBusy):
        owner.claim()  # another tab, within the grace period
    now[0] = 6.0
    second = owner.claim()
    assert second != first
    with pytest.raises(WorldBusy, match="took over"):
        owner.check(first)


def test_tap_between_chunks_is_latched_once():
    controls = Controls()
    controls.hold((1, 0))
    controls.hold((0, 0))
    assert controls.take() == (1, 0)
    assert controls.take() == (0, 0)


def test_held_action_repeats_every_chunk():
    controls = Controls()
    controls.hold((5, 1))
    assert [controls.take() for _ in range(3)] == [(5, 1)] * 3


def test_hub_delivers_updates_after_a_sequence_number():
    hub = Hub(keep=3)
    for i in range(5):
        hub.publish({"i": i})
    items = hub.wait(after=1, timeout=0.01)
    assert [json.loads(t)["i"] for _, t in items] == [2, 3, 4]  # only the newest 3 are kept
    assert hub.wait(after=hub.seq, timeout=0.01) == []


def test_png_frames_round_trip_exactly_through_data_urls():
    frame = np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    url = to_data_url(encode_frame(frame, "png"), "png")
    assert url.startswith("data:image/png;base64,")
    np.testing.assert_array_equal(decode_frame(from_data_url(url)), frame)


def test_uploaded_picture_is_cropped_and_resized_to_the_world():
    picture = np.zeros((100, 300, 4), dtype=np.uint8)
    picture[:, 100:200] = 255  # the centre square survives the crop
    out = fit_image(iio.imwrite("<bytes>", picture, extension=".png"), (64, 64))
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert out.min() >= 250


@pytest.mark.parametrize("data", [b"not an image", b""])
def test_unreadable_upload_is_rejected(data):
    with pytest.raises(ValueError, match="not a readable image"):
        fit_image(data, (64, 64))


def test_bad_data_url_is_rejected():
    with pytest.raises(ValueError, match="base64"):
        from_data_url("data:image/png;base64,@@@")


def test_recording_copy_is_a_branch_point():
    rec = Recording(seed=3, model=None, first_frame=b"f0")
    rec.add((1, 0), [b"a", b"b"])
    branch = rec.copy()
    rec.set_event("snow")
    rec.add((2, 0), [b"c", b"d"])
    assert branch.num_steps == 1 and branch.frames == [b"f0", b"a", b"b"] and branch.events == {}
    assert rec.num_steps == 2 and rec.events == {1: "snow"}


def test_action_log_loads_as_a_record_script(tmp_path):
    rec = Recording(seed=3, model="worlds/tiny", first_frame=b"f0")
    rec.set_event("fog")
    rec.add((1, 0), [b"a", b"b"])
    rec.set_event("not this one")
    rec.set_event("it starts to snow")  # the last event set before a step is the one used
    rec.add((5, 1), [b"c", b"d"])
    path = tmp_path / "log.json"
    path.write_text(format_action_log(rec.action_log()))
    script = ActionScript.load(path)
    np.testing.assert_array_equal(script.actions, [[1, 0], [5, 1]])
    assert script.events == {0: "fog", 1: "it starts to snow"}
    assert script.seed == 3 and script.event is None
    assert json.loads(path.read_text())["frames"] == 5


def test_picture_start_is_named_for_record_and_kept_inline(tmp_path):
    picture = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    rec = Recording(seed=2, model=None, first_frame=b"f0", image_png=encode_frame(picture))
    log = rec.action_log()
    assert log["image"] == "yume-play-start.png"
    np.testing.assert_array_equal(decode_frame(from_data_url(log["image_data"])), picture)
    path = tmp_path / "log.json"
    path.write_text(format_action_log(log))
    assert ActionScript.load(path).image == "yume-play-start.png"


def test_recording_mp4_has_every_frame(tmp_path):
    frames = [encode_frame(np.full((64, 64, 3), 40 * i, np.uint8)) for i in range(5)]
    rec = Recording(seed=0, model=None, first_frame=frames[0])
    rec.add((1, 0), frames[1:3])
    rec.add((1, 0), frames[3:5])
    path = rec.write_mp4(tmp_path / "play.mp4", fps=16)
    video = np.stack(list(iio.imiter(path)))
    assert video.shape[0] == 5 and video.shape[1:3] == (64, 64)


def test_action_log_text_is_plain_json():
    log = {"seed": 1, "model": "w", "events": [[0, 'é "x"']], "actions": [[1, 0], [0, 2]], "image": None}
    assert json.loads(format_action_log(log)) == log
    assert json.loads(format_action_log({"seed": 1, "actions": []}))["actions"] == []


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::"])
def test_remote_host_needs_allow_remote(host):
    with pytest.raises(ValueError, match="--allow-remote"):
        check_host(host, allow_remote=False)
    check_host(host, allow_remote=True)


def test_cli_refuses_remote_host_before_loading_a_model(capsys):
    parser = argparse.ArgumentParser()
    play_cli.add_arguments(parser)
    args = parser.parse_args(["--host", "0.0.0.0", "--model", "does-not-exist"])
    assert play_cli.run(args) == 2
    assert "--allow-remote" in capsys.readouterr().err


def test_cli_reports_a_busy_port_before_loading_a_model(capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        parser = argparse.ArgumentParser()
        play_cli.add_arguments(parser)
        args = parser.parse_args(["--port", str(busy.getsockname()[1]), "--model", "does-not-exist"])
        assert play_cli.run(args) == 1
    assert "is in use" in capsys.readouterr().err
