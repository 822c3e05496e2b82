"""A model config as saved files see it: which config made a state or a weights file, and config.json's types.

`config_fingerprint(config)` is a short hash of the fields that decide what a world state or a
weight means: every field except how a chunk is sampled (`SAMPLING_FIELDS`: a state can be
stepped with other values), `fps` (how fast the frames are played) and display names. Only fields
that differ from their defaults enter it, so a field that a later version adds with a default
keeps old fingerprints valid.
`state_fields(config)` is the same fields as plain JSON values (stored beside weights, so an error
can name the fields that changed); `config_differences` names them. `check_json_types` checks
config.json's values against the field types before the config is built (a string `dim` would
otherwise fail with a formatting error deep inside).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from yume_env.model.config import SAMPLING_FIELDS, WorldModelConfig

NOT_STATE_FIELDS = (*SAMPLING_FIELDS, "fps", "action_names")  # sampling, playback speed, display names


def _plain(value: Any) -> Any:
    """A JSON-equal copy (tuples become lists), for comparing values as config.json holds them."""
    return json.loads(json.dumps(value, sort_keys=True))


def _defaults() -> dict[str, Any]:
    """Each config field's default as plain JSON (fields without one are left out)."""
    out = {}
    for f in dataclasses.fields(WorldModelConfig):
        if f.default is not dataclasses.MISSING:
            out[f.name] = float(f.default) if str(f.type) == "float" else _plain(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = _plain(f.default_factory())
    return out


def state_fields(config: WorldModelConfig) -> dict[str, Any]:
    """The config's state-defining fields as plain JSON values (numbers of float fields as floats,
    so `rope_theta` 10000 and 10000.0 give one fingerprint)."""
    floats = {f.name for f in dataclasses.fields(WorldModelConfig) if str(f.type) == "float"}
    return {k: float(v) if k in floats else _plain(v) for k, v in config.to_dict().items() if k not in NOT_STATE_FIELDS}


def config_fingerprint(config: WorldModelConfig) -> str:
    """16 hex digits naming the config's state-defining fields (those that differ from their defaults)."""
    defaults = _defaults()
    fields = {k: v for k, v in state_fields(config).items() if k not in defaults or v != defaults[k]}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def config_differences(saved: dict[str, Any], config: WorldModelConfig) -> list[str]:
    """The state-defining fields whose value in `saved` (what `state_fields` returned when a file was
    written) differs from `config`'s; a field `saved` lacks counts as its default."""
    defaults, mine = _defaults(), state_fields(config)
    return sorted(k for k, v in mine.items() if _plain(saved.get(k, defaults.get(k))) != v)


_JSON_KINDS = {  # annotation prefix -> (test, what the error asks for)
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "tuple": (
        lambda v: isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v),
        "a list of integers",
    ),
    "dict": (lambda v: isinstance(v, dict), "a JSON object"),
    "list": (lambda v: isinstance(v, list), "a JSON list"),
}


def check_json_types(raw: dict[str, Any]) -> None:
    """Raises ValueError naming the first field of `raw` (config.json's object) whose JSON value has
    the wrong type for its WorldModelConfig field; unknown fields are left to `WorldModelConfig.from_dict`."""
    for f in dataclasses.fields(WorldModelConfig):
        if f.name not in raw:
            continue
        kind = str(f.type).split("[")[0].strip()
        test, wanted = _JSON_KINDS.get(kind, (lambda v: True, ""))
        if not test(raw[f.name]):
            raise ValueError(f"field {f.name!r} must be {wanted}, got {raw[f.name]!r}")
