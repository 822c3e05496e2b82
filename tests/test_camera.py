"""The camera -> keys quantizer (DESIGN.md section 4) against hand-made and simulated trajectories."""

from __future__ import annotations

import numpy as np
import pytest

from yume_env.actions import CAMERAS, KEYS
from yume_env.camera import clip_label, euler_xyz, quantize_trajectory, trajectory_actions
from yume_env.sim import Simulator


def _rot(axis: str, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def _trajectory(step: np.ndarray, n: int = 5, start: np.ndarray | None = None) -> np.ndarray:
    """n poses, each the previous one composed with the relative transform `step`."""
    T = [np.eye(4) if start is None else start]
    for _ in range(n - 1):
        T.append(T[-1] @ step)
    return np.stack(T)


KEY_TRANSLATION = {
    "None": (0, 0),
    "W": (0, 1),
    "S": (0, -1),
    "A": (-1, 0),
    "D": (1, 0),
    "W+A": (-1, 1),
    "W+D": (1, 1),
    "S+A": (-1, -1),
    "S+D": (1, -1),
}
CAMERA_ANGLES = {
    "·": (0, 0),
    "→": (0, 1),
    "←": (0, -1),
    "↑": (1, 0),
    "↓": (-1, 0),
    "↑→": (1, 1),
    "↑←": (1, -1),
    "↓→": (-1, 1),
    "↓←": (-1, -1),
}


@pytest.mark.parametrize("keys", KEYS)
def test_hand_made_translation_gives_each_key(keys):
    x, z = KEY_TRANSLATION[keys]
    step = np.eye(4)
    step[:3, 3] = (0.1 * x, 0.02, 0.1 * z)  # a little vertical motion must not matter
    start = np.eye(4)
    start[:3, :3] = _rot("y", 0.7)  # labels are in the camera frame, whatever the heading
    assert quantize_trajectory(_trajectory(step, start=start)) == [(keys, "·")] * 4
    assert clip_label(_trajectory(step)) == (keys, "·")


@pytest.mark.parametrize("camera", CAMERAS)
def test_hand_made_rotation_gives_each_camera_move(camera):
    pitch, yaw = CAMERA_ANGLES[camera]
    step = np.eye(4)
    step[:3, :3] = _rot("y", 0.05 * yaw) @ _rot("x", 0.05 * pitch)
    assert quantize_trajectory(_trajectory(step)) == [("None", camera)] * 4


def test_thresholds_scale_with_stride():
    step = np.eye(4)
    step[2, 3] = 0.6e-4  # below the 1e-4 threshold per pose, above it over a stride of 2
    poses = _trajectory(step, 9)
    assert quantize_trajectory(poses) == [("None", "·")] * 8
    assert quantize_trajectory(poses, stride=2) == [("None", "·")] * 4  # 1.2e-4 < 2e-4
    step[2, 3] = 1.5e-4  # above 1e-4 per pose, 3e-4 > 2e-4 over a stride of 2
    poses = _trajectory(step, 9)
    assert quantize_trajectory(poses) == [("W", "·")] * 8
    assert quantize_trajectory(poses, stride=2) == [("W", "·")] * 4


def test_euler_xyz_matches_scipy():
    Rotation = pytest.importorskip("scipy.spatial.transform").Rotation
    rots = Rotation.random(50, random_state=0)
    assert np.allclose(euler_xyz(rots.as_matrix()), rots.as_euler("xyz"), atol=1e-9)


def test_clip_label_takes_most_common_key_and_camera_separately():
    steps = []
    for k, c in [("W", "→"), ("W", "·"), ("D", "·"), ("W", "↑")]:
        s = np.eye(4)
        s[:3, 3] = (0.1 * KEY_TRANSLATION[k][0], 0, 0.1 * KEY_TRANSLATION[k][1])
        s[:3, :3] = _rot("y", 0.05 * CAMERA_ANGLES[c][1]) @ _rot("x", 0.05 * CAMERA_ANGLES[c][0])
        steps.append(s)
    T = [np.eye(4)]
    for s in steps:
        T.append(T[-1] @ s)
    assert clip_label(np.stack(T)) == ("W", "·")


def test_bad_shape_is_rejected():
    with pytest.raises(ValueError, match=r"\(N, 4, 4\)"):
        quantize_trajectory(np.zeros((3, 3, 3)))


@pytest.mark.parametrize("key", range(9))
def test_simulator_poses_under_every_action_quantize_back(key):
    sim = Simulator(16, 16, sub_frames=2, seed=0)
    for camera in range(9):
        sim.reset(11)
        start = sim.pose[None]
        out = sim.step(np.array([key, camera]))
        poses = np.concatenate([start, out.poses])
        assert quantize_trajectory(poses) == [(KEYS[key], CAMERAS[camera])] * 2
        assert trajectory_actions(poses.astype(np.float32)).tolist() == [[key, camera]] * 2  # as saved on disk


def test_simulator_conventions_match_the_quantizer_names():
    sim = Simulator(16, 16, seed=0)
    cases = {(1, 0): ("W", "·"), (4, 0): ("D", "·"), (0, 1): ("None", "→"), (0, 3): ("None", "↑")}
    for (k, c), label in cases.items():
        sim.reset(3)
        start = sim.pose
        out = sim.step(np.array([k, c]))
        assert quantize_trajectory(np.stack([start, out.poses[0]])) == [label]
