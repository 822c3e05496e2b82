"""Recipe presets of `yume-env train world`: one JSON file each, naming only what differs from
`yume_env.train.recipes.world.WorldRecipe`'s defaults (keys starting with "_" are comments)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def preset_names() -> list[str]:
    """The presets shipped here (file names without .json)."""
    return sorted(p.name.removesuffix(".json") for p in resources.files(__name__).iterdir() if p.name.endswith(".json"))


def read_preset(name: str) -> dict[str, Any]:
    """The changes a preset makes to the recipe's defaults."""
    names = preset_names()
    if name not in names:
        raise ValueError(f"unknown preset {name!r}; choose one of {names}")
    return json.loads(resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8"))
