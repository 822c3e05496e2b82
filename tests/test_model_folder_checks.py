"""Model folders are checked when loaded (issue 31, item 4).

NaN weights, config.json edits that keep every tensor shape, and damaged files are refused with an
error naming the file (and the key or field); folders written before the config fingerprint existed
(the shipped default world) still load.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from test_env_support import tiny_world, tiny_world_dir

from yume_env.model import WorldModel
from yume_env.model.checkpoint import CONFIG_KEY, FINGERPRINT_KEY, CheckpointError, load_safetensors, save_safetensors
from yume_env.model.paths import default_world_path
from yume_env.model.task_head import TaskHead


@pytest.fixture(scope="module")
def recalling(tmp_path_factory) -> Path:
    """A saved tiny world with pose memory and one recalled view (recall_frames can be edited)."""
    own = tiny_world()
    model = WorldModel.from_config(own.config.replace(pose_memory=True, recall_frames=1), seed=0, text=own.text)
    return model.save_pretrained(tmp_path_factory.mktemp("recalling") / "world")


@pytest.fixture
def world(tmp_path) -> Path:
    """A copy of the tiny test world (saved by this version: its weights record their config)."""
    return Path(shutil.copytree(tiny_world_dir(), tmp_path / "world"))


def edit_config(folder: Path, **changes) -> None:
    raw = json.loads((folder / "config.json").read_text())
    raw.update(changes)
    (folder / "config.json").write_text(json.dumps(raw))


def poison(file: Path, key: str | None = None, value: float = float("nan")) -> str:
    """Writes `value` into one tensor of a safetensors file (keeping its metadata); returns the key."""
    tensors, meta = load_safetensors(file)
    key = key or sorted(k for k, t in tensors.items() if t.is_floating_point())[0]
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = value
    save_safetensors(file, tensors, meta)
    return key


@pytest.mark.parametrize(
    "file, value",
    [("dit.safetensors", float("nan")), ("vae.safetensors", float("inf")), ("task_head.safetensors", float("nan"))],
)
def test_non_finite_weights_are_refused_naming_the_file_and_key(world, file, value):
    head = TaskHead(16, (8, 8))
    save_safetensors(world / "task_head.safetensors", head.state_dict(), head.metadata())
    key = poison(world / file, value=value)
    with pytest.raises(CheckpointError, match=r"holds NaN or infinite values") as err:
        WorldModel.from_pretrained(world)
    assert str(world / file) in str(err.value) and repr(key) in str(err.value)


@pytest.mark.parametrize(
    "field, value", [("num_heads", 2), ("text_tokens", 3), ("history_attention", "global"), ("recall_frames", 2)]
)
def test_config_edits_that_keep_every_shape_are_refused_naming_the_fields(recalling, tmp_path, field, value):
    folder = Path(shutil.copytree(recalling, tmp_path / "world"))
    edit_config(folder, **{field: value})
    with pytest.raises(
        CheckpointError,
        match=rf"config\.json differs in \['{field}'\] from the config "
        r"dit\.safetensors was saved with",
    ) as err:
        WorldModel.from_pretrained(folder)
    assert str(folder / "config.json") in str(err.value)


def test_sampling_fields_and_fps_may_still_be_edited(world):
    edit_config(world, sample_steps=2, shift=1.5, fps=12)
    model = WorldModel.from_pretrained(world)
    assert (model.config.sample_steps, model.config.shift, model.config.fps) == (2, 1.5, 12)


def test_weights_record_their_config_and_old_folders_without_it_still_load():
    _, meta = load_safetensors(Path(tiny_world_dir()) / "dit.safetensors")
    assert FINGERPRINT_KEY in meta and json.loads(meta[CONFIG_KEY])["num_heads"] == 4
    _, shipped = load_safetensors(default_world_path() / "dit.safetensors")
    assert FINGERPRINT_KEY not in shipped  # written before the fingerprint: that check is skipped
    assert WorldModel.from_pretrained(default_world_path()).config.height == 64


@pytest.mark.parametrize(
    "damage, file, pattern",
    [
        (lambda f: edit_config(f, vae=5), "config.json", r"field 'vae' must be a JSON object, got 5"),
        (lambda f: edit_config(f, dim="128"), "config.json", r"field 'dim' must be an integer, got '128'"),
        (lambda f: edit_config(f, qk_norm=1), "config.json", r"field 'qk_norm' must be true or false"),
        (
            lambda f: edit_config(f, vae={"type": "nope", "spatial_compression": 8}),
            "config.json",
            r"differs in \['vae'\]",
        ),
        (
            lambda f: save_safetensors(
                f / "task_head.safetensors", TaskHead(8, (8, 8)).state_dict(), TaskHead(8, (8, 8)).metadata()
            ),
            "task_head.safetensors",
            r"reads latents of 8 channels at \(8, 8\), this world makes 16 at \(8, 8\)",
        ),
        (
            lambda f: save_safetensors(f / "task_head.safetensors", TaskHead(16, (8, 8)).state_dict(), {}),
            "task_head.safetensors",
            r"lacks the task head's sizes",
        ),
        (lambda f: ((f / "config.json").unlink(), (f / "config.json").mkdir()), "config.json", r"is not a file"),
    ],
)
def test_damaged_files_are_named(world, damage, file, pattern):
    damage(world)
    with pytest.raises((CheckpointError, FileNotFoundError), match=pattern) as err:
        WorldModel.from_pretrained(world)
    assert str(world / file) in str(err.value)


def test_an_unknown_vae_type_in_a_folder_without_the_record_names_config_json(world):
    for name in ("dit.safetensors", "vae.safetensors"):  # as written before the fingerprint existed
        tensors, meta = load_safetensors(world / name)
        save_safetensors(world / name, tensors, {k: v for k, v in meta.items() if not k.startswith("yume_env.")})
    edit_config(world, vae={"type": "nope", "spatial_compression": 8})
    with pytest.raises(CheckpointError, match=r"config\.json: its 'vae' entry .* builds no VAE .*nope") as err:
        WorldModel.from_pretrained(world)
    assert str(world / "config.json") in str(err.value)


def test_a_weight_of_the_wrong_kind_is_refused_naming_the_key(world):
    tensors, meta = load_safetensors(world / "dit.safetensors")
    key = sorted(k for k, t in tensors.items() if t.is_floating_point())[0]
    tensors[key] = tensors[key].to(torch.int32)
    save_safetensors(world / "dit.safetensors", tensors, meta)
    with pytest.raises(
        CheckpointError, match=rf"dit\.safetensors has tensors of the wrong kind .*'{key}': file torch.int32"
    ):
        WorldModel.from_pretrained(world)
