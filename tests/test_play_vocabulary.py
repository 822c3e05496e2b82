"""`yume-env play` and its action log for a world whose actions are not Yume's keys x camera moves
(issue 30 item 2): the config names the vocabulary, actions are checked against it, the session steps
and labels them, and the downloaded log replays with `yume-env record --agent` (the page's side is in
test_play_browser_vocabulary.py)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from test_play_support import LEFT_STAY_RIGHT, make_other_env, other_world_dir

from yume_env.cli import main
from yume_env.env.policies import ActionScript, builtin_script
from yume_env.env.video import read_video
from yume_env.play import PlaySession, serve, validate
from yume_env.play.controls import Controls
from yume_env.play.frames import decode_frame
from yume_env.play.recording import Recording
from yume_env.play.server import format_action_log
from yume_env.vocabulary import YUME, ActionVocabulary

ONE = ActionVocabulary((3,), LEFT_STAY_RIGHT)
TWO = ActionVocabulary((4, 3))


# ---- units ---------------------------------------------------------------------------------------
def test_actions_are_checked_against_the_vocabulary():
    assert validate.parse_action({"action": [2]}, ONE) == (2,)
    assert validate.parse_action({"action": [3, 2]}, TWO) == (3, 2)
    assert validate.parse_action({"action": [8, 8]}) == (8, 8)  # Yume's by default
    for body, vocab in [
        ({"action": [3]}, ONE),
        ({"action": 1}, ONE),
        ({"action": [1, 0]}, ONE),
        ({"action": [True]}, ONE),
        ({"action": [1.0]}, ONE),
        ({"action": [4, 0]}, TWO),
        ({"action": [0, -1]}, TWO),
        ({"action": [1]}, TWO),
    ]:
        with pytest.raises(ValueError, match=rf"action'? must be .* nvec {list(vocab.nvec)}".replace("[", r"\[")):
            validate.parse_action(body, vocab)
    with pytest.raises(ValueError, match=r"one integer \[a0 in \[0, 3\)\].*component 0 is 3"):
        validate.parse_action({"action": [3]}, ONE)


def test_controls_hold_any_number_of_components_and_latch_any_change():
    controls = Controls(1)
    assert controls.held == (0,) and controls.take() == (0,)  # nothing held: all zeros
    controls.hold((2,))
    controls.hold((0,))  # a tap between two chunks
    assert [controls.take() for _ in range(2)] == [(2,), (0,)]
    controls.hold((1,))
    assert [controls.take() for _ in range(3)] == [(1,)] * 3  # held: every chunk
    controls.hold((0,))
    controls.hold((1,))  # let go and took again between two chunks: the change is seen once
    assert [controls.take() for _ in range(2)] == [(0,), (1,)]
    three = Controls(3)
    three.hold((1, 0, 2))
    three.release()
    assert three.held == (0, 0, 0) and three.take() == (0, 0, 0)


def test_the_log_of_another_world_records_its_vocabulary_and_loads(tmp_path):
    rec = Recording(seed=4, model="worlds/lsr", first_frame=b"f0", vocabulary=ONE)
    rec.add((2,), [b"a"])
    rec.set_event("fog")
    rec.add((0,), [b"b"])
    log = rec.action_log()
    assert log["action_nvec"] == [3] and log["actions"] == [[2], [0]] and log["action_text"] == ["right", "left"]
    path = tmp_path / "log.json"
    path.write_text(format_action_log(log))
    script = ActionScript.load(path)
    assert script.vocabulary.nvec == (3,) and script.events == {1: "fog"} and script.seed == 4
    np.testing.assert_array_equal(script.actions, [[2], [0]])
    # hand-written: bare integers for one component
    path.write_text(json.dumps({"action_nvec": [3], "actions": [0, 2, 1]}))
    np.testing.assert_array_equal(ActionScript.load(path).actions, [[0], [2], [1]])
    # Yume's logs (no action_nvec) load as before
    path.write_text(json.dumps({"actions": [[1, 0], "W+A →"]}))
    assert ActionScript.load(path).vocabulary == YUME


@pytest.mark.parametrize(
    "data, message",
    [
        ({"action_nvec": [3], "actions": [[3]]}, r"row 0 is \[3\]"),
        ({"action_nvec": [3], "actions": [[1, 1]]}, r"action 0: must be 1 integer"),
        ({"action_nvec": [3], "actions": ["right"]}, r"action 0: must be 1 integer"),
        ({"action_nvec": [0], "actions": []}, r"'action_nvec' must be a list of positive integers"),
        ({"actions": [[0]]}, r"action_nvec"),  # not Yume's pairs: the message says how to name another vocabulary
    ],
)
def test_bad_logs_of_another_world_are_refused_with_a_message(tmp_path, data, message):
    path = tmp_path / "log.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message):
        ActionScript.load(path)


def test_the_random_agent_draws_from_the_vocabulary_and_the_walks_are_yumes():
    script = builtin_script("random", 40, seed=0, vocabulary=TWO)
    assert script.actions.shape == (40, 2) and set(script.actions[:, 0]) == {0, 1, 2, 3}
    assert set(script.actions[:, 1]) == {0, 1, 2}
    with pytest.raises(ValueError, match=r"tour agent walks Yume's keys.*action_nvec \[3\]"):
        builtin_script("tour", None, seed=0, vocabulary=ONE)


# ---- the server and the session ------------------------------------------------------------------
def post(server, path: str, body, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", "X-Play-Session": server.session_token}
    if token:
        headers["X-Play-Token"] = token
    request = urllib.request.Request(server.url + path.lstrip("/"), json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_server_sends_the_vocabulary_and_checks_actions_against_it(one_thread):
    server = serve(env=make_other_env((3,), LEFT_STAY_RIGHT), port=0, seed=1, max_steps_per_s=0)
    server.start_thread()
    try:
        status, claimed = post(server, "/api/claim", {})
        assert status == 200
        token, config = claimed["token"], claimed["config"]
        assert config["vocabulary"] == {"nvec": [3], "names": [["left", "stay", "right"]], "is_yume": False}
        assert post(server, "/api/action", {"action": [2]}, token) == (200, {"action": [2], "action_text": "right"})
        assert server.session.controls.held == (2,)
        for bad in ([3], [1, 0], 2, ["right"]):
            status, reply = post(server, "/api/action", {"action": bad}, token)
            assert status == 400 and "nvec [3]" in reply["error"], reply
        assert server.session.current()["action_text"] == "left"  # the fresh status: all zeros, named
    finally:
        server.close()


def wait_for(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def play(session: PlaySession, plan: list[tuple[tuple[int, ...], int]]) -> None:
    """Holds each action until the world has taken that many more steps, then pauses."""
    session.set_watching(True)
    for action, steps in plan:
        session.hold(action)
        target = session.current()["step"] + steps
        wait_for(lambda: session.current()["step"] >= target)
    session.set_paused(True)


def test_a_played_episode_of_a_one_component_world_replays_exactly_with_record(one_thread, tmp_path):
    world = other_world_dir((3,), LEFT_STAY_RIGHT)
    session = PlaySession(make_other_env((3,), LEFT_STAY_RIGHT), model_name=world, seed=5, max_steps_per_s=0).start()
    try:
        play(session, [((2,), 2), ((1,), 1)])
        assert session.current()["action_text"] in ("stay", "right")
        log = session.action_log()
        frames = [decode_frame(f) for f in session.recording_copy().frames]
    finally:
        session.close()
    assert log["action_nvec"] == [3] and log["actions"][0] == [2] and {tuple(a) for a in log["actions"]} <= {(1,), (2,)}
    assert log["action_text"][0] == "right"
    path = tmp_path / "yume-play-actions.json"
    path.write_text(format_action_log(log))
    # the world itself, replayed from the log, gives the frames the page was sent (PNG: bit for bit)
    script = ActionScript.load(path)
    env = make_other_env((3,), LEFT_STAY_RIGHT)
    _, info = env.reset(seed=script.seed)
    replayed = [info["frames"][-1]]
    for action in script.actions:
        replayed.extend(env.step(action)[-1]["frames"])
    np.testing.assert_array_equal(np.stack(frames), np.stack(replayed))
    # and `yume-env record --agent` replays the log in that world
    out, again = tmp_path / "replay.gif", tmp_path / "replay.json"
    assert (
        main(
            [
                "record",
                "--model",
                world,
                "--agent",
                str(path),
                "--out",
                str(out),
                "--log",
                str(again),
                "--no-overlay",
                "--upscale",
                "1",
            ]
        )
        == 0
    )
    written = json.loads(again.read_text())
    assert written["actions"] == log["actions"] and written["action_nvec"] == [3]
    assert written["action_text"] == log["action_text"] and written["seed"] == log["seed"]
    assert read_video(out).shape[0] == len(frames)


def test_a_two_component_world_is_held_labelled_and_recorded_in_its_vocabulary(one_thread, tmp_path):
    session = PlaySession(make_other_env((4, 3)), seed=2, max_steps_per_s=0).start()
    try:
        play(session, [((3, 2), 1)])
        assert session.current()["action"] == [3, 2] and session.current()["action_text"] == "3 2"
        log = session.action_log()
    finally:
        session.close()
    assert log["action_nvec"] == [4, 3] and log["actions"][0] == [3, 2] and log["model"] == "default"
    out = tmp_path / "random.gif"
    assert (
        main(
            [
                "record",
                "--model",
                other_world_dir((4, 3)),
                "--agent",
                "random",
                "--steps",
                "2",
                "--out",
                str(out),
                "--no-overlay",
                "--upscale",
                "1",
            ]
        )
        == 0
    )
    assert json.loads(out.with_suffix(".json").read_text())["action_nvec"] == [4, 3]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--actions", "W,W"], "--actions takes Yume's action texts; this world's actions are action_nvec [3]"),
        (["--agent", "tour"], "tour agent walks Yume's keys"),
        (["--agent", "LOG"], "holds actions for action_nvec [9, 9], but this world's actions are action_nvec [3]"),
    ],
)
def test_record_explains_actions_that_are_not_the_worlds(one_thread, tmp_path, capsys, argv, message):
    log = tmp_path / "yume.json"
    log.write_text(json.dumps({"actions": [[1, 0]]}))
    argv = [str(log) if a == "LOG" else a for a in argv]
    out = tmp_path / "x.gif"
    assert main(["record", "--model", other_world_dir((3,), LEFT_STAY_RIGHT), *argv, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
