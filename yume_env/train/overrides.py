"""Config changes as data: a preset's nested changes, then `--set section.field=value` overrides,
applied to a config dataclass (`apply_changes`); an unknown name raises, naming where it came from."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from yume_env.model.config import parse_assignment


def apply_changes(config: Any, preset: dict[str, Any], overrides: list[str], where: str) -> Any:
    """A copy of dataclass `config` with the `preset` changes, then each `section.field=value`
    override applied in order; `where` names the preset in errors."""
    config = _merge(config, preset, where)
    for item in overrides:
        key, value = parse_assignment(item)
        nested: Any = value
        for part in reversed(key.split(".")):
            nested = {part: nested}
        config = _merge(config, nested, f"--set {item}")
    return config


def _merge(obj: Any, changes: dict[str, Any], where: str) -> Any:
    """A copy of dataclass `obj` with nested `changes` applied; unknown names raise, naming `where`."""
    obj = copy.deepcopy(obj)
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in changes.items():
        if key.startswith("_"):  # comments in preset files
            continue
        if key not in names:
            raise ValueError(f"{where}: {type(obj).__name__} has no field {key!r}; fields: {sorted(names)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            setattr(obj, key, _merge(current, value, where))
        elif isinstance(current, dict) and isinstance(value, dict):
            setattr(obj, key, {**current, **value})
        elif isinstance(current, tuple) and isinstance(value, list):
            setattr(obj, key, tuple(value))
        else:
            setattr(obj, key, value)
    return obj
