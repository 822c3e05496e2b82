"""The HTTP side of `yume-env play`: standard-library `ThreadingHTTPServer`, no extra dependency.

Routes (JSON in and out; control requests carry the tab's lease token in `X-Play-Token`):

| route | what |
|---|---|
| `GET /` , `GET /static/<file>` | the page (HTML/JS/CSS shipped in `yume_env/play/static/`) |
| `POST /api/claim` `{"token"?}` | take the world for this tab -> `{"token", "config"}` (`config["vocabulary"]`: the world's actions); 409 while another tab plays |
| `GET /api/stream?token=` | Server-Sent Events: one JSON update per chunk (frames as data URLs + status) |
| `POST /api/action` `{"action": [a0, a1, ...]}` | the held action, one integer per component of the world's vocabulary (Yume's: [key, camera]) |
| `POST /api/event` `{"event": str}` | the event text, used from the next chunk on |
| `POST /api/reset` `{"seed"?, "image"?}` | restart (a seed, or a start picture as a data URL) |
| `POST /api/pause` `{"paused": bool}` | stop / resume stepping |
| `POST /api/branch/save`, `POST /api/branch/restore` `{"id"}` | branch points |
| `GET /api/actions.json?token=`, `GET /api/recording.mp4?token=` | downloads of the current branch |
| `GET /api/start.png?token=` | its start picture, when it started from an uploaded one |

Every request passes `guard`'s checks first: an allowed `Host`, no other `Origin` or `Sec-Fetch-Site`,
and for `/api/` the session token that the page gets inside its HTML (`X-Play-Session`; the `session`
query parameter for the GET routes). Every answer that is not 200 is JSON, `{"error": message}`:
400 for bad input, 403 for a refused request, 409 while another tab plays; an error reply never
shows a file path or a traceback (those go to the terminal).
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import sys
import tempfile
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from yume_env import actions as A
from yume_env.play import guard, validate
from yume_env.play.guard import HttpError
from yume_env.play.owner import Owner, WorldBusy
from yume_env.play.recording import START_IMAGE_NAME
from yume_env.play.session import PlaySession, SessionUnavailable

MAX_BODY_BYTES = 16 * 1024 * 1024  # an uploaded start picture as a data URL
REQUEST_TIMEOUT_S = 10.0  # longest wait for one read or write on a connection
LISTEN_BACKLOG = 128  # connections the kernel queues before the server accepts them
SESSION_PLACEHOLDER = "__YUME_PLAY_SESSION__"  # in index.html, replaced by the session token
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
# Everything comes from this server; frames arrive as data: URLs.
CSP = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'"
_STATIC_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_CONTENT_LENGTH = re.compile(r"^[0-9]{1,12}$")


def is_local_host(host: str) -> bool:
    """True for "localhost" and loopback addresses (127.0.0.0/8, ::1). A name is not looked up: one
    that merely starts with "127." may resolve anywhere."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_remote: bool) -> None:
    """Raises `ValueError` for a non-loopback `host` unless `allow_remote` is set."""
    if not allow_remote and not is_local_host(host):
        raise ValueError(
            f"refusing to serve on {host!r} without --allow-remote: the page controls the world and has no "
            "password. Keep the default 127.0.0.1 and use an SSH tunnel (ssh -L 7860:localhost:7860 SERVER), "
            "or pass --allow-remote on a network you trust"
        )


class PlayServer(ThreadingHTTPServer):
    """Serves one `PlaySession` to one tab at a time.

    `allow_remote=False` (the default) refuses to bind anywhere but the loopback interface and
    answers only requests whose `Host` is one of its loopback names with its port (a guard against
    DNS rebinding). Either way, other origins are refused and API calls need `session_token`, which
    the page receives in its HTML.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, session: PlaySession, host: str = "127.0.0.1", port: int = 7860, allow_remote: bool = False):
        check_host(host, allow_remote)
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.session = session
        self.owner = Owner()
        self.allow_remote = allow_remote
        self.session_token = guard.new_session_token()
        self.static_dir = resources.files("yume_env.play") / "static"
        self._thread: threading.Thread | None = None
        super().__init__((host, port), PlayHandler)
        bound_port = self.server_address[1]  # the real port when 0 asked for any free one
        self.allowed_hosts = None if allow_remote else guard.allowed_hosts(host, bound_port)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def config(self) -> dict:
        s = self.session
        vocab = s.vocabulary
        return {
            "keys": list(A.KEYS),
            "cameras": list(A.CAMERAS),
            # the world's actions: choices per component and their names ([] when it has none: the page
            # shows numbers); Yume's keys x camera moves get the WASD + arrows page
            "vocabulary": {
                "nvec": list(vocab.nvec),
                "names": [list(row) for row in vocab.names],
                "is_yume": vocab.is_yume,
            },
            "frame_size": list(s.frame_size),
            "frames_per_step": s.frames_per_step,
            "render_fps": s.render_fps,
            "max_steps_per_s": (1.0 / s.min_interval) if s.min_interval else 0.0,
            "model": s.model_name,
            "max_event_chars": validate.MAX_EVENT_CHARS,
        }

    def start_thread(self) -> threading.Thread:
        """Serves in a daemon thread (tests, notebooks); `close()` stops it."""
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        return self._thread

    def close(self) -> None:
        """Ends the event streams, the serving thread (if `start_thread` made one) and the session."""
        self.session.hub.close()
        if self._thread is not None:
            self.shutdown()  # only returns once serve_forever has stopped, so only when it runs
            self._thread.join(timeout=10)
        self.server_close()
        self.session.close()


class PlayHandler(BaseHTTPRequestHandler):
    """One connection: checks each request (`_guard`), runs its route, answers JSON on any error."""

    server: PlayServer
    protocol_version = "HTTP/1.1"
    server_version = "yume-env-play"
    timeout = REQUEST_TIMEOUT_S  # a client that stops sending (or reading) is dropped

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal shows the URL only
        pass

    # ---- dispatch ------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        try:
            path = self._parse_target()
            self._guard(method, path)
            route = ROUTES.get((method, path))
            if route is not None:
                route(self)
            elif method == "GET" and (path == "/" or path.startswith("/static/")):
                self._static("index.html" if path == "/" else path[len("/static/") :])
            else:
                raise HttpError(404, f"no route {method} {path}")
        except HttpError as exc:
            self._error(exc.status, str(exc))
        except WorldBusy as exc:
            self._error(409, str(exc))
        except SessionUnavailable as exc:
            self._error(503, str(exc))
        except (ValueError, TypeError) as exc:  # invalid input, as the env or the validators report it
            self._error(400, guard.public_message(str(exc)))
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception:  # a bug: the details go to the terminal, not to the page
            traceback.print_exc(file=sys.stderr)
            self._error(500, "internal error in the play server; the terminal running `yume-env play` shows it")

    def _parse_target(self) -> str:
        """The request's path (its query goes to `self.query`); 400 for anything but an origin-form target."""
        self.query: dict[str, str] = {}
        if not self.path.startswith("/") or self.path.startswith("//"):
            raise HttpError(400, "the request target must be a path starting with a single /")
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query, max_num_fields=32).items()}
        return url.path

    def _guard(self, method: str, path: str) -> None:
        """The checks of `guard`, in order: Host, Origin, Sec-Fetch-Site, session token, JSON body."""
        host = guard.check_host(self.headers, self.server.allowed_hosts)
        guard.check_origin(self.headers, host)
        api = path.startswith("/api/")
        if api or method == "POST":
            guard.check_fetch_site(self.headers, method)
        if api:
            guard.check_session(self.headers, self.query, method, self.server.session_token)
        if method == "POST":
            guard.check_json_body(self.headers)

    def parse_request(self) -> bool:
        """The standard library's parsing, less HTTP/0.9 (a request without headers has no Host)."""
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":
            self.send_error(HTTPStatus.BAD_REQUEST, "HTTP/0.9 requests are not served; use HTTP/1.1")
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own refusals (bad request line, too long, unknown method) as JSON
        with a status line and a 4xx status: they are all the client's errors."""
        if code == HTTPStatus.NOT_IMPLEMENTED:
            code = HTTPStatus.METHOD_NOT_ALLOWED
            message = f"method {getattr(self, 'command', '')!r} is not allowed; this server answers GET and POST"
        elif code == HTTPStatus.HTTP_VERSION_NOT_SUPPORTED:
            code = HTTPStatus.BAD_REQUEST
            message = f"{message}; use HTTP/1.1"
        if not str(getattr(self, "request_version", "")).startswith("HTTP/1."):
            self.request_version = "HTTP/1.0"  # else the reply would go out without its status line
        text = guard.public_message(message or HTTPStatus(code).phrase)
        self._error(code, text, {"Allow": "GET, POST"} if code == HTTPStatus.METHOD_NOT_ALLOWED else None)

    # ---- helpers -------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CSP)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if getattr(self, "command", None) != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200, extra: dict | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json", extra)

    def _error(self, status: int, message: str, extra: dict | None = None) -> None:
        """Answers `{"error": message}` and closes the connection (an unread body must not be taken
        for the next request)."""
        self.close_connection = True
        try:
            self._json({"error": message}, status, {**(extra or {}), "Connection": "close"})
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass

    def _body(self) -> Any:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length is None or not _CONTENT_LENGTH.match(length.strip()):
            raise HttpError(411, "a JSON body with Content-Length is required")
        size = int(length)
        if size > MAX_BODY_BYTES:
            raise HttpError(413, f"request body is {size} bytes; at most {MAX_BODY_BYTES} are accepted")
        try:
            raw = self.rfile.read(size)
        except TimeoutError:
            raise HttpError(408, f"the request body did not arrive within {REQUEST_TIMEOUT_S:g} s") from None
        if len(raw) < size:
            raise HttpError(400, f"the request body ended after {len(raw)} of {size} bytes")
        try:
            return json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            raise HttpError(400, f"request body is not valid JSON: {exc}") from None
        except UnicodeDecodeError:
            raise HttpError(400, "request body is not valid JSON: it is not UTF-8 text") from None
        except RecursionError:
            raise HttpError(400, "request body is not valid JSON for this server: it is nested too deeply") from None

    def _token(self) -> str | None:
        return self.headers.get("X-Play-Token") or self.query.get("token")

    def _owned(self) -> None:
        self.server.owner.check(self._token())

    def _static(self, name: str) -> None:
        suffix = Path(name).suffix
        if len(name) > 64 or not _STATIC_NAME.match(name) or suffix not in STATIC_TYPES:
            raise HttpError(404, f"no page asset {name[:64]!r}")
        path = self.server.static_dir / name
        if not path.is_file():
            raise HttpError(404, f"no page asset {name!r}")
        body = path.read_bytes()
        if name == "index.html":  # the page's copy of the session token, for its API calls
            body = body.replace(SESSION_PLACEHOLDER.encode(), self.server.session_token.encode())
        self._send(200, body, STATIC_TYPES[suffix])

    # ---- routes --------------------------------------------------------------------------------
    def claim(self) -> None:
        """Gives this tab the lease. A new player (not the same tab reloading) gets a running world:
        a pause left behind by a closed tab is lifted."""
        body = validate.body_dict(self._body())
        previous = body.get("token")
        previous = previous if isinstance(previous, str) else None
        token = self.server.owner.claim(previous)
        if token != previous:
            self.server.session.new_player()
        self._json({"token": token, "config": self.server.config()})

    def action(self) -> None:
        session = self.server.session
        action = validate.parse_action(self._body(), session.vocabulary)
        self._owned()
        session.hold(action)
        self._json({"action": list(action), "action_text": session.action_text(action)})

    def event(self) -> None:
        text = validate.parse_event(self._body())
        self._owned()
        self.server.session.set_event(text)
        self._json({"event": text})

    def reset(self) -> None:
        body = validate.body_dict(self._body())
        seed = validate.parse_seed(body)
        image = body.get("image")
        if image is not None and not isinstance(image, str):
            raise ValueError(f"'image' must be a data URL string (data:image/png;base64,...) or null, got {image!r}")
        self._owned()
        self.server.session.reset(seed, image)
        self._json(self.server.session.current())

    def pause(self) -> None:
        paused = validate.parse_flag(self._body(), "paused")
        self._owned()
        self.server.session.set_paused(paused)
        self._json({"paused": paused})

    def save_branch(self) -> None:
        self._body()
        self._owned()
        self._json(self.server.session.save_branch())

    def restore_branch(self) -> None:
        branch_id = validate.parse_branch_id(self._body())
        self._owned()
        self.server.session.restore_branch(branch_id)
        self._json(self.server.session.current())

    def download_actions(self) -> None:
        self._owned()
        body = format_action_log(self.server.session.action_log()).encode()
        self._send(
            200, body, "application/json", {"Content-Disposition": 'attachment; filename="yume-play-actions.json"'}
        )

    def download_start_image(self) -> None:
        self._owned()
        png = self.server.session.start_image()
        if png is None:
            raise HttpError(404, "this episode did not start from a picture (it started from a seed)")
        self._send(200, png, "image/png", {"Content-Disposition": f'attachment; filename="{START_IMAGE_NAME}"'})

    def download_mp4(self) -> None:
        self._owned()
        session = self.server.session
        recording = session.recording_copy()
        with tempfile.TemporaryDirectory(prefix="yume-play-") as tmp:
            path = recording.write_mp4(Path(tmp) / "play.mp4", fps=session.render_fps * session.frames_per_step)
            body = path.read_bytes()
        self._send(200, body, "video/mp4", {"Content-Disposition": 'attachment; filename="yume-play.mp4"'})

    def stream(self) -> None:
        """Server-Sent Events until the tab goes away, loses its lease or the server stops."""
        owner, session = self.server.owner, self.server.session
        token = self._token()
        owner.stream_opened(token)
        try:
            session.set_watching(True)
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            after = session.hub.seq
            self._event(json.dumps(session.current()), retry_ms=2000)
            while not session.hub.closed and owner.holds(token):
                items = session.hub.wait(after, timeout=2.0)
                if not items:
                    self.wfile.write(b": keep-alive\n\n")  # finds a closed tab within 2 s
                for seq, text in items:
                    self._event(text)
                    after = seq
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        finally:
            owner.stream_closed()
            session.set_watching(owner.watching)

    def _event(self, text: str, retry_ms: int | None = None) -> None:
        head = f"retry: {retry_ms}\n" if retry_ms else ""
        self.wfile.write(f"{head}data: {text}\n\n".encode())
        self.wfile.flush()


def format_action_log(log: dict) -> str:
    """The log as JSON with one list item per line: readable, diffable, still plain JSON."""
    lines = []
    for key, value in log.items():
        if isinstance(value, list) and value:
            items = ",\n".join(f"    {json.dumps(v, ensure_ascii=False)}" for v in value)
            lines.append(f"  {json.dumps(key)}: [\n{items}\n  ]")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


ROUTES = {
    ("POST", "/api/claim"): PlayHandler.claim,
    ("POST", "/api/action"): PlayHandler.action,
    ("POST", "/api/event"): PlayHandler.event,
    ("POST", "/api/reset"): PlayHandler.reset,
    ("POST", "/api/pause"): PlayHandler.pause,
    ("POST", "/api/branch/save"): PlayHandler.save_branch,
    ("POST", "/api/branch/restore"): PlayHandler.restore_branch,
    ("GET", "/api/stream"): PlayHandler.stream,
    ("GET", "/api/actions.json"): PlayHandler.download_actions,
    ("GET", "/api/recording.mp4"): PlayHandler.download_mp4,
    ("GET", "/api/start.png"): PlayHandler.download_start_image,
}
