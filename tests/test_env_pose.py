"""Dead reckoning of the camera pose: the batched update equals one world at a time (to float64
rounding), and the motion follows the action speeds and conventions of `yume_env.actions`
(docs/INTERFACES.md)."""

from __future__ import annotations

import numpy as np
from tolerances import POSE_ATOL

from yume_env import actions as A
from yume_env.actions import parse_action
from yume_env.env.pose import Pose, advance, matrices


def test_batched_advance_equals_each_world_alone_to_float64_rounding():
    rng = np.random.default_rng(0)
    together = [Pose() for _ in range(16)]
    alone = [Pose() for _ in range(16)]
    for _ in range(50):
        keys, cams = rng.integers(0, 9, 16), rng.integers(0, 9, 16)
        batch = advance(together, keys, cams, sub_frames=2)
        singles = np.stack([advance([p], keys[i:i + 1], cams[i:i + 1], sub_frames=2)[0] for i, p in enumerate(alone)])
        # sin/cos of 16 worlds and of one may take different kernels (SIMD body, scalar tail): ulps apart
        np.testing.assert_allclose(batch, singles, rtol=0, atol=POSE_ATOL)
    np.testing.assert_array_equal(batch, np.stack([p.matrix() for p in together]))  # same numbers, same path


def test_walking_and_turning_follow_the_action_speeds():
    p = Pose()
    key, cam = parse_action("W")
    m = advance([p], [key], [cam], sub_frames=2)[0]
    np.testing.assert_allclose(m[:3, 3], [0.0, 0.0, A.MOVE_SPEED])  # forward is +z at yaw 0
    np.testing.assert_allclose(m[:3, :3], np.eye(3))
    key, cam = parse_action("→")
    advance([p], [key], [cam])
    assert np.isclose(p.yaw, A.TURN_SPEED)  # yaw > 0 pans right
    key, cam = parse_action("W")
    before = p.position.copy()
    advance([p], [key], [cam])
    step = p.position - before
    np.testing.assert_allclose(step, A.MOVE_SPEED * np.array([np.sin(A.TURN_SPEED), 0.0, np.cos(A.TURN_SPEED)]))
    key, cam = parse_action("↑")
    for _ in range(20):  # pitch stops at the limit
        advance([p], [key], [cam])
    assert np.isclose(p.pitch, A.MAX_PITCH)
    r = matrices(p.position[None], np.array([p.yaw]), np.array([p.pitch]))[0][:3, :3]
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)  # a rotation
    assert r[1, 2] < 0  # tilting up turns the view axis (+z) towards -y (up in OpenCV's frame)
