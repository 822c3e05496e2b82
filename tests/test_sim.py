"""The procedural simulator: determinism, motion, collisions, events, the beacon task, backends."""

from __future__ import annotations

import numpy as np
import pytest

from yume_env.actions import KEY_MOTION, MAX_PITCH, MOVE_SPEED, TILT_SPEED, TURN_SPEED
from yume_env.sim import EVENTS, Simulator, match_event
from yume_env.sim.backend import NUMPY
from yume_env.sim.city import is_free
from yume_env.sim.motion import BODY_RADIUS

SIZE = 32


def test_same_seed_gives_identical_frames_and_poses():
    a, b = Simulator(SIZE, SIZE, seed=7), Simulator(SIZE, SIZE, seed=7)
    assert np.array_equal(a.reset(3), b.reset(3))
    for act in ([1, 1], [5, 3], [0, 2]):
        sa, sb = a.step(np.array(act)), b.step(np.array(act))
        assert np.array_equal(sa.frames, sb.frames)
        assert np.array_equal(sa.poses, sb.poses)


def test_different_seeds_give_different_worlds():
    assert not np.array_equal(Simulator(SIZE, SIZE).reset(1), Simulator(SIZE, SIZE).reset(2))


def test_step_returns_sub_frames_and_poses():
    sim = Simulator(SIZE, 48, sub_frames=3, seed=0)
    out = sim.step(np.array([1, 0]))
    assert out.frames.shape == (3, SIZE, 48, 3) and out.frames.dtype == np.uint8
    assert out.poses.shape == (3, 4, 4)
    assert np.allclose(out.poses[-1], sim.pose)
    assert isinstance(out.reward, float) and isinstance(out.terminated, bool)


@pytest.mark.parametrize("size", [(0, 64), (64, 40), (63, 64)])
def test_resolution_must_be_multiple_of_16(size):
    with pytest.raises(ValueError, match="multiple of 16"):
        Simulator(*size)


@pytest.mark.parametrize("key", range(9))
def test_each_key_moves_the_camera_by_move_speed_in_its_direction(key):
    sim = Simulator(SIZE, SIZE, seed=0)
    sim.reset(11)
    before = sim.pose
    sim.step(np.array([key, 0]))
    delta_cam = before[:3, :3].T @ (sim.pose[:3, 3] - before[:3, 3])  # in the start camera frame
    expected = np.array([KEY_MOTION[key][0], 0.0, KEY_MOTION[key][1]]) * MOVE_SPEED
    assert np.allclose(delta_cam, expected, atol=1e-9)


@pytest.mark.parametrize(
    "camera,dyaw,dpitch",
    [(0, 0, 0), (1, 1, 0), (2, -1, 0), (3, 0, 1), (4, 0, -1), (5, 1, 1), (6, -1, 1), (7, 1, -1), (8, -1, -1)],
)
def test_each_camera_move_turns_by_its_speed(camera, dyaw, dpitch):
    sim = Simulator(SIZE, SIZE, seed=0)
    sim.reset(11)
    yaw, pitch = sim.yaw[0], sim.pitch[0]
    sim.step(np.array([0, camera]))
    turned = (sim.yaw[0] - yaw + np.pi) % (2 * np.pi) - np.pi
    assert turned == pytest.approx(dyaw * TURN_SPEED)
    assert sim.pitch[0] - pitch == pytest.approx(dpitch * TILT_SPEED)


def test_pitch_is_clamped():
    sim = Simulator(SIZE, SIZE, seed=0)
    for _ in range(20):
        sim.step(np.array([0, 3]))
    assert sim.pitch[0] == pytest.approx(MAX_PITCH)


def test_invalid_action_is_rejected_with_its_value():
    with pytest.raises(ValueError, match="9"):
        Simulator(SIZE, SIZE, seed=0).step(np.array([9, 0]))


def test_walking_into_buildings_never_enters_them():
    blocked = 0
    for seed in range(4):
        sim = Simulator(SIZE, SIZE, sub_frames=2, seed=seed)
        sim.reset(seed)
        sim.yaw = sim.yaw + np.pi / 2  # face across the street, toward the blocks
        start = np.array([sim.x[0], sim.z[0]])
        for _ in range(40):
            sim.step(np.array([1, 0]))
            assert is_free(NUMPY, sim.x, sim.z, sim.world_seed, BODY_RADIUS * 0.99)[0]
        moved = np.hypot(*(np.array([sim.x[0], sim.z[0]]) - start))
        blocked += moved < 40 * MOVE_SPEED * 0.9
    assert blocked >= 1, "no walk ever met a wall: the collision test saw no building"


def _changed_fraction(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.abs(a.astype(int) - b.astype(int)).max(-1) > 30).mean())


@pytest.mark.parametrize("name", list(EVENTS))
def test_every_event_changes_the_frames_visibly(name):
    plain, event = Simulator(48, 48, seed=0), Simulator(48, 48, seed=0)
    plain.reset(5), event.reset(5)
    event.set_event(EVENTS[name][0])
    for _ in range(3):
        a, b = plain.step(np.array([0, 0])), event.step(np.array([0, 0]))
    assert event.event == EVENTS[name][0]
    assert _changed_fraction(a.frames[-1], b.frames[-1]) > 0.01, f"{name} barely changes the frame"


def test_the_ghost_mask_is_exactly_the_pixels_the_ghost_changes():
    plain, haunted = Simulator(48, 48, seed=0), Simulator(48, 48, seed=0)
    plain.reset(5), haunted.reset(5)
    haunted.set_event(EVENTS["ghost"][0])
    for step in range(4):
        a = plain.step(np.array([0, 0]), ghost_mask=True)
        b = haunted.step(np.array([0, 0]), ghost_mask=True)
        assert b.ghost_mask.shape == (2, 48, 48) and b.ghost_mask.dtype == bool
        assert not a.ghost_mask.any()  # no ghost, no mask
        assert np.array_equal(b.ghost_mask, (a.frames != b.frames).any(-1)), step
    assert b.ghost_mask[-1].sum() > 10  # faded in: a sprite, not a few dots
    assert plain.step(np.array([0, 0])).ghost_mask is None  # only on request


def test_events_start_at_the_next_step_and_can_be_cleared():
    sim = Simulator(SIZE, SIZE, seed=0)
    first = sim.render()
    sim.set_event("night falls")
    assert sim.event == "" and np.array_equal(sim.render(), first)
    dark = sim.step(np.array([0, 0])).frames[-1]
    assert sim.event == "night falls" and dark.mean() < first.mean() - 20
    sim.set_event("")
    assert sim.step(np.array([0, 0])).info["event"] == ""


def test_unknown_event_is_reported_but_draws_nothing():
    a, b = Simulator(SIZE, SIZE, seed=0), Simulator(SIZE, SIZE, seed=0)
    b.set_event("a dragon lands on the roof")
    sa, sb = a.step(np.array([1, 0])), b.step(np.array([1, 0]))
    assert sb.info["event"] == "a dragon lands on the roof"
    assert np.array_equal(sa.frames, sb.frames)


@pytest.mark.parametrize(
    "text,name",
    [
        ("It starts to SNOW", "snow"),
        ("  night   falls ", "night"),
        ("the streetlights turn on.", "lights"),
        ("snow", "snow"),
        ("snowing?", None),
    ],
)
def test_match_event_is_case_and_space_insensitive(text, name):
    assert match_event(text) == name


def test_events_have_paraphrases():
    assert len(EVENTS) >= 5 and all(len(p) >= 3 for p in EVENTS.values())


def test_beacon_starts_in_view_6_to_15_m_ahead():
    sim = Simulator(SIZE, SIZE, seed=0)
    for seed in range(10):
        sim.reset(seed)
        d = sim.beacon_distance()
        assert 6.0 <= d <= 15.0
        rel = np.linalg.inv(sim.pose) @ np.array([sim.beacon[0, 0], -1.6, sim.beacon[0, 1], 1.0])
        assert rel[2] > 0 and abs(rel[0] / rel[2]) < np.tan(np.deg2rad(40))  # inside the 80 deg view


def test_reward_is_distance_closed_and_reaching_terminates_with_bonus():
    sim = Simulator(SIZE, SIZE, seed=0)
    sim.reset(2)
    d0 = sim.beacon_distance()
    out = sim.step(np.array([0, 0]))
    assert out.reward == pytest.approx(0.0) and not out.terminated
    sim.x, sim.z = sim.beacon[:, 0] + 1.7, sim.beacon[:, 1].copy()  # stand next to it, then step closer
    sim.yaw = np.array([-np.pi / 2])
    before = sim.beacon_distance()
    out = sim.step(np.array([1, 0]))
    assert out.terminated and out.info["is_success"]
    assert out.reward == pytest.approx(before - sim.beacon_distance() + 10.0)
    assert d0 > 0


def test_beacon_is_drawn():
    sim = Simulator(64, 64, seed=0)
    frame = sim.reset(4)
    orange = (frame[..., 0] > 200) & (frame[..., 1] < 140) & (frame[..., 2] < 80)
    assert orange.sum() >= 10


def test_torch_renderer_matches_numpy():
    torch = pytest.importorskip("torch")
    from yume_env.sim.backend import Backend
    from yume_env.sim.render import Renderer, RenderState

    sim = Simulator(SIZE, SIZE, seed=1)
    sim.set_event("it starts to snow")
    sim.step(np.array([1, 5]))
    st = sim._state()
    tst = RenderState(**{k: torch.as_tensor(v) for k, v in vars(st).items()})
    a = Renderer(SIZE, SIZE, Backend("torch")).render(tst).numpy()
    b = sim.renderer.render(st)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 0.5
