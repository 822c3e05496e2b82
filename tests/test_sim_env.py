"""YumeSim-v0: registration, both env checkers, spaces, info keys, reset options, events."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import yume_env  # noqa: F401  (registers the envs)
from yume_env.env.sim_env import YumeSimEnv


def test_gymnasium_env_checker_passes():
    from gymnasium.utils.env_checker import check_env

    check_env(gym.make("YumeSim-v0", height=32, width=32, render_mode="rgb_array").unwrapped, skip_render_check=False)


@pytest.mark.parametrize("flatten", [False, True])
def test_sb3_env_checker_passes(flatten):
    sb3 = pytest.importorskip("stable_baselines3.common.env_checker")
    sb3.check_env(YumeSimEnv(flatten_actions=flatten), warn=True)  # 64x64: SB3's CnnPolicy needs >= 36


def test_make_gives_spaces_and_time_limit():
    env = gym.make("YumeSim-v0")
    assert env.action_space == gym.spaces.MultiDiscrete([9, 9])
    assert env.observation_space.shape == (64, 64, 3) and env.observation_space.dtype == np.uint8
    assert env.spec.max_episode_steps == 200
    assert gym.make("YumeSim-v0", flatten_actions=True).action_space == gym.spaces.Discrete(81)


def test_step_info_keys_and_types():
    env = gym.make("YumeSim-v0", height=32, width=32)
    obs, info = env.reset(seed=0)
    obs2, reward, terminated, truncated, info = env.step(np.array([1, 0]))
    assert obs2.shape == (32, 32, 3) and obs2.dtype == np.uint8
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
    assert info["frames"].shape == (2, 32, 32, 3) and np.array_equal(info["frames"][-1], obs2)
    assert info["pose"].shape == (4, 4) and info["pose"].dtype == np.float64
    assert info["poses"].shape == (2, 4, 4) and np.array_equal(info["poses"][-1], info["pose"])
    assert info["step"] == 1 and info["event"] == "" and isinstance(info["beacon_distance"], float)
    assert info["is_success"] is False


def test_observations_are_fresh_arrays():
    env = YumeSimEnv(height=32, width=32)
    obs, _ = env.reset(seed=0)
    obs[:] = 0
    assert env.render() is None and env.sim.render().any()


def test_reset_event_option_and_set_event():
    env = YumeSimEnv(height=32, width=32)
    _, info = env.reset(seed=0, options={"event": "night falls"})
    assert info["event"] == "night falls"
    env.set_event("it starts to snow")
    assert env.step(np.array([0, 0]))[-1]["event"] == "it starts to snow"


def test_unknown_reset_option_names_the_accepted_keys():
    env = YumeSimEnv(height=32, width=32)
    with pytest.raises(ValueError, match="event"):
        env.reset(options={"evnet": "night falls"})


def test_string_and_flat_actions():
    env = YumeSimEnv(height=32, width=32, flatten_actions=True)
    env.reset(seed=0)
    env.step(10)  # W (1) * 9 + → (1)
    with pytest.raises(ValueError):
        env.step(81)
    env2 = YumeSimEnv(height=32, width=32)
    env2.reset(seed=0)
    assert env2.step("W →")[-1]["step"] == 1


def test_walking_to_the_beacon_terminates_with_success():
    env = YumeSimEnv(height=32, width=32)
    env.reset(seed=3)
    sim = env.sim
    total, terminated = 0.0, False
    for _ in range(60):  # steer toward the beacon: turn if it is off-axis, else walk
        rel = np.linalg.inv(sim.pose) @ np.array([sim.beacon[0, 0], -1.6, sim.beacon[0, 1], 1.0])
        bearing = np.arctan2(rel[0], rel[2])
        cam = 1 if bearing > 0.1 else 2 if bearing < -0.1 else 0
        _, r, terminated, _, info = env.step(np.array([1, cam]))
        total += r
        if terminated:
            break
    assert terminated and info["is_success"] and total > 10.0
