"""Bad model folders: each failure names the file, the keys or the mismatch, and the fix."""

import json
import shutil

import pytest
import torch

from yume_env.model import WorldModel, WorldModelConfig
from yume_env.model.checkpoint import CheckpointError, load_safetensors, save_safetensors
from yume_env.model.paths import default_world_path
from yume_env.model.text import TextEmbedding, TextEncoder
from yume_env.model.text_cache import TextConditioner


class FakeMiniLM(TextEncoder):
    """Stands in for MiniLM (same name and width) so these tests never load transformers."""

    name, model_id, tokens_per_text, dim = "minilm", "sentence-transformers/all-MiniLM-L6-v2", 1, 384

    def encode(self, texts):
        emb = torch.ones(len(texts), 1, 384)
        return TextEmbedding(emb, torch.ones(len(texts), 1, dtype=torch.bool))


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    model = WorldModel.from_config(WorldModelConfig.preset("tiny"), seed=0, text=TextConditioner.build(FakeMiniLM()))
    path = tmp_path_factory.mktemp("good") / "world"
    model.save_pretrained(path)
    return path


@pytest.fixture
def world(good, tmp_path):
    path = tmp_path / "world"
    shutil.copytree(good, path)
    return path


def test_a_missing_folder_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model folder .*nope does not exist; pass a folder written by"):
        WorldModel.from_pretrained(tmp_path / "nope")


def test_a_missing_file_names_it(world):
    (world / "dit.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"dit\.safetensors is missing \(the folder holds: config\.json"):
        WorldModel.from_pretrained(world)


def test_a_truncated_dit_is_reported_as_corrupt_or_truncated(world):
    data = (world / "dit.safetensors").read_bytes()
    (world / "dit.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"dit\.safetensors is not a readable safetensors file .*truncated"):
        WorldModel.from_pretrained(world)


def test_a_config_of_another_size_is_reported_as_a_config_mismatch(world):
    raw = json.loads((world / "config.json").read_text())
    raw.update(dim=192, ffn_dim=768)
    (world / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError) as err:
        WorldModel.from_pretrained(world)
    msg = str(err.value)
    assert "dit.safetensors does not fit the model" in msg and "wrong shapes" in msg
    assert "file (128," in msg and "model (192," in msg and "config.json" in msg and "different models" in msg


def test_missing_and_unexpected_dit_keys_are_named(world):
    tensors, meta = load_safetensors(world / "dit.safetensors")
    tensors.pop("blocks.0.self_attn.q.weight")
    tensors["blocks.9.extra.weight"] = torch.zeros(1)
    save_safetensors(world / "dit.safetensors", tensors, meta)
    with pytest.raises(CheckpointError) as err:
        WorldModel.from_pretrained(world)
    msg = str(err.value)
    assert "missing keys: 'blocks.0.self_attn.q.weight' (1)" in msg
    assert "unexpected keys: 'blocks.9.extra.weight' (1)" in msg


def test_a_vae_of_another_shape_names_the_vae_file(world):
    tensors, meta = load_safetensors(world / "vae.safetensors")
    tensors["latent_mean"] = torch.zeros(8)
    save_safetensors(world / "vae.safetensors", tensors, meta)
    with pytest.raises(
        CheckpointError, match=r"(?s)vae\.safetensors does not fit.*'latent_mean': file \(8,\) vs model \(16,\)"
    ):
        WorldModel.from_pretrained(world)


def test_an_unknown_config_key_names_the_config_file(world):
    raw = json.loads((world / "config.json").read_text())
    raw["warp_drive"] = True
    (world / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match=r"config\.json is not a valid WorldModelConfig: .*warp_drive"):
        WorldModel.from_pretrained(world)


def test_broken_json_names_the_config_file(world):
    (world / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json is not valid JSON"):
        WorldModel.from_pretrained(world)


def test_a_published_folder_is_routed_to_the_wan_loader(tmp_path, monkeypatch):
    (tmp_path / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    (tmp_path / "Wan2.2_VAE.pth").write_bytes(b"")
    seen = {}

    def fake_loader(path, device, dtype):
        seen["args"] = (path, device, dtype)
        raise RuntimeError("reached the published loader")

    import sys
    import types

    module = types.ModuleType("yume_env.model.wan.folder")
    module.load_published_folder = fake_loader
    monkeypatch.setitem(sys.modules, "yume_env.model.wan.folder", module)
    with pytest.raises(RuntimeError, match="reached the published loader"):
        WorldModel.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert seen["args"] == (tmp_path, "cpu", torch.bfloat16)


def test_default_world_path_names_the_folder_when_absent(monkeypatch, tmp_path):
    path = default_world_path(must_exist=False)
    assert path.parts[-3:] == ("yume_env", "assets", "default_world")
    if not (path / "config.json").is_file():
        with pytest.raises(FileNotFoundError, match=r"default_world has no config\.json"):
            default_world_path()


def test_a_cache_from_other_weights_is_rebuilt_with_the_configs_encoder(world, monkeypatch):
    import yume_env.model.pipeline as pipeline

    class OtherMiniLM(FakeMiniLM):
        model_id = "someone/else"

    TextConditioner.build(OtherMiniLM()).save(world)
    built = []
    monkeypatch.setattr(
        pipeline, "build_text_encoder", lambda name, folder=None: built.append((name, folder)) or FakeMiniLM()
    )
    model = WorldModel.from_pretrained(world)
    assert built == [("minilm", world)] and model.text.model_id == FakeMiniLM.model_id
    assert TextConditioner.from_cache(world).model_id == FakeMiniLM.model_id  # rewritten on disk
