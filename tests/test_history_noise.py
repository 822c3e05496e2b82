"""`history_noise`: a sampling setting that tells the DiT how noisy its history is."""

import copy
import dataclasses

import numpy as np
import pytest
import torch
from model_support import awake, small_config, synthetic_text

from yume_env.model import history as history_module
from yume_env.model.pipeline import WorldModel


@pytest.fixture(scope="module")
def world():
    mc = small_config(sample_steps=1)
    return awake(WorldModel.from_config(mc, seed=0, text=synthetic_text(mc.text_dim)), seed=1)


def _step(model):
    frames = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3)).astype(np.uint8)
    state = model.join_states([model.init_state(frames), model.init_state(frames[:1])])
    return model.step(state, np.zeros((2, 2), np.int64), torch.Generator().manual_seed(0)).frames


def _with(model, level):
    view = copy.copy(model)
    view.config = dataclasses.replace(model.config, history_noise=level)
    return view


def test_the_told_level_reaches_the_history_read_and_changes_the_step(world, monkeypatch):
    seen = []
    read = history_module.History.read

    def spy(self, dit, context=None, target=None, noise_level=None):
        seen.append(noise_level)
        return read(self, dit, context=context, target=target, noise_level=noise_level)

    monkeypatch.setattr(history_module.History, "read", spy)
    clean, told = _step(world), _step(_with(world, 0.2))
    assert seen[0] is None and torch.equal(seen[1], torch.full((2,), 0.2))
    assert not np.array_equal(clean, told)
    assert np.array_equal(clean, _step(_with(world, 0.0)))  # 0 is the published clean history


@pytest.mark.parametrize("level", [-0.1, 1.0])
def test_a_level_outside_zero_to_one_is_refused(level):
    with pytest.raises(ValueError, match="history_noise"):
        small_config(history_noise=level)
