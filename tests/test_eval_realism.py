"""The measures blur cannot fool: the Fréchet distance (against closed forms), the sharpness ratio,
and both on simulator frames with the shipped probes' features: a blurred copy and the constant
mean frame score worse than the simulator in other worlds."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from yume_env.eval.features import FEATURE_DIM, FrechetFeatures, projection
from yume_env.eval.fidelity import mean_frame
from yume_env.eval.frechet import Gaussian, frechet_distance, sqrtm_psd
from yume_env.eval.metrics import laplacian_energy
from yume_env.eval.probes import Probes, default_probes_path
from yume_env.eval.realism import action_script, realism, window
from yume_env.eval.rollout import burn_in
from yume_env.eval.simulate import random_actions

pytest.importorskip("yume_env.sim")

WORLDS, STEPS = 6, 4
HORIZONS = (2, 4)


class Size:  # all that burn_in reads from a model
    frame_size, frames_per_step = (64, 64), 2


def simulator_frames(seed0: int, actions: np.ndarray) -> np.ndarray:
    """(B, S, F, 64, 64, 3) simulator frames of worlds seed0.. after a 2-step burn-in, under `actions`."""
    rng = np.random.default_rng(0)
    start = burn_in(Size(), [seed0 + i for i in range(len(actions))], 2, rng)
    return np.stack([[sim.step(a).frames for a in acts] for sim, acts in zip(start.sims, actions)])


def blur(frames: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """A gaussian blur (7 taps, replicated edges) of uint8 frames (..., H, W, 3)."""
    x = torch.as_tensor(frames.reshape(-1, *frames.shape[-3:])).float().permute(0, 3, 1, 2)
    g = torch.exp(-((torch.arange(7.0) - 3) ** 2) / (2 * sigma**2))
    g = (g / g.sum()).repeat(3, 1, 1, 1)
    x = F.conv2d(F.pad(x, (3, 3, 0, 0), mode="replicate"), g.view(3, 1, 1, 7), groups=3)
    x = F.conv2d(F.pad(x, (0, 0, 3, 3), mode="replicate"), g.view(3, 1, 7, 1), groups=3)
    return x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy().reshape(frames.shape)


@pytest.fixture(scope="module")
def net():
    return FrechetFeatures(Probes.load(default_probes_path()))


@pytest.fixture(scope="module")
def frames():
    """The evaluated worlds' frames and other worlds' under the same actions."""
    rng = np.random.default_rng(1)
    actions = np.stack([random_actions(rng, STEPS) for _ in range(WORLDS)])
    return simulator_frames(5_000, actions), simulator_frames(9_000, actions)


# ---- the Fréchet distance --------------------------------------------------------------------------


def test_frechet_distance_of_a_set_with_itself_is_zero_and_it_is_symmetric():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    b = rng.normal(size=(150, 8)) @ rng.normal(size=(8, 8)) + 0.5
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, b) > 0.1
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)


def test_frechet_distance_matches_closed_forms():
    # Diagonal covariances: |mu_a - mu_b|^2 + sum (sigma_a - sigma_b)^2.
    ga = Gaussian(np.array([0.0, 1.0]), np.diag([4.0, 1.0]), 10)
    gb = Gaussian(np.array([3.0, 1.0]), np.diag([1.0, 9.0]), 10)
    assert frechet_distance(ga, gb) == pytest.approx(9.0 + 1.0 + 4.0)
    # A point mass against a Gaussian: |mu|^2 + tr(S).
    point = Gaussian(np.zeros(2), np.zeros((2, 2)), 1)
    assert frechet_distance(point, gb) == pytest.approx(9.0 + 1.0 + 10.0)
    # Two Gaussians with the same rotated covariance differ by their means only.
    r = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))[0]
    s = r @ np.diag([5.0, 0.5, 0.0]) @ r.T  # singular: PSD, not PD
    assert frechet_distance(Gaussian(np.zeros(3), s, 5), Gaussian(np.ones(3), s, 5)) == pytest.approx(3.0, abs=1e-6)


def test_sqrtm_psd_squares_back_and_clips_round_off():
    m = np.random.default_rng(2).normal(size=(6, 4))
    s = m @ m.T  # rank 4 of 6
    root = sqrtm_psd(s)
    np.testing.assert_allclose(root @ root, s, atol=1e-9)
    np.testing.assert_allclose(root, root.T)
    assert np.isfinite(sqrtm_psd(s - 1e-12 * np.eye(6))).all()


def test_gaussian_fit_needs_feature_vectors():
    with pytest.raises(ValueError, match="features shaped"):
        Gaussian.fit(np.zeros(5))
    assert Gaussian.fit(np.ones((1, 3))).cov.shape == (3, 3)


# ---- sharpness -------------------------------------------------------------------------------------


def test_laplacian_energy_is_zero_on_flat_images_and_lower_after_blur(frames):
    sim = frames[0]
    flat = np.full((2, 16, 16, 3), 120, dtype=np.uint8)
    assert torch.allclose(laplacian_energy(flat), torch.zeros(2))
    energy = laplacian_energy(sim)
    assert energy.shape == sim.shape[:3] and (energy > 0).all()
    assert (laplacian_energy(blur(sim)) < energy).all()
    assert float(laplacian_energy(sim).mean() / laplacian_energy(sim).mean()) == 1.0


def test_laplacian_energy_of_a_checkerboard_is_known():
    board = (np.indices((8, 8)).sum(0) % 2 * 255).astype(np.uint8)
    rgb = np.repeat(board[..., None], 3, axis=-1)
    # luminance 0 / 1 alternating: the Laplacian reads +-4 at every valid position
    assert float(laplacian_energy(rgb)) == pytest.approx(16.0, rel=1e-5)


# ---- both on simulator frames ----------------------------------------------------------------------


def test_features_are_the_event_classifiers_penultimate_layer_projected(net, frames):
    sim = frames[0][:2, :2]
    hidden = net.penultimate(sim)
    assert hidden.shape == (8, net.width) and (hidden >= -0.3).all()  # after a SiLU
    feats = net(sim)
    assert feats.shape == (8, FEATURE_DIM)
    np.testing.assert_allclose(feats, hidden @ projection(net.width), rtol=1e-12)
    p = projection(512)
    np.testing.assert_allclose(p.T @ p, np.eye(FEATURE_DIM), atol=1e-12)
    np.testing.assert_array_equal(projection(512), p)  # seeded: the same every run
    assert net.describe()["dim"] == FEATURE_DIM


@pytest.fixture(scope="module")
def scored(net, frames):
    """`realism` of four sets of "generated" frames against the evaluated worlds' simulator frames:
    those frames themselves, the other worlds' frames, and blurred copies of both."""
    sim, other = frames
    return {
        name: realism(net, sim, generated, other, HORIZONS, steps=STEPS)
        for name, generated in (
            ("itself", sim),
            ("other", other),
            ("blurred other", blur(other)),
            ("blurred itself", blur(sim)),
        )
    }


def test_frames_against_themselves_read_zero_distance_and_full_sharpness(scored):
    r = scored["itself"]
    for h in HORIZONS:
        assert r["world"][f"frechet@{h}"] == pytest.approx(0.0, abs=1e-6)
        assert r["world"][f"sharpness@{h}"] == pytest.approx(1.0)
    assert r["frames_per_window"] == {"2": WORLDS * 2, "4": WORLDS * 4}  # the last frame of each step
    assert r["windows"] == {"2": [1, 2], "4": [1, 4]}
    assert np.allclose(r["sharpness_curve"], 1.0)


def test_mean_frame_scores_worse_than_another_world(scored):
    r = scored["itself"]
    for h in HORIZONS:
        assert r["mean_frame"][f"frechet@{h}"] > 2 * r["other_world"][f"frechet@{h}"] > 0
        assert r["mean_frame"][f"sharpness@{h}"] < 0.5 * r["other_world"][f"sharpness@{h}"]


def test_a_blurred_copy_scores_worse_than_the_frames_themselves(scored):
    sharp, soft = scored["other"], scored["blurred other"]
    for h in HORIZONS:
        assert soft["world"][f"frechet@{h}"] > 1.5 * sharp["world"][f"frechet@{h}"]
        assert soft["world"][f"sharpness@{h}"] < 0.6 * sharp["world"][f"sharpness@{h}"]
        assert sharp["world"][f"frechet@{h}"] == pytest.approx(sharp["other_world"][f"frechet@{h}"])
    # a blurred copy of the evaluated street itself reads farther than a sharp other street
    own = scored["blurred itself"]
    assert own["world"]["frechet@4"] > own["other_world"]["frechet@4"] and own["world"]["sharpness@4"] < 0.6


def test_windows_end_at_the_horizon():
    assert window(16) == (1, 16) and window(64) == (49, 64) and window(256) == (241, 256)
    assert window(3, 16) == (1, 3)


def test_action_script_is_the_loop_then_a_turn_back_repeated():
    script = action_script(256)
    assert script.shape == (256, 2)
    np.testing.assert_array_equal(script[:64], script[64:128])
    assert (script[:6] == [1, 0]).all() and (script[6:24, 1] == 1).all()  # W x 6, then → x 18
    assert (script[48:56, 1] == 1).all() and (script[56:64, 1] == 2).all()  # → x 8, ← x 8


def test_mean_frame_is_the_rounded_average():
    frames = np.random.default_rng(3).integers(0, 256, (3, 4, 2, 5, 5, 3), dtype=np.uint8)
    want = np.round(frames.astype(np.float64).mean(axis=(0, 1, 2))).astype(np.uint8)
    np.testing.assert_array_equal(mean_frame(frames), want)
