"""What a player of `yume-env play` sees across tabs and episodes, at the session and server level
(the page's side of the same is in test_play_browser.py): a new tab gets a running world, and an
ended episode stays ended until a reset."""

from __future__ import annotations

import json
import time
import urllib.request

import gymnasium as gym
import pytest
from test_env_support import tiny_world_dir

import yume_env  # noqa: F401  (registers the envs)
from yume_env.play import PlaySession, serve


def make_env(**kwargs):
    return gym.make("YumeWorld-v0", model=tiny_world_dir(), disable_env_checker=True, **kwargs)


@pytest.fixture
def server(one_thread):
    server = serve(env=make_env(), port=0, seed=2, max_steps_per_s=12)
    server.owner.grace_s = 0.0  # a tab's lease ends with its last request: the next tab may come at once
    server.start_thread()
    yield server
    server.close()


def post(server, path: str, body: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json", "X-Play-Session": server.session_token}
    if token:
        headers["X-Play-Token"] = token
    request = urllib.request.Request(server.url + path.lstrip("/"), json.dumps(body).encode(), headers)
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def test_a_new_tab_resumes_a_world_that_a_closed_tab_left_paused(server):
    first = post(server, "/api/claim", {})["token"]
    post(server, "/api/pause", {"paused": True}, first)
    assert server.session.current()["paused"] is True
    # the same tab reloading (its token kept in sessionStorage) finds the world as it left it
    assert post(server, "/api/claim", {"token": first})["token"] == first
    assert server.session.current()["paused"] is True
    # the tab is closed; another one opens the page
    second = post(server, "/api/claim", {})["token"]
    assert second != first
    assert server.session.current()["paused"] is False


def wait_for(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_an_ended_episode_stays_ended_until_a_reset(one_thread):
    session = PlaySession(make_env(max_episode_steps=2), seed=3, max_steps_per_s=0).start()
    try:
        session.set_watching(True)
        wait_for(lambda: session.current()["ended"])
        ended = session.current()
        assert ended["ended"] in ("terminated", "truncated") and ended["step"] <= 2
        after = session.hub.seq
        session.set_event("night falls")
        session.set_paused(True)
        session.set_paused(False)
        session.new_player()
        session.hold((1, 0))
        time.sleep(0.3)  # time for steps, were the world still stepping
        updates = [json.loads(text) for _, text in session.hub.wait(after, timeout=0.1)]
        assert updates and all(u["ended"] == ended["ended"] for u in updates)
        assert all(u["step"] == ended["step"] for u in updates), "the world stepped after its episode ended"
        session.reset(seed=4)
        status = session.current()
        assert status["ended"] == "" and status["step"] == 0 and status["seed"] == 4
    finally:
        session.close()
