"""The spread term: zero at the truth, it grows a shrunk chunk's bands back, and it reaches the
card and the command line of the unroll stage."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from yume_env.train.stages.band_spread import band_rms, band_spread_loss


def _smooth(shape, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) + torch.randn(shape[:2] + (1, 1, 1), generator=g)


def test_band_rms_splits_detail_from_the_coarse_part():
    x = torch.zeros(1, 1, 1, 8, 8)
    x[..., ::2, :] = 1.0  # a stripe every other row: all of it in the finest band
    bands = band_rms(x)
    assert bands.shape == (1, 1, 3)
    assert bands[0, 0, 0] == pytest.approx(0.5) and bands[0, 0, 1:].abs().max() < 1e-5
    y = torch.zeros(1, 1, 1, 8, 8)
    y[..., :4, :] = 1.0  # top half bright: only the band around the mean
    assert band_rms(y)[0, 0, :2].abs().max() < 1e-5 and band_rms(y)[0, 0, 2] == pytest.approx(0.5)
    assert band_rms(torch.zeros(2, 3, 2, 6, 6)).shape == (2, 3, 2)  # 6x6 does not split at 4
    with pytest.raises(ValueError, match=r"\(B, C, F, h, w\)"):
        band_rms(torch.zeros(3, 8, 8))


@pytest.mark.slow
def test_the_loss_is_zero_at_the_truth_and_its_gradient_restores_a_shrunk_spread():
    truth = _smooth((2, 4, 2, 8, 8), 0)
    assert band_spread_loss(truth, truth).item() == pytest.approx(0.0, abs=1e-10)
    mean = truth.mean(dim=(2, 3, 4), keepdim=True)
    shrunk = (mean + 0.5 * (truth - mean)).requires_grad_(True)
    opt = torch.optim.Adam([shrunk], lr=0.02)
    first = band_spread_loss(shrunk, truth)
    for _ in range(150):
        opt.zero_grad()
        band_spread_loss(shrunk, truth).backward()
        opt.step()
    assert band_spread_loss(shrunk, truth).item() < 0.05 * first.item()
    ratio = band_rms(shrunk.detach()) / band_rms(truth)
    assert ratio.min() > 0.85 and ratio.max() < 1.15
    flat = torch.zeros(1, 1, 1, 8, 8, requires_grad=True)  # a flat chunk still gets a finite gradient
    band_spread_loss(flat, truth[:1, :1, :1]).backward()
    assert torch.isfinite(flat.grad).all()
    with pytest.raises(ValueError, match="must match"):
        band_spread_loss(truth, truth[:1])


@pytest.mark.slow
def test_the_unroll_module_adds_the_term_and_reports_it(world_and_batch):
    from yume_env.train.stages.unroll import UnrollModule

    world, batch = world_and_batch
    off = UnrollModule(copy.deepcopy(world.dit), world.vae, 1.0, 0.0)
    on = UnrollModule(copy.deepcopy(world.dit), world.vae, 1.0, 0.0, spread_weight=2.0)
    loss_off, metrics_off = off(batch)
    loss_on, metrics_on = on(batch)
    assert "band_spread_loss" not in metrics_off and metrics_on["band_spread_loss"] > 0
    assert loss_on.item() == pytest.approx(loss_off.item() + 2.0 * metrics_on["band_spread_loss"].item(), rel=1e-5)


@pytest.mark.slow
def test_unroll_command_takes_the_spread_weight_and_names_it_in_the_card(tmp_path, world_and_batch):
    from yume_env.cli import main
    from yume_env.model.pipeline import WorldModel

    world, _ = world_and_batch
    world.save_pretrained(tmp_path / "one_step")
    run = tmp_path / "run"
    assert main(["train", "unroll", "--model", str(tmp_path / "one_step"), "--out", str(run), "--smoke",
                 "--device", "cpu", "--spread-weight", "0.5", "--steps", "3"]) == 0
    state = json.loads((run / "unroll.json").read_text())
    assert state["exported"] and state["spread_weight"] == 0.5
    card = (run / "model" / "MODEL_CARD.md").read_text()
    assert "--spread-weight 0.5" in card and "0.5 x the spread term" in card
    assert WorldModel.from_pretrained(run / "model").config.sample_steps == 1


@pytest.fixture(scope="module")
def world_and_batch():
    from model_support import awake
    from test_train_distill import _text
    from yume_env.model.pipeline import WorldModel
    from yume_env.data.sim_clips import SimClipSource
    from yume_env.train.recipes.default_world import smoke_recipe
    from yume_env.train.stages.unroll import UnrollConfig, UnrollStream

    mc = smoke_recipe().model_config().replace(sample_steps=1)
    world = awake(WorldModel.from_config(mc, seed=0, text=_text(mc.text_dim)), seed=1)
    cfg = UnrollConfig(batch_size=3, max_burn_in=1, min_unrolled=2, max_unrolled=2, pool_clips=3, pixel_weight=0.0)
    batch = UnrollStream(SimClipSource(mc.height, mc.width, 2), world.vae, world.text, mc, cfg).make(0)
    return world, batch
