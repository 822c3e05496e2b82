"""The world model: Wan2.2-style DiT with TSCM memory (`dit`, `tscm`, `tscm_memory`, `rope`),
its config and presets (`config`), and the pipeline around it (`pipeline`, `paths`, ...).

Exports `WorldModelConfig` and `build_dit`; `WorldModel`, `WorldState`, `WorldNoise` and `default_world_path`
are imported lazily so this package imports even where the pipeline's dependencies are absent.
"""

from __future__ import annotations

import importlib
from typing import Any

from yume_env.model.config import WorldModelConfig
from yume_env.model.dit import build_dit

_LAZY = {
    "WorldModel": "yume_env.model.pipeline",
    "WorldState": "yume_env.model.world_state",
    "WorldNoise": "yume_env.model.noise",
    "default_world_path": "yume_env.model.paths",
}

__all__ = ["WorldModelConfig", "build_dit", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'yume_env.model' has no attribute {name!r}")
