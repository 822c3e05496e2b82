"""Text events the simulator can render, their paraphrases, and how strongly each shows.

An event is set by text (`Simulator.set_event("it starts to snow")`); the text is matched to a
canonical event by exact paraphrase (case and spaces ignored). Unknown text renders nothing but
is still reported as the active event, like a world model given a caption it never learnt.
An event fades in over `RAMP_FRAMES` sub-frames from the step where it starts.
"""

from __future__ import annotations

import numpy as np

EVENTS: dict[str, tuple[str, ...]] = {
    "ghost": (
        "a ghost suddenly appears",
        "a ghost appears",
        "a pale ghost appears ahead",
        "a ghostly figure appears in front of the camera",
    ),
    "snow": (
        "it starts to snow",
        "snow begins to fall",
        "it begins snowing",
        "snowflakes start falling",
    ),
    "night": (
        "night falls",
        "it becomes night",
        "the sky turns dark as night falls",
        "darkness falls over the city",
    ),
    "fog": (
        "thick fog rolls in",
        "fog rolls in",
        "a dense fog covers the street",
        "the city is swallowed by fog",
    ),
    "lights": (
        "the street lights turn on",
        "the streetlights turn on",
        "the street lamps light up",
        "the lamps along the street switch on",
    ),
    "rain": (
        "it starts to rain",
        "rain begins to fall",
        "it begins raining",
        "heavy rain pours down",
    ),
}

# Column order of the per-camera effect intensities the renderer reads.
EFFECTS: tuple[str, ...] = tuple(EVENTS)
RAMP_FRAMES = 3


def check_event(text: object, what: str = "event") -> str:
    """`text` if it is an event text (a str, "" for none); TypeError naming `what` and the type
    otherwise (a number or None is not turned into text)."""
    if not isinstance(text, str):
        raise TypeError(f'{what} must be a str ("" for none), got {type(text).__name__}')
    return text


def _norm(text: str) -> str:
    return " ".join(str(text).lower().split()).rstrip(".!")


_LOOKUP = {_norm(p): name for name, phrases in EVENTS.items() for p in phrases}
_LOOKUP.update({name: name for name in EVENTS})


def match_event(text: str) -> str | None:
    """Canonical event name of `text` (exact paraphrase, case/space-insensitive), else None."""
    if text is None:
        return None
    return _LOOKUP.get(_norm(text))


def event_index(text: str) -> int:
    """Index into `EFFECTS` of the event `text` names, -1 for no or unknown event."""
    name = match_event(text)
    return EFFECTS.index(name) if name is not None else -1


def effect_intensities(event_idx: np.ndarray, frames_since: np.ndarray) -> np.ndarray:
    """(B, len(EFFECTS)) float32 intensities from per-camera event index and sub-frames since start.

    Night also switches the street lights on (lit windows and lamps are what night looks like).
    """
    event_idx = np.asarray(event_idx).reshape(-1)
    ramp = np.clip((np.asarray(frames_since, dtype=np.float32).reshape(-1) + 1.0) / RAMP_FRAMES, 0.0, 1.0)
    out = np.zeros((event_idx.shape[0], len(EFFECTS)), dtype=np.float32)
    rows = np.nonzero(event_idx >= 0)[0]
    out[rows, event_idx[rows]] = ramp[rows]
    night = EFFECTS.index("night")
    lights = EFFECTS.index("lights")
    out[:, lights] = np.maximum(out[:, lights], out[:, night])
    return out
