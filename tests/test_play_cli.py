"""`yume-env play` as a user starts it: a subprocess that prints the URL and serves the page."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_env_support import tiny_world_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_cli_prints_the_url_and_serves_the_page():
    proc = subprocess.Popen(
        [sys.executable, "-m", "yume_env", "play", "--model", tiny_world_dir(), "--port", "0", "--seed", "1"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if "open http://" in line:
                url = line.split("open ", 1)[1].split()[0]
        assert url is not None, f"no URL printed; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=10) as reply:
            page = reply.read().decode()
        assert reply.status == 200 and "/static/play.js" in page
        with urllib.request.urlopen(url + "static/play.js", timeout=10) as reply:
            assert "EventSource" in reply.read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
