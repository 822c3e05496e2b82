"""YumeWorld-v0 on the tiny random world: registration, spaces, checkers, determinism, actions, info."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from test_env_support import tiny_world, tiny_world_dir

import yume_env  # noqa: F401  (registers the envs)
from yume_env import actions as A
from yume_env.env import action_to_str, parse_action


def make(**kwargs):
    return gym.make("YumeWorld-v0", model=tiny_world_dir(), disable_env_checker=True, **kwargs)


def rollout(env, seed, actions, options=None):
    obs, info = env.reset(seed=seed, options=options)
    frames = [info["frames"]]
    for a in actions:
        obs, *_, info = env.step(a)
        frames.append(info["frames"])
    return np.concatenate(frames)


def test_gymnasium_env_checker_passes():
    from gymnasium.utils.env_checker import check_env

    env = gym.make("YumeWorld-v0", model=tiny_world_dir(), render_mode="rgb_array")
    check_env(env.unwrapped)


def test_sb3_env_checker_passes():
    from stable_baselines3.common.env_checker import check_env

    check_env(make(max_episode_steps=8), warn=True)


def test_make_with_module_prefix_builds_the_same_env():
    env = gym.make("yume_env:YumeWorld-v0", model=tiny_world_dir())
    assert type(env.unwrapped).__name__ == "YumeWorldEnv"


def test_action_space_is_multidiscrete_9x9_or_discrete_81_when_flattened():
    assert make().action_space == gym.spaces.MultiDiscrete([9, 9])
    assert make(flatten_actions=True).action_space == gym.spaces.Discrete(81)


def test_observation_is_newest_frame_uint8_hw3_in_box():
    env = make()
    obs, info = env.reset(seed=0)
    h, w = tiny_world().frame_size
    assert env.observation_space == gym.spaces.Box(0, 255, (h, w, 3), np.uint8)
    obs, *_, info = env.step(np.array([1, 0]))
    assert obs.dtype == np.uint8 and obs.shape == (h, w, 3)
    np.testing.assert_array_equal(obs, info["frames"][-1])


def test_step_returns_python_float_and_bools_and_fresh_arrays():
    env = make()
    env.reset(seed=0)
    obs1, reward, terminated, truncated, info1 = env.step(np.array([1, 1]))
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
    obs2, *_, info2 = env.step(np.array([1, 1]))
    assert not np.shares_memory(obs1, obs2) and not np.shares_memory(info1["frames"], info2["frames"])
    assert not np.shares_memory(info1["pose"], info2["pose"])


def test_same_seed_and_actions_give_identical_frames():
    actions = [np.array([1, 0]), np.array([5, 1]), np.array([0, 3])]
    a = rollout(make(), 7, actions)
    b = rollout(make(), 7, actions)
    np.testing.assert_array_equal(a, b)


def test_different_seeds_give_different_frames():
    actions = [np.array([1, 0])] * 2
    assert not np.array_equal(rollout(make(), 1, actions), rollout(make(), 2, actions))


def test_action_strings_and_flat_indices_step_like_arrays():
    actions = [np.array([5, 1]), np.array([1, 3])]
    ref = rollout(make(), 3, actions)
    np.testing.assert_array_equal(rollout(make(), 3, ["W+A →", "W ↑"]), ref)
    flat = [A.flatten_action(*a) for a in actions]
    np.testing.assert_array_equal(rollout(make(flatten_actions=True), 3, flat), ref)


def test_action_string_helpers_round_trip():
    assert action_to_str(parse_action("W+A →")) == "W+A →"
    np.testing.assert_array_equal(parse_action("→"), [0, 1])


@pytest.mark.parametrize("bad", [np.array([9, 0]), np.array([0, -1]), np.array([1, 2, 3]), np.array([1.0, 2.0]), "Q"])
def test_wrong_action_raises_value_error_naming_it(bad):
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action|movement key|camera") as err:
        env.step(bad)
    assert "expected" in str(err.value) or "must be" in str(err.value)


def test_wrong_flat_action_names_the_discrete_range():
    env = make(flatten_actions=True)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[0, 81\).*81"):
        env.step(81)


def test_info_reports_frames_event_pose_step_latency_memory():
    env = make()
    _, info = env.reset(seed=0, options={"event": "it starts to snow"})
    assert info["frames"].shape == (1, *tiny_world().frame_size, 3) and info["step"] == 0
    *_, info = env.step(np.array([1, 0]))
    f = tiny_world().frames_per_step
    assert info["frames"].shape == (f, *tiny_world().frame_size, 3) and info["frames"].dtype == np.uint8
    assert info["event"] == "it starts to snow" and info["step"] == 1
    assert info["pose"].shape == (4, 4) and float(info["latency_s"]) > 0
    assert set(info["memory"]) >= {"history_chunks", "memory_tokens"}


def test_pose_is_dead_reckoned_from_the_actions():
    env = make()
    env.reset(seed=0)
    for _ in range(2):
        *_, info = env.step("W")
    # the pose is integrated in float32, the precision pose memory reads it at (about 1e-7 per step)
    np.testing.assert_allclose(info["pose"][:3, 3], [0, 0, 2 * A.MOVE_SPEED], atol=1e-6)
    for _ in range(9):  # 9 x 10 degrees to the right: now looking along +x
        *_, info = env.step("→")
    np.testing.assert_allclose(info["pose"][:3, 2], [1, 0, 0], atol=1e-6)
    *_, info = env.step("↑")  # tilting up turns the view towards -y (OpenCV: y down)
    assert info["pose"][1, 2] < 0


def test_set_event_takes_effect_at_next_chunk_and_is_reported():
    env = make()
    env.reset(seed=0, options={"event": ""})
    *_, info = env.step("W")
    assert info["event"] == ""
    env.unwrapped.set_event("night falls")
    *_, info = env.step("W")
    assert info["event"] == "night falls" and env.unwrapped.event == "night falls"


def test_event_changes_the_generated_frames():
    with_event = make()
    with_event.reset(seed=4, options={"event": ""})
    without = make()
    without.reset(seed=4, options={"event": ""})
    with_event.unwrapped.set_event("a ghost suddenly appears")
    a = with_event.step("W")[4]["frames"]
    b = without.step("W")[4]["frames"]
    assert not np.array_equal(a, b)


def test_obs_size_resizes_observations_but_info_keeps_native_frames():
    env = make(obs_size=(32, 48))
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == (32, 48, 3) and obs.shape == (32, 48, 3)
    obs, *_, info = env.step("W")
    assert obs.shape == (32, 48, 3) and info["frames"].shape[1:3] == tuple(tiny_world().frame_size)


def test_max_episode_steps_truncates():
    env = gym.make("YumeWorld-v0", model=tiny_world_dir(), max_episode_steps=2)
    env.reset(seed=0)
    assert env.step("W")[3] is False
    assert env.step("W")[3] is True


def test_max_episode_steps_given_to_the_class_truncates_too():
    from yume_env.env.world_env import YumeWorldEnv

    env = YumeWorldEnv(model=tiny_world_dir(), max_episode_steps=1)
    env.reset(seed=0)
    assert env.step("W")[3] is True


def test_render_returns_newest_native_frame():
    env = make(render_mode="rgb_array", obs_size=(32, 32))
    env.reset(seed=0)
    *_, info = env.step("W")
    np.testing.assert_array_equal(env.render(), info["frames"][-1])


def test_model_folders_load_once_per_process():
    a, b = make(), make(render_mode="rgb_array")
    assert a.unwrapped.model is b.unwrapped.model


def test_sample_steps_does_not_change_the_shared_model():
    base = make()
    default = tiny_world().config.sample_steps
    other = make(sample_steps=default + 1)
    assert other.unwrapped.model.config.sample_steps == default + 1
    assert base.unwrapped.model.config.sample_steps == default and tiny_world().config.sample_steps == default
    assert other.unwrapped.model.dit is base.unwrapped.model.dit  # same weights


def test_spread_gain_max_is_per_env_and_checked():
    base = make()
    kept = make(spread_gain_max=1.5)
    assert kept.unwrapped.model.config.spread_gain_max == 1.5
    assert base.unwrapped.model.config.spread_gain_max == tiny_world().config.spread_gain_max
    assert kept.unwrapped.model.dit is base.unwrapped.model.dit  # same weights
    with pytest.raises(ValueError, match="spread_gain_max must be a number >= 1"):
        make(spread_gain_max=0.5)


def test_missing_model_folder_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        gym.make("YumeWorld-v0", model=str(tmp_path / "does-not-exist"))
