"""Pose memory: dead-reckoned poses per latent frame, their features relative to the chunk being
generated, and a world that carries them in its state and reads them in its history tokens."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from model_support import awake, small_config, synthetic_text
from tolerances import assert_frames_close

from yume_env.actions import CAMERAS, KEYS
from yume_env.model.pipeline import WorldModel
from yume_env.model.pose_memory import POSE_FEATURES, relative_features
from yume_env.model.retarget import retarget
from yume_env.motion import clip_poses
from yume_env.sim import Simulator

pytestmark = pytest.mark.usefixtures("one_thread")
W, NONE, RIGHT = KEYS.index("W"), KEYS.index("None"), CAMERAS.index("→")


def test_dead_reckoning_matches_the_envs_pose_and_the_simulators_free_walk():
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 9, size=(12, 2))
    poses = clip_poses(torch.as_tensor(actions)[None], 2)[0].double()  # (1 + 24, 4), float32 steps
    exact = clip_poses(actions[None], 2)[0]  # the same law in float64
    np.testing.assert_allclose(poses.numpy(), exact, atol=1e-4)
    sim = Simulator(32, 32, 2, seed=0)
    sim.reset(seed=3)
    x0, z0, yaw0 = (float(np.ravel(v)[0]) for v in (sim.x, sim.z, sim.yaw))
    for a in np.array([[W, 0]] * 2 + [[NONE, RIGHT]] * 3 + [[W, 0]] * 2):
        sim.step(a)
    p = clip_poses(torch.tensor([[W, 0]] * 2 + [[NONE, RIGHT]] * 3 + [[W, 0]] * 2)[None], 2)[0, -1].double()
    c, s = math.cos(yaw0), math.sin(yaw0)  # the simulator's frame rotated to start at yaw 0
    dx, dz = float(np.ravel(sim.x)[0]) - x0, float(np.ravel(sim.z)[0]) - z0
    assert (c * dx - s * dz, s * dx + c * dz) == pytest.approx((p[0].item(), p[1].item()), abs=1e-3)


def test_features_say_same_view_for_a_turn_back_and_differ_for_a_turned_frame():
    steps = torch.tensor([[NONE, RIGHT]] * 3 + [[NONE, CAMERAS.index("←")]] * 3)[None]
    poses = clip_poses(steps, 2)[0]
    f = relative_features(poses, poses[-1])
    assert f.shape == (13, POSE_FEATURES)
    assert torch.allclose(f[0], f[-1], atol=1e-5)  # the start view is where the chunk looks now
    assert not torch.allclose(f[6], f[-1], atol=1e-2)  # 30 degrees away
    # seen from anywhere, the same relative pose gives the same features (no absolute pose leaks in)
    shift = torch.tensor([3.0, -2.0, 0.0, 0.0])
    assert torch.allclose(relative_features(poses + shift, poses[-1] + shift), f, atol=1e-5)


@pytest.fixture(scope="module")
def worlds():
    mc = small_config(sample_steps=1, patch_size=[1, 1, 1], tscm_schedule="tiny-recall")
    plain = awake(WorldModel.from_config(mc, seed=0, text=synthetic_text(mc.text_dim)), seed=1)
    return plain, retarget(plain, pose_memory=True)


def _frames(n):
    return np.random.default_rng(0).integers(0, 255, (n, 32, 32, 3)).astype(np.uint8)


def test_a_world_given_pose_memory_generates_what_it_did_until_trained(worlds):
    plain, posed = worlds
    acts = np.repeat(np.array([[W, RIGHT]] * 4), 2, 0)
    a, b = plain.init_state(_frames(9), acts), posed.init_state(_frames(9), acts)
    assert a.history.poses is None and b.history.poses[0].shape == (9, 4)
    assert b.history.poses[0][-1, 2].item() == pytest.approx(4 * math.radians(10), abs=1e-5)  # yaw after 4 turns
    assert torch.equal(b.pose[0], b.history.poses[0][-1])  # the world's pose is its newest frame's
    for t in range(25):  # past the point where old frames are thinned: poses are kept with them
        act = np.array([[W, RIGHT if t % 3 else 0]])
        fa = plain.step([a], act, torch.Generator().manual_seed(t)).frames
        fb = posed.step([b], act, torch.Generator().manual_seed(t)).frames
        assert np.array_equal(fa, fb)
    poses = b.history.poses[0]
    assert poses.shape[0] == b.history.latents[0].shape[1] < b.history.n_history[0]
    restored = posed.load_state(b.to_dict())
    assert torch.equal(restored.history.poses[0], poses) and torch.equal(b.clone().history.poses[0], poses)


def test_the_pose_embedding_changes_what_a_world_generates_and_batches_like_single_worlds(worlds):
    _, posed = worlds
    moved = retarget(posed)  # a copy with its own weights
    with torch.no_grad():
        moved.dit.pose_embedding.net[2].weight.normal_(0, 0.5)
    acts = np.repeat(np.array([[W, RIGHT]] * 3), 2, 0)
    s1, s2 = moved.init_state(_frames(7), acts), moved.init_state(_frames(3), acts[:2])
    one = [moved.step([s.clone()], np.array([[W, 0]]), torch.Generator().manual_seed(0)).frames for s in (s1, s2)]
    both = moved.step(
        [s1.clone(), s2.clone()],
        np.array([[W, 0], [W, 0]]),
        [torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)],
    ).frames
    assert_frames_close(both[0], one[0][0])  # batched vs single: within a grey level (tests/tolerances.py)
    assert_frames_close(both[1], one[1][0])
    base = posed.step([s1.clone()], np.array([[W, 0]]), torch.Generator().manual_seed(0)).frames
    assert not np.array_equal(base, one[0])


def test_a_pose_memory_world_refuses_states_without_poses_and_temporal_vaes(worlds):
    plain, posed = worlds
    with pytest.raises(ValueError, match=r"made by another model \(config differs in \['pose_memory'\]"):
        posed.step([plain.init_state(_frames(1))], np.array([[W, 0]]))
    with pytest.raises(ValueError, match="temporal compression"):
        posed.config.replace(vae={**posed.config.vae, "temporal_compression": 4})
