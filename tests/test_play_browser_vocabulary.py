"""The play page for worlds whose actions are not Yume's, in headless Chromium (skipped with a message
where Playwright or Chromium is missing, like test_play_browser.py): per component a row of choice
buttons labelled by name or number, each with its key; held keys, clicks and the arrows send
`{"action": [a0, ...]}`; the downloaded log is in the world's vocabulary and replays exactly."""

from __future__ import annotations

import contextlib
import json
import os

import numpy as np
import pytest
from test_play_browser import CHROMIUM_ARGS, WAIT_MS, chromium_path, decode_url, download, js, set_paused
from test_play_support import LEFT_STAY_RIGHT, make_other_env, other_world_dir

from yume_env.env.policies import ActionScript
from yume_env.play import serve

pytestmark = [pytest.mark.browser, pytest.mark.slow]


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


@contextlib.contextmanager
def world_page(browser, nvec, names=()):
    server = serve(
        env=make_other_env(nvec, names), model=other_world_dir(nvec, names), port=0, seed=7, max_steps_per_s=12
    )
    server.start_thread()
    page = browser.new_page(viewport={"width": 1180, "height": 780}, accept_downloads=True, bypass_csp=True)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(server.url)
        page.wait_for_function("window.yumePlay.received.length > 0 && window.yumePlay.token", timeout=WAIT_MS)
        yield page
        assert errors == [], f"JavaScript errors on the page: {errors}"
    finally:
        page.close()
        server.close()


def wait_text(page, text: str) -> None:
    """Until a chunk was generated with the action labelled `text`."""
    page.wait_for_function(f"window.yumePlay.status.action_text === {json.dumps(text)}", timeout=WAIT_MS)


def test_one_component_world_plays_by_digit_keys_clicks_and_arrows(browser, tmp_path):
    with world_page(browser, (3,), LEFT_STAY_RIGHT) as page:
        assert page.is_hidden("#move-pad") and page.is_hidden("#look-pad") and page.is_visible("#choices")
        buttons = page.locator("button.choice")
        assert buttons.all_text_contents() == ["left1", "stay2", "right3"]  # the name, then its key
        help_text = page.inner_text("#help-choices")
        assert "1…3" in help_text and "1 → 0" in help_text and page.is_hidden("#help-yume")
        page.keyboard.down("3")  # held: the third choice
        wait_text(page, "right")
        assert page.inner_text("#held-keys") == "3"
        page.keyboard.up("3")  # let go: the standing choice, 0 at first
        wait_text(page, "left")
        page.click("button.choice[data-choice='1']")  # a click sets the standing choice
        wait_text(page, "stay")
        page.keyboard.press("ArrowRight")  # the arrows cycle it
        wait_text(page, "right")
        assert js(page, "window.yumePlay.standing") == [2]
        page.keyboard.press("ArrowRight")
        wait_text(page, "left")
        set_paused(page, True)
        path = download(page, "#download-log", tmp_path)
        log = json.loads(path.read_text())
        assert log["action_nvec"] == [3] and all(len(a) == 1 for a in log["actions"])
        assert {"left", "stay", "right"} == set(log["action_text"])
        # every chunk the page received since the reset is the replay of the log, bit for bit
        script = ActionScript.load(path)
        env = make_other_env((3,), LEFT_STAY_RIGHT)
        _, info = env.reset(seed=script.seed)
        expected = [info["frames"]] + [env.step(a)[-1]["frames"] for a in script.actions]
        received = js(page, "window.yumePlay.received")
        for chunk in received[max(i for i, c in enumerate(received) if c["step"] == 0) :]:
            got = np.stack([decode_url(u) for u in chunk["frames"]])
            np.testing.assert_array_equal(got, expected[chunk["step"]][-len(got) :])


def test_two_component_world_has_a_key_row_per_component(browser):
    with world_page(browser, (4, 3)) as page:
        rows = page.locator("#choices .component")
        assert rows.count() == 2
        assert page.locator("#choices .label").all_text_contents() == [
            "component 0 · 4 choices · keys 1…4",
            "component 1 · 3 choices · keys Q…E",
        ]
        assert rows.nth(0).locator("button.choice").all_text_contents() == ["01", "12", "23", "34"]  # numbers, keys
        assert "One key row per component" in page.inner_text("#help-choices")
        page.keyboard.down("4")
        page.keyboard.down("e")
        wait_text(page, "3 2")
        page.keyboard.up("4")
        wait_text(page, "0 2")
        page.keyboard.up("e")
        page.click("#choices .component >> nth=1 >> button.choice[data-choice='1']")
        wait_text(page, "0 1")
        assert page.locator("button.choice.on").count() == 2
        if os.environ.get("YUME_CHOICES_SCREENSHOT"):
            page.screenshot(path=os.environ["YUME_CHOICES_SCREENSHOT"])
