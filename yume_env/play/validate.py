"""Checks the JSON bodies the page sends, like any env input: bad values raise `ValueError` with a
message that names the field, the value and what was expected (the server answers 400 with it)."""

from __future__ import annotations

import re
from typing import Any

from yume_env.vocabulary import YUME, ActionVocabulary

MAX_EVENT_CHARS = 500
MAX_SEED = 2**63 - 1
_DECIMAL = re.compile(r"^-?[0-9]{1,20}$")  # ASCII digits only: "²" and "١٢" are digits to str.isdigit


def body_dict(body: Any) -> dict:
    if not isinstance(body, dict):
        raise ValueError(f"request body must be a JSON object, got {type(body).__name__}")
    return body


def expected_action(vocabulary: ActionVocabulary = YUME) -> str:
    """What an action of `vocabulary` is, in words ("two integers [key in [0, 9), camera in [0, 9)] ...")."""
    nvec = list(vocabulary.nvec)
    if vocabulary.is_yume:
        parts = [f"key in [0, {nvec[0]})", f"camera in [0, {nvec[1]})"]
    else:
        parts = [f"a{i} in [0, {n})" for i, n in enumerate(nvec)]
    count = {1: "one integer", 2: "two integers"}.get(len(nvec), f"{len(nvec)} integers")
    return f"{count} [{', '.join(parts)}] for this world's action nvec {nvec}"


def parse_action(body: Any, vocabulary: ActionVocabulary = YUME) -> tuple[int, ...]:
    """{"action": [a0, a1, ...]}: one integer (not a float or boolean) per component of the world's
    vocabulary, component i in [0, nvec[i]) (Yume's: [key, camera])."""
    value = body_dict(body).get("action")
    want = expected_action(vocabulary)
    if not isinstance(value, list) or len(value) != vocabulary.components or not all(type(v) is int for v in value):
        raise ValueError(f"'action' must be {want}, as a JSON list; got {value!r}")
    bad = [i for i, (v, n) in enumerate(zip(value, vocabulary.nvec)) if not 0 <= v < n]
    if bad:
        i = bad[0]
        raise ValueError(
            f"'action' {value!r} is out of range: action must be {want}; component {i} is {value[i]}, "
            f"not in [0, {vocabulary.nvec[i]})"
        )
    return tuple(value)


def parse_event(body: Any) -> str:
    """{"event": "it starts to snow"}; "" clears the event. Surrounding whitespace is dropped."""
    value = body_dict(body).get("event")
    if not isinstance(value, str):
        raise ValueError(f"'event' must be a string (\"\" for none), got {value!r}")
    text = value.strip()
    if len(text) > MAX_EVENT_CHARS:
        raise ValueError(f"'event' must be at most {MAX_EVENT_CHARS} characters, got {len(text)}")
    if any(ord(c) < 32 and c not in "\t\n" for c in text):
        raise ValueError("'event' must be plain text (no control characters)")
    if any("\ud800" <= c <= "\udfff" for c in text):
        raise ValueError("'event' must be valid Unicode text (it holds a lone surrogate)")
    return text


def parse_seed(body: Any) -> int | None:
    """{"seed": int | null | ""}; None means "pick one" (the log then records the seed picked)."""
    value = body_dict(body).get("seed")
    if value is None or value == "":
        return None
    if isinstance(value, str) and _DECIMAL.match(value.strip()):
        value = int(value.strip())
    if type(value) is not int or not 0 <= value <= MAX_SEED:
        raise ValueError(f"'seed' must be an integer in [0, 2**63 - 1] or empty, got {value!r}")
    return value


def parse_flag(body: Any, name: str) -> bool:
    value = body_dict(body).get(name)
    if type(value) is not bool:
        raise ValueError(f"{name!r} must be true or false, got {value!r}")
    return value


def parse_branch_id(body: Any) -> int:
    value = body_dict(body).get("id")
    if type(value) is not int:
        raise ValueError(f"'id' must be the integer id of a saved branch, got {value!r}")
    return value
