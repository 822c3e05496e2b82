"""Where the package keeps its default world."""

from __future__ import annotations

from pathlib import Path


def default_world_path(must_exist: bool = True) -> Path:
    """`<package>/assets/default_world`: the small world `YumeWorld-v0` loads when given no model.

    Raises FileNotFoundError naming the path when the folder (its config.json) is absent, unless
    `must_exist=False` (the training stage writes it there).
    """
    path = Path(__file__).resolve().parent.parent / "assets" / "default_world"
    if must_exist and not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"the default world is missing: {path} has no config.json. Reinstall yume-env (the wheel ships it) "
            "or train one with the training stages (they write this folder), or pass a model folder explicitly"
        )
    return path
