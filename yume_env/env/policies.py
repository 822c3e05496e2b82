"""Simple built-in action sources for `yume-env record` (the richer agents live in `agents/`).

An `ActionScript` is a list of actions plus events keyed by the step before which they are set.
The default `tour` walks forward, turns left and right, looks up and down and triggers an event.
Actions are in a world's vocabulary (`yume_env.vocabulary`): Yume's (key, camera) pairs by default,
or one integer per component of another world's (a log names its `action_nvec`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yume_env import actions as A
from yume_env.atomic import atomic_write_text
from yume_env.vocabulary import YUME, ActionVocabulary

LOG_FORMAT = "yume-env-actions/1"

# (action text, repeats): 48 steps; the event is set before step 24 (0-based)
TOUR: list[tuple[str, int]] = [
    ("W", 8),
    ("W ←", 6),
    ("W", 4),
    ("→", 6),
    ("W →", 4),
    ("↑", 4),
    ("↓", 8),
    ("↑", 4),
    ("W", 4),
]
TOUR_EVENTS: dict[int, str] = {24: "it starts to snow"}
LOOKAROUND: list[tuple[str, int]] = [("→", 9), ("↑", 4), ("←", 18), ("↓", 8), ("→", 9), ("↑", 4)]


@dataclass
class ActionScript:
    actions: np.ndarray  # int (T, components): Yume's (T, 2) key and camera
    events: dict[int, str] = field(default_factory=dict)  # step index -> event text set before it
    seed: int | None = None
    event: str | None = None  # the reset event
    image: str | None = None  # start frame image file, when the episode did not start from a start view
    vocabulary: ActionVocabulary = YUME  # the world's actions the script is written in

    def to_json(self) -> dict:
        vocab = self.vocabulary
        return {
            "format": LOG_FORMAT,
            "seed": self.seed,
            "event": self.event,
            "events": [[int(k), v] for k, v in sorted(self.events.items())],
            "image": self.image,
            "action_nvec": list(vocab.nvec),
            "actions": self.actions.astype(int).tolist(),
            "action_text": [A.action_to_str(a) if vocab.is_yume else vocab.label(a) for a in self.actions],
        }

    def save(self, path: str | os.PathLike, **extra) -> Path:
        """Writes the log atomically (temp file, then rename)."""
        return atomic_write_text(path, json.dumps({**self.to_json(), **extra}, indent=1, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ActionScript":
        """Reads a log written by `save` (or a hand-written {"actions": [...], "events": [[step, text]]}).
        Without `action_nvec` the actions are Yume's: [key, camera] pairs or texts like "W+A →"; with
        it (e.g. [2] for CartPole's), one integer per component (a bare integer for one component)."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read action script {path}: {err}") from err
        if not isinstance(data, dict) or "actions" not in data:
            raise ValueError(
                f"action script {path} must be a JSON object with 'actions': [[key, camera], ...] or ['W+A →', ...]"
            )
        vocab = _log_vocabulary(data, path)
        if vocab.is_yume:
            rows = [A.parse_action(a) if isinstance(a, str) else np.asarray(a) for a in data["actions"]]
            for n, row in enumerate(rows):
                try:
                    A.validate_action(row)
                except ValueError as err:
                    raise ValueError(
                        f"action script {path}, action {n}: {err} (a log of another world's actions "
                        'names them with "action_nvec": [n, ...])'
                    ) from None
            actions = np.stack(rows).astype(np.int64) if rows else np.zeros((0, 2), np.int64)
        else:
            actions = _integer_actions(data["actions"], vocab, path)
        events = {int(step): str(text) for step, text in data.get("events", [])}
        return cls(actions, events, data.get("seed"), data.get("event"), data.get("image"), vocab)


def _log_vocabulary(data: dict, path) -> ActionVocabulary:
    """The log's `action_nvec` (Yume's when it has none)."""
    nvec = data.get("action_nvec")
    if nvec is None:
        return YUME
    if not isinstance(nvec, list) or not nvec or not all(type(n) is int and n >= 1 for n in nvec):
        raise ValueError(
            f"action script {path}: 'action_nvec' must be a list of positive integers (choices per "
            f"action component), got {nvec!r}"
        )
    return YUME if tuple(nvec) == YUME.nvec else ActionVocabulary(tuple(nvec))


def _integer_actions(items, vocab: ActionVocabulary, path) -> np.ndarray:
    """The rows of a log in a non-Yume vocabulary, checked: int64 (T, components)."""
    if not isinstance(items, list):
        raise ValueError(f"action script {path}: 'actions' must be a list, got {type(items).__name__}")
    rows = []
    for n, item in enumerate(items):
        row = [item] if vocab.components == 1 and type(item) is int else item
        if not isinstance(row, list) or len(row) != vocab.components or not all(type(v) is int for v in row):
            raise ValueError(
                f"action script {path}, action {n}: must be {vocab.components} integer(s) for "
                f"action_nvec {list(vocab.nvec)}, got {item!r}"
            )
        rows.append(row)
    try:
        return vocab.check(
            np.array(rows, dtype=np.int64).reshape(-1, vocab.components), f"action script {path}: actions"
        )
    except ValueError as err:
        raise ValueError(str(err)) from None


def expand(plan: list[tuple[str, int]]) -> np.ndarray:
    return np.stack([A.parse_action(text) for text, n in plan for _ in range(n)]).astype(np.int64)


def builtin_script(name: str, steps: int | None, seed: int, vocabulary: ActionVocabulary = YUME) -> ActionScript:
    """'tour', 'forward', 'lookaround' or 'random'; `steps` cuts or repeats the plan (None = its length, 48 for open plans).
    Only 'random' is offered for a world whose actions are not Yume's (`vocabulary`)."""
    if not vocabulary.is_yume and name != "random":
        if name not in ("tour", "lookaround", "forward"):
            raise ValueError(f"unknown agent {name!r}; expected random or a .json action script")
        raise ValueError(
            f"the {name} agent walks Yume's keys and camera moves; this world's actions are "
            f"action_nvec {list(vocabulary.nvec)}: use --agent random or a .json action log"
        )
    if name == "tour":
        actions, events = expand(TOUR), dict(TOUR_EVENTS)
    elif name == "lookaround":
        actions, events = expand(LOOKAROUND), {}
    elif name == "forward":
        actions, events = expand([("W", steps or 48)]), {}
    elif name == "random":
        rng = np.random.default_rng(seed)
        n = steps or 48
        actions, events = np.stack([rng.integers(0, k, n) for k in vocabulary.nvec], 1), {}
    else:
        raise ValueError(f"unknown agent {name!r}; expected random, forward, lookaround, tour or a .json action script")
    if steps is not None:
        reps = -(-steps // len(actions))
        actions = np.concatenate([actions] * reps)[:steps]
        events = {k: v for k, v in events.items() if k < steps}
    return ActionScript(actions.astype(np.int64), events, seed, vocabulary=vocabulary)
