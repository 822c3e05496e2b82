"""The one motion law (`yume_env.motion`): batched equals one world at a time, numpy equals torch,
the speeds and axes of `yume_env.actions`, and poses seen from an episode's origin."""

from __future__ import annotations

import math

import numpy as np
import torch
from tolerances import POSE_ATOL

from yume_env import actions as A
from yume_env.actions import parse_action
from yume_env.motion import camera_to_world, clip_poses, dead_reckon, relative_to


def test_batched_dead_reckoning_equals_each_world_alone_to_float64_rounding():
    rng = np.random.default_rng(0)
    together, alone = np.zeros((16, 4)), np.zeros((16, 4))
    for _ in range(50):
        acts = rng.integers(0, 9, (16, 2))
        together = dead_reckon(together, acts, 2)[:, -1]
        alone = np.stack([dead_reckon(alone[i : i + 1], acts[i : i + 1], 2)[0, -1] for i in range(16)])
        # sin/cos of 16 worlds run numpy's SIMD kernel, of one world its scalar tail: an ulp apart
        np.testing.assert_allclose(together, alone, rtol=0, atol=POSE_ATOL)


def test_numpy_and_torch_follow_the_same_law():
    acts = np.random.default_rng(1).integers(0, 9, (3, 20, 2))
    a = clip_poses(acts, 2)
    b = clip_poses(torch.as_tensor(acts), 2).double().numpy()  # float32 in torch
    assert a.shape == b.shape == (3, 41, 4)
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_walking_and_turning_follow_the_action_speeds():
    pose = np.zeros((1, 4))
    step = lambda p, text: dead_reckon(p, np.array([parse_action(text)]), 2)[:, -1]  # noqa: E731
    pose = step(pose, "W")
    np.testing.assert_allclose(pose[0], [0.0, A.MOVE_SPEED, 0.0, 0.0])  # forward is +z at yaw 0
    pose = step(pose, "→")
    assert np.isclose(pose[0, 2], A.TURN_SPEED)  # yaw > 0 pans right
    before = pose[0, :2].copy()
    pose = step(pose, "W")
    np.testing.assert_allclose(
        pose[0, :2] - before, A.MOVE_SPEED * np.array([np.sin(A.TURN_SPEED), np.cos(A.TURN_SPEED)])
    )
    for _ in range(20):  # pitch stops at the limit
        pose = step(pose, "↑")
    assert np.isclose(pose[0, 3], A.MAX_PITCH)
    r = camera_to_world(pose[:, 0], 0.0, pose[:, 1], pose[:, 2], pose[:, 3])[0][:3, :3]
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)  # a rotation
    assert r[1, 2] < 0  # tilting up turns the view axis (+z) towards -y (up in OpenCV's frame)


def test_poses_seen_from_an_origin_start_at_zero_and_turn_with_it():
    origin = np.array([[3.0, -2.0, math.radians(90), 0.1]])
    np.testing.assert_allclose(relative_to(origin, origin), [[0, 0, 0, 0.1]], atol=1e-12)
    ahead = dead_reckon(origin, np.array([parse_action("W")]), 2)[:, -1]  # one step along the origin's heading
    np.testing.assert_allclose(relative_to(origin, ahead), [[0, A.MOVE_SPEED, 0, 0.1]], atol=1e-12)
