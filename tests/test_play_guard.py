"""The play server against other origins and bad clients: each attack played on a live server on
127.0.0.1 (the tiny random world), with raw HTTP so that every header is the test's choice.

Covers: the Host allow-list (DNS rebinding), Origin / Sec-Fetch-Site on POSTs, the session token,
JSON error replies without paths for malformed requests, the read timeout and the listen backlog.
"""

from __future__ import annotations

import http.client
import json
import selectors
import socket
import time
from pathlib import Path

import gymnasium as gym
import pytest
from test_env_support import tiny_world_dir

import yume_env
from yume_env.play import guard, serve
from yume_env.play.server import LISTEN_BACKLOG, REQUEST_TIMEOUT_S, PlayHandler, PlayServer, check_host

INSTALL_DIR = str(Path(yume_env.__file__).resolve().parent.parent)


@pytest.fixture(scope="module")
def server(one_thread):
    env = gym.make("YumeWorld-v0", model=tiny_world_dir(), disable_env_checker=True)
    server = serve(env=env, model=tiny_world_dir(), port=0, seed=1, max_steps_per_s=12)
    server.start_thread()
    yield server
    server.close()


@pytest.fixture
def free_world(server):
    """The world free for the next claim: no lease is kept after its last request."""
    server.owner.grace_s = 0.0
    yield server
    server.owner.grace_s = 10.0


def port_of(server: PlayServer) -> int:
    return server.server_address[1]


def call(
    server, method: str, path: str, body: bytes | None = None, headers: dict | None = None, host: str | None = "default"
) -> tuple[int, dict, bytes]:
    """One request with exactly the headers given (Host defaults to 127.0.0.1:PORT; None: no Host)."""
    conn = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", f"127.0.0.1:{port_of(server)}" if host == "default" else host)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        reply = conn.getresponse()
        raw = reply.read()
        is_json = reply.getheader("Content-Type", "").startswith("application/json")
        return reply.status, json.loads(raw) if is_json else {}, raw
    finally:
        conn.close()


def api(server, path: str, body: dict | None = None, **headers: str) -> tuple[int, dict]:
    """A POST as the page sends it (JSON, the session token), plus `headers` (`_` for `-`)."""
    sent = {"Content-Type": "application/json", "X-Play-Session": server.session_token}
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    status, reply, _ = call(server, "POST", path, json.dumps(body or {}).encode(), sent)
    return status, reply


def raw_exchange(server, data: bytes, shut_write: bool = False) -> bytes:
    """Sends `data` as it is and returns everything the server answers before it closes."""
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as sock:
        sock.sendall(data)
        if shut_write:
            sock.shutdown(socket.SHUT_WR)
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def parse_reply(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def assert_clean_error(status: int, reply: dict, raw: bytes) -> None:
    """A 4xx whose JSON names the problem and shows no path or traceback."""
    assert 400 <= status < 500, (status, raw[:300])
    assert reply.get("error"), raw[:300]
    text = raw.decode("utf-8", "replace")
    assert INSTALL_DIR not in text and "Traceback" not in text and "/tmp/" not in text, text[:500]


# ---- Host: only the loopback names with the server's port ---------------------------------------
@pytest.mark.parametrize(
    "host",
    [
        "127.evil.example:{port}",
        "127.0.0.1.evil.example:{port}",
        "evil.example:{port}",
        "127.0.0.1",
        "localhost:1",
        "127.0.0.2:{port}",
        "0.0.0.0:{port}",
        "[::ffff:127.0.0.1]:{port}",
        "[::1]",
        "localhost.:{port}",
        "",
    ],
)
def test_a_request_to_another_host_name_is_refused(server, host):
    status, reply, raw = call(server, "GET", "/", host=host.format(port=port_of(server)))
    assert status in (400, 403) and reply["error"], raw[:300]
    assert server.session_token.encode() not in raw  # the page (and its token) is not served


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "LOCALHOST:{port}", "LocalHost:{port}"]
)
def test_the_loopback_names_with_the_port_are_served(server, host):
    status, _, raw = call(server, "GET", "/", host=host.format(port=port_of(server)))
    assert status == 200 and b"/static/play.js" in raw


def test_a_request_without_a_host_or_with_two_is_refused(server):
    status, reply, raw = call(server, "GET", "/", host=None)
    assert status == 400 and "Host" in reply["error"]
    good = f"localhost:{port_of(server)}"
    status, reply, raw = call(server, "GET", "/", headers={"Host": "evil.example"}, host=good)
    assert status == 400 and "Host" in reply["error"]


@pytest.mark.parametrize("bind", ["127.evil.example", "127.0.0.1.evil.example", "localhost.evil.example"])
def test_binding_a_name_that_only_looks_local_needs_allow_remote(bind):
    with pytest.raises(ValueError, match="--allow-remote"):
        check_host(bind, allow_remote=False)
    for local in ("127.0.0.1", "127.0.0.2", "localhost", "LocalHost", "::1"):
        check_host(local, allow_remote=False)


def test_allowed_hosts_are_the_loopback_names_with_the_port():
    assert guard.allowed_hosts("127.0.0.1", 7860) == {"127.0.0.1:7860", "localhost:7860", "[::1]:7860"}
    assert "127.0.0.2:7860" in guard.allowed_hosts("127.0.0.2", 7860)
    assert "localhost" in guard.allowed_hosts("::1", 80) and "[::1]" in guard.allowed_hosts("::1", 80)


# ---- Origin / Sec-Fetch-Site: no cross-origin POST ----------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},
        {"Origin": "https://127.0.0.1:{port}"},
        {"Origin": "http://127.evil.example:{port}"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://127.0.0.1:{port}", "Sec-Fetch-Site": "cross-site"},
    ],
)
def test_a_cross_origin_claim_is_refused_and_does_not_lock_out_the_tab(free_world, headers):
    server = free_world
    port = port_of(server)
    sent = {k: v.format(port=port) for k, v in headers.items()}
    # as a page of another site can send it: text/plain, no preflight; even knowing the token
    for content_type in ("text/plain", "application/json"):
        status, reply, _ = call(
            server,
            "POST",
            "/api/claim",
            b"{}",
            {**sent, "Content-Type": content_type, "X-Play-Session": server.session_token},
        )
        assert status == 403 and "cross-origin" in reply["error"], (status, reply)
    status, reply = api(server, "/api/claim", Origin=f"http://127.0.0.1:{port}", Sec_Fetch_Site="same-origin")
    assert status == 200 and reply["token"], reply  # the real tab takes the world at once


def test_a_plain_text_post_from_this_origin_is_refused_too(server):
    status, reply, _ = call(
        server, "POST", "/api/claim", b"{}", {"Content-Type": "text/plain", "X-Play-Session": server.session_token}
    )
    assert status == 415 and "application/json" in reply["error"]


def test_the_page_s_own_origin_may_post_under_each_loopback_name(free_world):
    server, port = free_world, port_of(free_world)
    for name in ("localhost", "127.0.0.1", "[::1]"):
        host = f"{name}:{port}"
        status, reply, _ = call(
            server,
            "POST",
            "/api/claim",
            b"{}",
            host=host,
            headers={
                "Content-Type": "application/json",
                "X-Play-Session": server.session_token,
                "Origin": f"http://{host}",
                "Sec-Fetch-Site": "same-origin",
            },
        )
        assert status == 200, reply


# ---- the session token ------------------------------------------------------------------------
def test_the_page_carries_the_session_token(server):
    status, _, raw = call(server, "GET", "/")
    assert status == 200
    assert f'<meta name="yume-play-session" content="{server.session_token}">'.encode() in raw


@pytest.mark.parametrize("session", [None, "", "wrong-token"])
def test_api_calls_without_the_session_token_are_refused(free_world, session):
    server = free_world
    headers = {"Content-Type": "application/json"}
    if session is not None:
        headers["X-Play-Session"] = session
    status, reply, _ = call(server, "POST", "/api/claim", b"{}", headers)
    assert status == 403 and "session token" in reply["error"], reply
    status, reply = api(server, "/api/claim")
    assert status == 200
    token = reply["token"]
    query = "" if session is None else f"&session={session}"
    for path in ("/api/actions.json", "/api/stream", "/api/start.png", "/api/recording.mp4"):
        status, reply, _ = call(server, "GET", f"{path}?token={token}{query}")
        assert status == 403 and "session token" in reply["error"], (path, reply)
    status, _, raw = call(server, "GET", f"/api/actions.json?token={token}&session={server.session_token}")
    assert status == 200 and b"yume-env-actions/1" in raw


def test_a_post_must_carry_the_session_token_in_its_header(free_world):
    server = free_world
    status, reply, _ = call(
        server, "POST", f"/api/claim?session={server.session_token}", b"{}", {"Content-Type": "application/json"}
    )
    assert status == 403 and "session token" in reply["error"]


def test_the_session_token_changes_with_each_server():
    assert guard.new_session_token() != guard.new_session_token()
    assert len(guard.new_session_token()) >= 32


# ---- malformed requests: 4xx with a JSON message, no path, no traceback -------------------------
def with_length(head: str, body: bytes) -> bytes:
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


MALFORMED = {
    "not JSON": "{",
    "nested too deeply": "[" * 100_000,
    "not UTF-8": b"\xff\xfe{}",
    "a list for an object": "[1, 2]",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_body_answers_400_without_a_path(server, name):
    body = MALFORMED[name]
    body = body if isinstance(body, bytes) else body.encode()
    head = (
        f"POST /api/claim HTTP/1.1\r\nHost: 127.0.0.1:{port_of(server)}\r\n"
        f"Content-Type: application/json\r\nX-Play-Session: {server.session_token}\r\n"
    )
    raw = raw_exchange(server, with_length(head, body))
    assert_clean_error(*parse_reply(raw), raw)


@pytest.mark.parametrize(
    "request_text",
    [
        "PUT / HTTP/1.1\r\nHost: {host}\r\n\r\n",
        "BREW /api/claim HTTP/1.1\r\nHost: {host}\r\n\r\n",
        "GARBAGE\r\n\r\n",
        "GET / HTTP/9.9\r\nHost: {host}\r\n\r\n",
        "GET http://evil.example/ HTTP/1.1\r\nHost: {host}\r\n\r\n",
        "GET //evil.example/api/claim HTTP/1.1\r\nHost: {host}\r\n\r\n",
        "GET /static/" + "a" * 300 + ".js HTTP/1.1\r\nHost: {host}\r\n\r\n",
        "GET /static/..%2f..%2fserver.py HTTP/1.1\r\nHost: {host}\r\n\r\n",
        "GET /" + "x" * 70_000 + " HTTP/1.1\r\nHost: {host}\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: {host}\r\nX-Long: " + "y" * 70_000 + "\r\n\r\n",
        "POST /api/claim HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        "X-Play-Session: {session}\r\nContent-Length: abc\r\n\r\n",
        "POST /api/claim HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        "X-Play-Session: {session}\r\nContent-Length: \u0661\u0662\r\n\r\n",
        "POST /api/claim HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        "X-Play-Session: {session}\r\nContent-Length: 99999999999\r\n\r\n",
        "POST /api/claim HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        "X-Play-Session: {session}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ],
    ids=[
        "PUT",
        "unknown method",
        "garbage",
        "HTTP/9.9",
        "absolute URL",
        "double slash",
        "long asset name",
        "encoded dots",
        "long path",
        "long header",
        "length not a number",
        "length in other digits",
        "huge length",
        "chunked",
    ],
)
def test_a_malformed_request_answers_4xx_json_without_a_path(server, request_text):
    text = request_text.format(host=f"127.0.0.1:{port_of(server)}", session=server.session_token)
    raw = raw_exchange(server, text.encode("utf-8"))
    assert_clean_error(*parse_reply(raw), raw)


def test_a_body_shorter_than_its_length_answers_400(server):
    head = (
        f"POST /api/claim HTTP/1.1\r\nHost: 127.0.0.1:{port_of(server)}\r\n"
        f"Content-Type: application/json\r\nX-Play-Session: {server.session_token}\r\nContent-Length: 50\r\n\r\n"
    )
    raw = raw_exchange(server, head.encode() + b"{}", shut_write=True)
    status, reply = parse_reply(raw)
    assert status == 400 and "ended after 2 of 50 bytes" in reply["error"]


@pytest.mark.parametrize(
    "route, body, message",
    [
        ("/api/event", {"event": "\ud800"}, "lone surrogate"),
        ("/api/reset", {"seed": "\u00b2"}, "seed"),
        ("/api/reset", {"image": "data:image/png;base64,AAAA"}, "not a readable image"),
        ("/api/action", {"action": [1, 2, 3]}, "two integers"),
    ],
)
def test_bad_values_answer_400_with_a_message(free_world, route, body, message):
    server = free_world
    _, reply = api(server, "/api/claim")
    status, reply = api(server, route, body, X_Play_Token=reply["token"])
    assert status == 400 and message in reply["error"], reply


def test_error_messages_drop_file_paths():
    text = "No such file: '/home/me/venv/lib/python3.11/site-packages/yume_env/x.py' (C:\\Users\\me\\x)"
    clean = guard.public_message(text)
    assert "/home" not in clean and "Users" not in clean and clean.count("<path>") == 2
    kept = "'image' must be a data URL string (data:image/png;base64,...), got 'http://a.example/b'"
    assert guard.public_message(kept) == kept


# ---- timeouts and the listen backlog ------------------------------------------------------------
def test_connections_have_a_read_timeout(server, monkeypatch):
    assert 0 < PlayHandler.timeout == REQUEST_TIMEOUT_S <= 30
    monkeypatch.setattr(PlayHandler, "timeout", 0.5)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")  # ... and nothing more
        assert sock.recv(1024) == b""  # the server hangs up
    assert time.monotonic() - started < 5
    head = (
        f"POST /api/claim HTTP/1.1\r\nHost: 127.0.0.1:{port_of(server)}\r\nContent-Type: application/json\r\n"
        f"X-Play-Session: {server.session_token}\r\nContent-Length: 10\r\n\r\n{{"
    )
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as sock:
        sock.sendall(head.encode())  # a body that stops coming
        raw = read_all(sock)
    status, reply = parse_reply(raw)
    assert status == 408 and "did not arrive" in reply["error"]


def test_a_hundred_simultaneous_connections_are_queued_and_answered(server):
    """Connects 100 clients while the server accepts none, then lets it serve: none is dropped."""
    assert LISTEN_BACKLOG >= 100
    other = PlayServer(server.session, port=0)  # listening; not accepting until serve_forever runs
    clients: list[socket.socket] = []
    try:
        selector = selectors.DefaultSelector()
        for _ in range(100):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port_of(other)))
            clients.append(sock)
            selector.register(sock, selectors.EVENT_WRITE)
        connected, deadline = set(), time.monotonic() + 2.0
        while len(connected) < len(clients) and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.1):
                if key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    connected.add(key.fileobj)
                selector.unregister(key.fileobj)
        assert len(connected) == 100, f"{100 - len(connected)} of 100 connections were not queued"
        request = f"GET /static/favicon.svg HTTP/1.1\r\nHost: 127.0.0.1:{port_of(other)}\r\nConnection: close\r\n\r\n"
        for sock in clients:
            sock.setblocking(True)
            sock.settimeout(10)
            sock.sendall(request.encode())
        other.start_thread()
        answers = [sock.recv(64) for sock in clients]
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers), [a for a in answers if b" 200" not in a][:3]
    finally:
        for sock in clients:
            sock.close()
        if other._thread is not None:
            other.shutdown()
            other._thread.join(timeout=10)
        other.server_close()
