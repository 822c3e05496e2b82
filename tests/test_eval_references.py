"""The evaluation's reference predictors (copy the last burn-in frame, the simulator in another world,
the other worlds' mean frame): scored like the learned world, simulators only, in the report."""

import json

import numpy as np
import pytest
import torch

from yume_env.eval import evaluate, runner, write_json, write_report
from yume_env.eval.fidelity import (
    OTHER_WORLD_SEED_OFFSET,
    REFERENCES,
    constant_prediction_scores,
    other_world_scores,
    other_world_simulators,
    references,
)
from yume_env.eval.metrics import PSNR_CAP_DB, ssim
from yume_env.eval.report import REFERENCE_LABELS
from yume_env.eval.rollout import Rollout, burn_in
from yume_env.eval.simulate import random_actions

pytest.importorskip("yume_env.sim")

# The tiny random world and untrained probes of the end-to-end eval tests, and their results.
from test_eval_report import probes_dir, results, tiny_world  # noqa: E402,F401  (fixtures)

SEEDS = [11, 12]
BURN_IN, STEPS, HORIZONS = 2, 5, (1, 3)


class Size:  # all that burn_in reads from a model
    frame_size, frames_per_step = (32, 32), 2


def simulator_rollout(seeds=SEEDS, burn=BURN_IN, steps=STEPS) -> Rollout:
    """A rollout with simulator frames only (the references never read the model's side)."""
    rng = np.random.default_rng(0)
    start = burn_in(Size(), list(seeds), burn, rng)
    actions = np.stack([random_actions(rng, steps) for _ in seeds])
    sim = np.stack([[s.step(a).frames for a in acts] for s, acts in zip(start.sims, actions)])
    return Rollout(
        history=start.frames,
        burn_actions=start.actions,
        actions=actions,
        effective=np.zeros_like(actions),
        sim=sim,
        model=sim.copy(),
        step_seconds=np.zeros(steps),
    )


def psnr_by_hand(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(B, S, F, H, W, 3) uint8 -> (S,) PSNR in dB (peak 1, capped), mean over sub-frames, then worlds."""
    err = (predicted.astype(np.float64) - truth.astype(np.float64)) / 255.0
    mse = np.maximum((err**2).mean(axis=(-3, -2, -1)), 10.0 ** (-PSNR_CAP_DB / 10))
    return (10 * np.log10(1 / mse)).mean(axis=2).mean(axis=0)


def other_world_frames(roll: Rollout) -> np.ndarray:
    """The other worlds' frames (B, S, F, H, W, 3), regenerated independently of `references`."""
    sims = other_world_simulators(SEEDS, roll.burn_actions, Size.frame_size, Size.frames_per_step)
    return np.stack([[s.step(a).frames for a in acts] for s, acts in zip(sims, roll.actions)])


@pytest.fixture(scope="module")
def roll():
    return simulator_rollout()


@pytest.fixture(scope="module")
def refs(roll):
    return references(roll, SEEDS, HORIZONS, progress=False)


def test_every_reference_has_a_finite_curve_per_step_and_its_horizons(refs):
    assert set(refs) == set(REFERENCES) == set(REFERENCE_LABELS)
    for name, ref in refs.items():
        assert ref["about"] == REFERENCES[name] and ref["about"]
        for key in ("psnr_curve", "ssim_curve"):
            assert len(ref[key]) == STEPS and np.isfinite(ref[key]).all(), (name, key)
        assert all(0 < v < PSNR_CAP_DB for v in ref["psnr_curve"]), name
        assert all(-1 <= v <= 1 for v in ref["ssim_curve"]), name
        for h in HORIZONS:
            assert ref[f"psnr@{h}"] == pytest.approx(ref["psnr_curve"][h - 1])
            assert ref[f"ssim@{h}"] == pytest.approx(ref["ssim_curve"][h - 1])
            assert ref[f"psnr_mean_to@{h}"] == pytest.approx(np.mean(ref["psnr_curve"][:h]))


def test_copy_last_reference_is_the_repeated_last_burn_in_frame(roll, refs):
    repeated = np.broadcast_to(roll.history[:, -1][:, None, None], roll.sim.shape)
    ref = refs["copy_last_burn_in_frame"]
    np.testing.assert_allclose(ref["psnr_curve"], psnr_by_hand(repeated, roll.sim), atol=1e-3)
    want_ssim = ssim(np.ascontiguousarray(repeated), roll.sim).mean(dim=(0, 2)).numpy()  # (S,)
    np.testing.assert_allclose(ref["ssim_curve"], want_ssim, atol=1e-5)


def test_other_world_is_another_world_under_the_same_actions_and_deterministic(roll, refs):
    frames = other_world_frames(roll)
    assert not np.array_equal(frames, roll.sim)
    np.testing.assert_allclose(refs["other_world"]["psnr_curve"], psnr_by_hand(frames, roll.sim), atol=1e-3)
    assert max(refs["other_world"]["ssim_curve"]) < 0.9  # a different street, not the evaluated one
    assert references(roll, SEEDS, HORIZONS, progress=False) == refs  # same inputs, same numbers
    # Built like the evaluated simulators: with the evaluated seeds it *is* the evaluated world.
    same_p, same_s, _ = other_world_scores(roll, [s - OTHER_WORLD_SEED_OFFSET for s in SEEDS], progress=False)
    assert np.allclose(same_p, PSNR_CAP_DB) and np.allclose(same_s, 1.0, atol=1e-5)


def test_mean_frame_reference_is_one_constant_image(roll, refs):
    frames = other_world_frames(roll)
    _, _, mean_frame = other_world_scores(roll, SEEDS, progress=False)
    assert mean_frame.shape == (32, 32, 3) and mean_frame.dtype == np.uint8
    assert np.array_equal(mean_frame, np.round(frames.astype(np.float64).mean(axis=(0, 1, 2))).astype(np.uint8))
    constant = np.broadcast_to(mean_frame, roll.sim.shape)
    np.testing.assert_allclose(
        refs["other_worlds_mean_frame"]["psnr_curve"], psnr_by_hand(constant, roll.sim), atol=1e-3
    )
    # Against a simulator that shows the same frames at every step, a constant prediction scores a flat curve.
    still = np.broadcast_to(roll.sim[:, :1], roll.sim.shape)
    p, s = constant_prediction_scores(mean_frame, still, progress=False)
    assert np.allclose(p, p[:, :1]) and np.allclose(s, s[:, :1])
    np.testing.assert_allclose(p.mean(0), psnr_by_hand(constant, still), atol=1e-3)


def test_references_need_one_seed_per_episode(roll):
    with pytest.raises(ValueError, match="one seed per rollout episode"):
        references(roll, SEEDS[:1], HORIZONS, progress=False)


@pytest.mark.slow
def test_evaluation_reports_the_references_in_json_and_markdown(results, tmp_path):
    ar = results["autoregressive"]
    assert set(ar["references"]) == set(REFERENCES) and "references" in results["seconds"]
    text = write_report(results, tmp_path / "report.md").read_text()
    data = json.loads(write_json(results, tmp_path / "eval.json").read_text())
    assert data["autoregressive"]["references"]["other_world"]["about"] == REFERENCES["other_world"]
    assert "| predictor | PSNR@1 (dB) | SSIM@1 | PSNR@3 (dB) | SSIM@3 |" in text
    assert f"| **learned world** | {ar['psnr@1']:.2f} | {ar['ssim@1']:.3f} | {ar['psnr@3']:.2f} |" in text
    for name, label in REFERENCE_LABELS.items():
        ref = ar["references"][name]
        assert (
            f"| {label} | {ref['psnr@1']:.2f} | {ref['ssim@1']:.3f} | {ref['psnr@3']:.2f} | {ref['ssim@3']:.3f} |"
            in text
        )
    assert "plausible but different street" in text and "rewards blur" in text


@pytest.mark.slow
def test_a_report_of_results_without_references_still_writes(results, tmp_path):
    old = {**results, "autoregressive": {k: v for k, v in results["autoregressive"].items() if k != "references"}}
    text = write_report(old, tmp_path / "old.md").read_text()
    assert "| predictor |" not in text and "autoregressive.png" in text


@pytest.mark.slow
def test_references_leave_every_other_measure_unchanged(tiny_world, probes_dir, results, monkeypatch):
    from test_eval_report import SMALL

    from yume_env.eval import EvalConfig, Probes

    monkeypatch.setattr(runner, "references", lambda *args, **kwargs: {})
    without = evaluate(tiny_world[0], Probes.load(probes_dir), EvalConfig(**SMALL), model_name="tiny", progress=False)
    timed = {"steps_per_s", "batched_world_steps_per_s"}
    assert {k: v for k, v in without["metrics"].items() if k not in timed} == {
        k: v for k, v in results["metrics"].items() if k not in timed
    }
    assert without["autoregressive"]["psnr_curve"] == results["autoregressive"]["psnr_curve"]
    assert without["loop_closure"]["memory_on_psnr"] == results["loop_closure"]["memory_on_psnr"]
    assert without["event_following"]["model"]["per_event"] == results["event_following"]["model"]["per_event"]
    torch.testing.assert_close(
        torch.as_tensor(without["autoregressive"]["_frames"]["model"]),
        torch.as_tensor(results["autoregressive"]["_frames"]["model"]),
        rtol=0,
        atol=0,
    )
