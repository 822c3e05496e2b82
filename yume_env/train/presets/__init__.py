"""Presets of the training commands as data: `world/NAME.json` for `yume-env train world`,
`finetune/NAME.json` for `yume-env train finetune`. A preset names only what differs from the
stage's config defaults (keys starting with "_" are comments); `yume_env.train.overrides` applies
it. Reading presets imports no torch (the command line builds its parsers from them)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

STAGES = ("world", "finetune")


def preset_names(stage: str) -> list[str]:
    """The presets shipped for `stage` (file names without .json)."""
    if stage not in STAGES:
        raise ValueError(f"no presets for stage {stage!r}; stages: {list(STAGES)}")
    folder = resources.files(__name__).joinpath(stage)
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))


def read_preset(stage: str, name: str) -> dict[str, Any]:
    """The changes preset `name` of `stage` makes to the stage's config defaults."""
    names = preset_names(stage)
    if name not in names:
        raise ValueError(f"unknown {stage} preset {name!r}; choose one of {names}")
    return json.loads(resources.files(__name__).joinpath(stage, f"{name}.json").read_text(encoding="utf-8"))
