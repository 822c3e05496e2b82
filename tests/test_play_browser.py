"""End to end: `yume-env play` driven in headless Chromium (Playwright with the system browser).

The tiny random world is served on a free port; the page is loaded, W is held for a few chunks, an
event is typed, and the frames the page received are compared bit for bit with a replay of the
downloaded action log on the CPU. Skipped with a message where Playwright or Chromium is missing.
Set YUME_SAVE_SCREENSHOT=1 to write the screenshot to docs/play.png, and YUME_PLAY_MODEL=DIR to play
another world than the tiny random one (e.g. the trained default world for that screenshot).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
from test_env_support import tiny_world_dir

import yume_env  # noqa: F401  (registers the envs)
from yume_env.cli import main as cli_main
from yume_env.env.policies import ActionScript
from yume_env.play import serve

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
]
EVENT = "it starts to snow"
WAIT_MS = 20_000


def chromium_path() -> str | None:
    for candidate in (os.environ.get("YUME_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def world_dir() -> str:
    """The tiny random world, or YUME_PLAY_MODEL (e.g. the trained default world, for the screenshot)."""
    return os.environ.get("YUME_PLAY_MODEL") or tiny_world_dir()


def make_env(**kwargs):
    return gym.make("YumeWorld-v0", model=world_dir(), disable_env_checker=True, **kwargs)


@pytest.fixture(scope="module")
def server():
    server = serve(env=make_env(), model=world_dir(), port=0, seed=11, max_steps_per_s=12)
    server.start_thread()
    yield server
    server.close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs `pip install playwright`")
    path = chromium_path()
    if path is None:
        pytest.skip("no headless Chromium: install Debian's `chromium` (apt-get install chromium) or set YUME_CHROMIUM")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(server, browser):
    # bypass_csp: the page forbids eval, which Playwright's wait_for_function uses
    page = browser.new_page(viewport={"width": 1180, "height": 780}, accept_downloads=True, bypass_csp=True)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)
    page.wait_for_function("window.yumePlay.received.length > 0 && window.yumePlay.token", timeout=WAIT_MS)
    yield page
    assert errors == [], f"JavaScript errors on the page: {errors}"
    page.close()


def js(page, expression: str):
    return page.evaluate(expression)


def wait_steps(page, at_least: int) -> None:
    page.wait_for_function(f"window.yumePlay.status.step >= {at_least}", timeout=WAIT_MS)


def wait_action(page, text: str) -> None:
    """Until a chunk was generated with the action `text` (the server echoes the action it used)."""
    page.wait_for_function(f"window.yumePlay.status.action_text === {json.dumps(text)}", timeout=WAIT_MS)


def set_paused(page, paused: bool) -> None:
    if bool(js(page, "window.yumePlay.status.paused")) != paused:
        page.click("#pause")
    page.wait_for_function(f"window.yumePlay.status.paused === {str(paused).lower()}", timeout=WAIT_MS)


def decode_url(url: str) -> np.ndarray:
    return iio.imread(base64.b64decode(url.split(",", 1)[1]), extension=".png")[..., :3]


def replay(script: ActionScript) -> list[np.ndarray]:
    """The frames of each step (index 0: the reset) when `yume-env record --agent` replays the log."""
    env = make_env()
    options = {}
    if script.event is not None:
        options["event"] = script.event
    if script.image:  # as record reads it: a file relative to the working directory
        options["image"] = np.asarray(iio.imread(script.image))[..., :3].astype(np.uint8)
    _, info = env.reset(seed=script.seed, options=options or None)
    frames = [info["frames"]]
    for step, action in enumerate(script.actions):
        if step in script.events:
            env.unwrapped.set_event(script.events[step])
        *_, info = env.step(action)
        frames.append(info["frames"])
    return frames


def assert_page_matches_replay(page, script: ActionScript) -> list[np.ndarray]:
    """Every chunk the page received since the log's reset equals the replay's frames of that step."""
    expected = replay(script)
    received = js(page, "window.yumePlay.received")
    since_reset = max(i for i, c in enumerate(received) if c["step"] == 0)
    chunks = received[since_reset:]
    for chunk in chunks:
        want = expected[chunk["step"]][-len(chunk["frames"]) :]
        got = np.stack([decode_url(u) for u in chunk["frames"]])
        np.testing.assert_array_equal(got, want, err_msg=f"frames of step {chunk['step']} differ from the replay")
    assert chunks[-1]["step"] == len(script.actions), ([c["step"] for c in chunks], len(script.actions))
    return expected


def download(page, selector: str, tmp_path: Path) -> Path:
    with page.expect_download() as info:
        page.click(selector)
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    return target


def test_page_streams_frames_shows_state_and_its_log_replays_exactly(page, tmp_path):
    start = js(page, "window.yumePlay.status.step")
    page.keyboard.down("w")
    wait_action(page, "W ·")
    wait_steps(page, js(page, "window.yumePlay.status.step") + 2)
    assert "held" in page.get_attribute("kbd[data-key=KeyW]", "class")
    assert page.inner_text("#action-text") == "W ·"
    page.keyboard.up("w")

    page.fill("#event-input", EVENT)
    page.press("#event-input", "Enter")
    page.wait_for_function(f"window.yumePlay.status.event === {json.dumps(EVENT)}", timeout=WAIT_MS)
    page.keyboard.down("w")
    page.keyboard.down("ArrowRight")
    wait_action(page, "W →")
    shot = tmp_path / "play.png"
    page.screenshot(path=str(shot))
    if os.environ.get("YUME_SAVE_SCREENSHOT") == "1":
        shutil.copyfile(shot, REPO / "docs" / "play.png")
    page.keyboard.up("ArrowRight")
    page.keyboard.up("w")
    set_paused(page, True)
    assert shot.stat().st_size > 10_000

    # the page shows what the env reports
    status = js(page, "window.yumePlay.status")
    assert page.inner_text("#step") == str(status["step"]) and status["step"] >= start + 3, (status, start)
    assert EVENT in page.inner_text("#event")
    assert page.inner_text("#recorded") == f"{status['recorded_steps']} steps"
    assert "chunks" in page.inner_text("#memory")
    received = js(page, "window.yumePlay.received")
    # the screen ends on the newest frame (frames of a chunk are spread over the chunk's time)
    page.wait_for_function(
        "document.getElementById('frame').src === window.yumePlay.received.at(-1).frames.at(-1)", timeout=WAIT_MS
    )
    assert js(page, "window.yumePlay.framesShown") >= 5
    assert received[0]["frames"][0] != received[-1]["frames"][-1], "the frames never changed"

    # the downloaded log replays to the frames the page showed, bit for bit
    script = ActionScript.load(download(page, "#download-log", tmp_path))
    assert len(script.actions) == status["recorded_steps"] == status["step"]
    assert (script.actions == [1, 0]).all(axis=1).sum() >= 3, script.actions.tolist()
    assert EVENT in script.events.values()
    expected = assert_page_matches_replay(page, script)
    assert len([c for c in received if c["step"] > 0]) >= 5

    # the video holds every frame of the branch
    video = np.stack(list(iio.imiter(download(page, "#download-mp4", tmp_path))))
    assert len(video) == 1 + len(script.actions) * len(expected[1])

    # and `yume-env record --agent` takes the log as it is
    log = tmp_path / "yume-play-actions.json"
    out = tmp_path / "replay.mp4"
    argv = ["record", "--model", world_dir(), "--agent", str(log), "--out", str(out), "--no-overlay", "--upscale", "1"]
    assert cli_main(argv) == 0
    assert len(list(iio.imiter(out))) == len(video)


def test_second_tab_is_refused_with_a_message(page, browser, server):
    other = browser.new_page(bypass_csp=True)
    other.goto(server.url)
    other.wait_for_selector("#banner:not([hidden])", timeout=WAIT_MS)
    assert "another browser tab" in other.inner_text("#banner")
    assert js(other, "window.yumePlay.received.length") == 0  # it sees nothing of the first tab's world
    other.close()


def test_branch_restore_returns_to_the_saved_step(page):
    set_paused(page, True)
    page.click("#save-branch")
    page.wait_for_selector("#branches li button", timeout=WAIT_MS)
    saved = js(page, "window.yumePlay.branches.at(-1)")
    set_paused(page, False)
    wait_steps(page, saved["step"] + 2)
    set_paused(page, True)
    page.click(f"#branches button[data-branch='{saved['id']}']")
    page.wait_for_function(
        f"window.yumePlay.status.step === {saved['step']} && window.yumePlay.status.recorded_steps === {saved['step']}",
        timeout=WAIT_MS,
    )


def test_reset_with_a_seed_starts_a_new_recording(page):
    set_paused(page, True)  # else the next step can land between the two reads below (run alone, it did)
    page.fill("#seed-input", "5")
    page.click("#reset")
    page.wait_for_function("window.yumePlay.status.seed === 5 && window.yumePlay.status.step === 0", timeout=WAIT_MS)
    assert page.inner_text("#recorded") == "0 steps"


def test_reset_from_an_uploaded_picture_replays_with_the_picture(page, tmp_path, monkeypatch):
    picture = np.zeros((120, 90, 3), np.uint8)
    picture[:, :, 1] = 200
    picture[40:80, 30:60] = (220, 60, 40)
    path = tmp_path / "upload.png"
    iio.imwrite(path, picture)
    set_paused(page, False)
    page.set_input_files("#image-input", str(path))
    page.wait_for_function("/upload.png/.test(document.getElementById('message').textContent)", timeout=WAIT_MS)
    page.keyboard.down("w")
    wait_steps(page, 2)
    page.keyboard.up("w")
    set_paused(page, True)
    assert page.is_visible("#download-start")

    # saved side by side, the log and the picture replay like `yume-env record --agent` does
    log = download(page, "#download-log", tmp_path)
    download(page, "#download-start", tmp_path)
    assert json.loads(log.read_text())["image"] == "yume-play-start.png"
    monkeypatch.chdir(tmp_path)
    script = ActionScript.load(log)
    first = assert_page_matches_replay(page, script)[0][0]
    # the world started from the picture, center-cropped and resized to 64x64 (the block's inside)
    np.testing.assert_allclose(first[22:42, 26:38], np.broadcast_to((220, 60, 40), (20, 12, 3)), atol=3)


@pytest.mark.parametrize(
    "route, body, message",
    [
        ("/api/action", {"action": [9, 0]}, "action must be two integers"),
        ("/api/action", {"action": [1.5, 0]}, "'action' must be two integers"),
        ("/api/event", {"event": 42}, "'event' must be a string"),
        ("/api/reset", {"seed": -3}, "'seed' must be an integer"),
        ("/api/reset", {"image": "data:image/png;base64,aGVsbG8="}, "not a readable image"),
        ("/api/branch/restore", {"id": 999}, "no saved branch with id 999"),
    ],
)
def test_bad_input_from_the_page_answers_400_with_a_message(page, server, route, body, message):
    token = js(page, "window.yumePlay.token")
    status, reply = post(server.url + route.lstrip("/"), body, token, js(page, "window.yumePlay.session"))
    assert status == 400 and message in reply["error"]


def test_requests_without_the_lease_are_refused(server):
    status, reply = post(server.url + "api/action", {"action": [1, 0]}, "not-the-owner", server.session_token)
    assert status == 409 and "reload" in reply["error"]


def test_the_page_holds_the_session_token_and_a_fetch_without_it_is_refused(page, server):
    assert js(page, "window.yumePlay.session") == server.session_token
    status = js(
        page,
        """fetch('/api/pause', {method: 'POST', headers: {'Content-Type': 'application/json',
        'X-Play-Token': window.yumePlay.token}, body: '{"paused": true}'}).then(r => r.status)""",
    )
    assert status == 403


def post(url: str, body: dict, token: str, session: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "X-Play-Token": token, "X-Play-Session": session},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@contextlib.contextmanager
def own_server(**env_kwargs):
    """A server for one test, whose lease ends with its tab (no grace period)."""
    server = serve(env=make_env(**env_kwargs), model=world_dir(), port=0, seed=3, max_steps_per_s=12)
    server.owner.grace_s = 0.0
    server.start_thread()
    try:
        yield server
    finally:
        server.close()


def open_page(browser, server):
    page = browser.new_page(viewport={"width": 1180, "height": 780}, bypass_csp=True)
    page.goto(server.url)
    page.wait_for_function("window.yumePlay.received.length > 0 && window.yumePlay.token", timeout=WAIT_MS)
    return page


def test_a_new_tab_resumes_a_world_that_a_closed_tab_left_paused(browser):
    with own_server() as server:
        first = open_page(browser, server)
        set_paused(first, True)
        first.close()
        second = open_page(browser, server)  # connects once the server sees the first tab gone
        second.wait_for_function("window.yumePlay.status.paused === false", timeout=WAIT_MS)
        wait_steps(second, js(second, "window.yumePlay.status.step") + 1)
        assert second.inner_text("#connection") == "live"
        assert second.inner_text("#pause") == "Pause (P)"
        second.close()


def test_an_ended_episode_stays_on_screen_with_a_reset_button_until_reset(browser):
    with own_server(max_episode_steps=3) as server:
        page = open_page(browser, server)
        page.wait_for_selector("#stopped:not([hidden])", timeout=WAIT_MS)
        assert "Episode truncated at step 3" in page.inner_text("#stopped-text")
        assert page.inner_text("#connection") == "episode truncated"
        # later messages go to the message line; the notice and the badge stay
        page.fill("#event-input", EVENT)
        page.press("#event-input", "Enter")
        page.wait_for_function(
            "/from the next chunk/.test(document.getElementById('message').textContent)", timeout=WAIT_MS
        )
        page.keyboard.down("w")
        page.keyboard.up("w")
        set_paused(page, True)
        set_paused(page, False)
        assert page.is_visible("#stopped") and "Episode truncated" in page.inner_text("#stopped-text")
        assert page.inner_text("#connection") == "episode truncated"
        box = page.locator("#stopped-reset").bounding_box()  # the Reset button is in view
        assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= 780
        set_paused(page, True)  # so that the new episode cannot end again before the checks below
        page.click("#stopped-reset")
        page.wait_for_function(
            "window.yumePlay.status.step === 0 && window.yumePlay.status.ended === ''", timeout=WAIT_MS
        )
        assert page.is_hidden("#stopped") and page.inner_text("#connection") == "paused"
        page.close()
