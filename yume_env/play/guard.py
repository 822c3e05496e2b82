"""Who may talk to the play server: the checks a request passes before any route runs.

The page has no password, so the server trusts only requests that provably come from its own page
in a browser on this machine (see docs/security.md, "The play server"):

- `Host` must be one of the loopback names the server answers, with its port (a DNS-rebinding page
  sends its own name there);
- `Origin`, when sent, must be the server's own origin, and `Sec-Fetch-Site`, when sent, must say
  "same-origin" (another web page's requests carry its origin / "cross-site");
- every API call carries the session token that the page received inside its HTML, which no other
  origin can read;
- a POST body is JSON (`application/json`), which another origin cannot send without a CORS
  preflight that this server never grants.

Each check raises `HttpError` with the status to answer and a message that says what was wrong.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from email.message import Message

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
SESSION_HEADER = "X-Play-Session"
SESSION_QUERY = "session"
MAX_ECHO_CHARS = 80  # how much of a refused header value an error message repeats
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])(?:/[^\s'\"/:]+){2,}/?|\b[A-Za-z]:\\[^\s'\"]+")


class HttpError(Exception):
    """A request the server refuses: `status` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def new_session_token() -> str:
    """A fresh secret for one run of the server (URL- and HTML-safe characters only)."""
    return secrets.token_urlsafe(24)


def allowed_hosts(bound_host: str, port: int) -> frozenset[str]:
    """The `Host` header values a loopback server answers, lower case: its loopback names with its port.

    That is `127.0.0.1:PORT`, `localhost:PORT`, `[::1]:PORT`, plus the address it bound when that is
    another loopback address (e.g. 127.0.0.2). On port 80 the names without a port count too, as
    browsers leave the default port out.
    """
    names = set(LOOPBACK_NAMES)
    bound = bound_host.strip("[]").lower()
    try:
        address = ipaddress.ip_address(bound)
    except ValueError:
        address = None
    if address is not None and address.is_loopback:
        names.add(f"[{address.compressed}]" if address.version == 6 else address.compressed)
    hosts = {f"{name}:{port}" for name in names}
    if port == 80:
        hosts |= names
    return frozenset(hosts)


def _one_header(headers: Message, name: str) -> str | None:
    """The header's value, None when absent; 400 when the request repeats it."""
    values = headers.get_all(name) or []
    if len(values) > 1:
        raise HttpError(400, f"the request has {len(values)} {name} headers; at most one is accepted")
    return values[0].strip() if values else None


def _echo(value: str) -> str:
    return repr(value if len(value) <= MAX_ECHO_CHARS else value[:MAX_ECHO_CHARS] + "...")


def check_host(headers: Message, allowed: frozenset[str] | None) -> str:
    """Returns the request's `Host` value; 403 unless it is in `allowed` (None: any host, --allow-remote)."""
    host = _one_header(headers, "Host")
    if not host:
        raise HttpError(400, "the request has no Host header")
    if allowed is not None and host.lower() not in allowed:
        names = ", ".join(sorted(allowed))
        raise HttpError(
            403,
            f"this server answers only requests addressed to {names}, not {_echo(host)} "
            "(a page of another site cannot use it; see --allow-remote)",
        )
    return host


def check_origin(headers: Message, host: str) -> None:
    """403 when the request carries an `Origin` other than this server's own, http://HOST."""
    origin = _one_header(headers, "Origin")
    if origin is not None and origin.lower() != f"http://{host}".lower():
        raise HttpError(403, f"cross-origin request refused: Origin {_echo(origin)} is not http://{host}")


def check_fetch_site(headers: Message, method: str) -> None:
    """403 when the browser says the request comes from another site (`Sec-Fetch-Site`).

    A POST must be "same-origin"; a GET may also be "none" (an address typed or pasted by the user).
    Clients that send no `Sec-Fetch-Site` (curl, scripts) are let through to the other checks.
    """
    site = _one_header(headers, "Sec-Fetch-Site")
    allowed = ("same-origin",) if method == "POST" else ("same-origin", "none")
    if site is not None and site.lower() not in allowed:
        raise HttpError(403, f"cross-origin request refused (Sec-Fetch-Site: {_echo(site)})")


def check_session(headers: Message, query: dict[str, str], method: str, token: str) -> None:
    """403 unless the request carries the session token: in `X-Play-Session`, or for a GET (the event
    stream, the downloads) in the `session` query parameter."""
    sent = _one_header(headers, SESSION_HEADER)
    if sent is None and method == "GET":
        sent = query.get(SESSION_QUERY)
    if not sent or not secrets.compare_digest(sent.encode(), token.encode()):
        what = "a wrong" if sent else "no"
        raise HttpError(
            403,
            f"the request has {what} session token ({SESSION_HEADER}); reload the page "
            "(the token changes each time `yume-env play` starts)",
        )


def check_json_body(headers: Message) -> None:
    """415 unless a POST declares a JSON body (`Content-Type: application/json`)."""
    content_type = (_one_header(headers, "Content-Type") or "").split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        shown = _echo(content_type) if content_type else "none"
        raise HttpError(415, f"a POST body must be JSON with Content-Type: application/json, got {shown}")


def public_message(text: str) -> str:
    """`text` with absolute file paths replaced by "<path>": error replies never show the install."""
    return _ABSOLUTE_PATH.sub("<path>", text)
