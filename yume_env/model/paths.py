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


RUN_MODEL_FOLDER = "model"  # where `yume-env train world` exports its world inside a run folder


def resolve_model_path(spec: str | Path) -> Path:
    """The model folder `spec` names: a folder with config.json (or the published Yume-5B files);
    a `yume-env train world` run folder (its exported `model/`); or a Hugging Face Hub repo id
    ("owner/name"), resolved by `huggingface_hub.snapshot_download` (the local cache when
    HF_HUB_OFFLINE=1). Raises FileNotFoundError naming what was looked for."""
    path = Path(spec)
    if path.is_dir():
        if not (path / "config.json").is_file() and (path / RUN_MODEL_FOLDER / "config.json").is_file():
            return path / RUN_MODEL_FOLDER  # a run folder of `yume-env train world`
        if not (path / "config.json").is_file() and (path / "run.json").is_file():
            raise FileNotFoundError(
                f"{path} is a `yume-env train world` run that has not exported its world yet; "
                'call the same command again until it prints "exported": true'
            )
        return path
    text = str(spec)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")) and " " not in text:
        try:
            from huggingface_hub import snapshot_download
        except ImportError as exc:  # optional: only Hub ids need it
            raise FileNotFoundError(
                f"model {text!r} is no folder here, and huggingface_hub (to fetch it as a Hub "
                "repo id) is not installed: pip install huggingface_hub"
            ) from exc
        try:
            return Path(snapshot_download(repo_id=text))
        except Exception as exc:  # offline without a cached copy, unknown repo, no network
            raise FileNotFoundError(
                f"model {text!r} is no folder here and could not be fetched from the Hugging Face "
                f"Hub ({type(exc).__name__}: {exc}); pass a model folder"
            ) from exc
    raise FileNotFoundError(
        f"model folder {path} does not exist; pass a folder written by save_pretrained, "
        "a `yume-env train world` run folder, or a Hub repo id (owner/name)"
    )
