"""Training recall: clips that come back to a view (`revisit_script`), the unroll stream that
scores the return, and moving a trained world to another memory layout (`retarget`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from model_support import awake
from test_train_distill import _text
from yume_env.actions import TURN_SPEED
from yume_env.model.pipeline import WorldModel
from yume_env.model.retarget import retarget
from yume_env.sim import Simulator
from yume_env.data.sim_clips import HALF_TURN, ActionPolicy, SimClipSource, revisit_script
from yume_env.train.recipes.default_world import smoke_recipe
from yume_env.train.stages.unroll import UnrollConfig, UnrollStream

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world():
    """A one-step world with 1x1 patches and the `tiny-fine` layout (what the default world has)."""
    mc = smoke_recipe().model_config().replace(sample_steps=1, patch_size=[1, 1, 1], tscm_schedule="tiny-fine")
    return awake(WorldModel.from_config(mc, seed=0, text=_text(mc.text_dim)), seed=1)


def test_every_revisit_script_turns_a_whole_number_of_times_and_walks_back():
    rng = np.random.default_rng(0)
    kinds = set()
    for max_steps in (4, 9, 30, 36, 44, 60):
        for _ in range(40):
            script = revisit_script(rng, max_steps)
            assert 4 <= len(script) <= max_steps
            cams = script[:, 1]
            turns = np.isin(cams, [1]).sum() - np.isin(cams, [2]).sum()  # → minus ←
            assert (turns * TURN_SPEED) % (2 * np.pi) == pytest.approx(0.0, abs=1e-9) or \
                abs(turns * TURN_SPEED) == pytest.approx(2 * np.pi)
            kinds.add("loop" if len(set(cams.tolist())) <= 2 and abs(turns) == 2 * HALF_TURN else "turn back")
    assert kinds == {"loop", "turn back"}
    with pytest.raises(ValueError, match="at least 4 steps"):
        revisit_script(rng, 3)


def test_a_turn_back_in_the_simulator_ends_on_the_view_it_started_from():
    rng = np.random.default_rng(3)
    script = revisit_script(rng, 20)  # too short for a loop: always a turn away and back
    sim = Simulator(32, 32, 2, seed=0)
    start = sim.reset(seed=5)
    for a in script:
        out = sim.step(a)
    assert np.array_equal(out.frames[-1], start)


def test_revisits_end_the_chosen_clips_and_draw_nothing_when_off():
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    acts = ActionPolicy().sample(rng_a, 6, 30)
    assert not ActionPolicy().add_revisits(rng_a, acts.copy()).any()
    ActionPolicy().sample(rng_b, 6, 30)
    assert rng_a.random() == rng_b.random()  # fraction 0 draws nothing: runs without revisits are unchanged
    policy = ActionPolicy(revisit_fraction=1.0)
    acts = policy.sample(rng_a, 6, 30)
    chosen = policy.add_revisits(rng_a, acts)
    assert chosen.all()
    for clip in acts:  # each clip ends with a script: no net turn over its last steps that turn
        assert clip[-1, 0] in (0, 1)  # standing (None) or walking (W) in the script's last step
    with pytest.raises(ValueError, match="revisit_fraction"):
        ActionPolicy(revisit_fraction=1.5)


def test_a_seeker_never_steers_a_revisit_clip_off_its_script():
    src = SimClipSource(32, 32, 2, policy=ActionPolicy(seek_fraction=1.0, revisit_fraction=1.0))
    clips = src.render(3, 12, seed=4)
    rng = np.random.default_rng(4)
    expected = ActionPolicy(seek_fraction=1.0, revisit_fraction=1.0).sample(rng, 3, 12)
    rng.random(3)
    ActionPolicy(revisit_fraction=1.0).add_revisits(rng, expected)
    assert np.array_equal(clips.actions.numpy(), expected)


def test_revisit_batches_unroll_the_clips_last_chunks(world):
    mc = world.config
    cfg = UnrollConfig(batch_size=2, max_burn_in=6, min_unrolled=2, max_unrolled=3, pool_clips=2,
                       revisit_fraction=1.0, revisit_batches=1.0)
    stream = UnrollStream(SimClipSource(mc.height, mc.width, 2), world.vae, world.text, mc, cfg)
    for i in range(3):
        b = stream.make(i)
        assert b["burn_in"] + len(b["targets"]) == cfg.max_burn_in + cfg.max_unrolled  # the return is scored
    assert stream.source.policy.revisit_fraction == 1.0
    with pytest.raises(ValueError, match="revisit_batches"):
        UnrollStream(SimClipSource(mc.height, mc.width, 2), world.vae, world.text, mc,
                     UnrollConfig(revisit_batches=2.0))


def test_a_world_moved_to_another_schedule_keeps_its_weights_and_runs(world):
    moved = retarget(world, tscm_schedule="tiny-recall")
    assert moved.config.tscm_schedule == "tiny-recall" and world.config.tscm_schedule == "tiny-fine"
    old, new = world.dit.state_dict(), moved.dit.state_dict()
    assert "patch_embedding_8x.weight" in old and "patch_embedding_8x.weight" not in new  # dropped
    assert all(torch.equal(new[k], v) for k, v in old.items() if k in new)  # the rest kept
    s = moved.init_state(np.zeros((1 + 2 * 30, 32, 32, 3), np.uint8))
    assert s.history.tokens() > world.init_state(np.zeros((61, 32, 32, 3), np.uint8)).history.tokens()
    assert moved.step([s], np.array([[1, 0]]), torch.Generator().manual_seed(0)).frames.shape == (1, 2, 32, 32, 3)
    back = retarget(moved, tscm_schedule="tiny-fine")  # a new embedder starts from the patch embedding
    w = back.dit.patch_embedding_8x.weight
    assert torch.allclose(w[:, :, 0, 0, 0], back.dit.patch_embedding.weight[:, :, 0, 0, 0] / 64, atol=1e-6)
    with pytest.raises(ValueError, match="unknown TSCM schedule"):
        retarget(world, tscm_schedule="nope")
    with pytest.raises(ValueError, match="multiples of the spatial patch"):
        world.config.replace(patch_size=[1, 2, 2])


@pytest.mark.slow
def test_unroll_command_trains_under_a_new_schedule_and_keeps_it(tmp_path, world, capsys):
    from yume_env.cli import main

    world.save_pretrained(tmp_path / "one_step")
    run = tmp_path / "run"
    args = ["train", "unroll", "--model", str(tmp_path / "one_step"), "--out", str(run), "--smoke", "--device", "cpu",
            "--burn-in", "4", "--revisit", "0.5"]
    assert main(args + ["--tscm-schedule", "tiny-recall", "--call-minutes", "0.0001"]) == 0
    assert main(args + ["--tscm-schedule", "tiny"]) == 2  # bad input: one line, exit 2
    assert "trains under TSCM schedule 'tiny-recall'" in capsys.readouterr().err
    assert main(args) == 0  # the run remembers its schedule
    state = json.loads((run / "unroll.json").read_text())
    assert state["exported"] and state["tscm_schedule"] == "tiny-recall" and state["revisit_fraction"] == 0.5
    assert WorldModel.from_pretrained(run / "model").config.tscm_schedule == "tiny-recall"
    card = (run / "model" / "MODEL_CARD.md").read_text()
    assert "--revisit 0.5" in card and "--tscm-schedule tiny-recall" in card
    assert "ended by coming back to a view" in card and "moved to the TSCM schedule `tiny-recall`" in card


@pytest.mark.slow
def test_pose_memory_is_turned_on_trained_faster_and_exported_midway(tmp_path, world):
    from yume_env.cli import main

    world.save_pretrained(tmp_path / "one_step")
    run = tmp_path / "run"
    args = ["train", "unroll", "--model", str(tmp_path / "one_step"), "--out", str(run), "--smoke", "--device", "cpu",
            "--pose-memory", "--pose-lr-scale", "10"]
    assert main(args + ["--steps", "6", "--call-minutes", "0.0001"]) == 0
    assert main(args + ["--export-now"]) == 0  # the optimizer's groups match the run's
    midway = WorldModel.from_pretrained(run / "model")
    assert midway.config.pose_memory and midway.dit.pose_embedding is not None
    assert main(args) == 0
    state = json.loads((run / "unroll.json").read_text())
    assert state["exported"] and state["pose_memory"] and state["pose_lr_scale"] == 10
    trained = WorldModel.from_pretrained(run / "model")
    assert trained.dit.pose_embedding.net[2].weight.abs().sum() > 0  # it learnt from zero
    assert "--pose-memory --pose-lr-scale 10" in (run / "model" / "MODEL_CARD.md").read_text()


def test_long_revisit_clips_keep_the_other_batches_and_the_event_onsets_where_they_were(world):
    from yume_env.train.stages.unroll import clip_events, clip_steps

    cfg = UnrollConfig(batch_size=2, max_burn_in=2, min_unrolled=2, max_unrolled=2, pool_clips=2, event_weight=0.1,
                       revisit_fraction=0.5, revisit_batches=0.5, revisit_steps=20)
    assert clip_steps(cfg) == 20 and clip_steps(UnrollConfig(revisit_steps=20)) == 12  # no revisits: the window
    assert clip_events(cfg).latest_start == 4 and clip_events(UnrollConfig(event_weight=0.1)).latest_start is None
    starts = [s for _, s in clip_events(cfg).sample(np.random.default_rng(0), 400, 20) if s > 0]
    assert starts and max(starts) < 4
    mc = world.config
    stream = UnrollStream(SimClipSource(mc.height, mc.width, 2), world.vae, world.text, mc, cfg)
    ends = {b["burn_in"] + len(b["targets"]) for b in (stream.make(i) for i in range(8))}
    assert 20 in ends and min(ends) <= 4  # revisit batches at the end, the others at the start
