"""YumeWorld-v0 reset options (event, image, frames + actions, state), their errors, and rewards."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from test_env_support import START_EVENTS, start_views, tiny_world, tiny_world_dir

import yume_env  # noqa: F401
from yume_env.env.world_env import YumeWorldEnv


def make(**kwargs):
    return gym.make("YumeWorld-v0", model=tiny_world_dir(), disable_env_checker=True, **kwargs)


def size():
    return tuple(tiny_world().frame_size)


def image(k=0):
    return start_views(size())[k]


def test_default_start_is_drawn_from_the_models_start_frames():
    obs, info = make().reset(seed=0)
    views = start_views(size())
    k = [np.array_equal(obs, v) for v in views].index(True)
    assert info["event"] == START_EVENTS[k]


def test_event_option_is_reported_in_info():
    _, info = make().reset(seed=0, options={"event": "thick fog rolls in"})
    assert info["event"] == "thick fog rolls in"


def test_image_option_is_the_first_observation():
    obs, info = make().reset(seed=0, options={"image": image(2)})
    np.testing.assert_array_equal(obs, image(2))
    assert info["event"] == ""


@pytest.mark.parametrize("bad", ["wrong_shape", "wrong_channels", "batched"])
def test_image_option_with_wrong_shape_says_the_expected_shape(bad):
    h, w = size()
    value = {
        "wrong_shape": np.zeros((h + 16, w, 3), np.uint8),
        "wrong_channels": np.zeros((h, w, 4), np.uint8),
        "batched": np.zeros((1, h, w, 3), np.uint8),
    }[bad]
    with pytest.raises(ValueError, match=rf"'image'.*\({h}, {w}, 3\)"):
        make().reset(options={"image": value})


def test_image_option_with_wrong_dtype_raises_type_error():
    with pytest.raises(TypeError, match="uint8"):
        make().reset(options={"image": image().astype(np.float32)})


def test_image_option_that_is_not_an_array_raises_type_error():
    with pytest.raises(TypeError, match="numpy array"):
        make().reset(options={"image": image().tolist()})


def test_frames_option_burns_in_a_history():
    frames = start_views(size())
    actions = np.array([[1, 0], [1, 1]])
    env = make()
    obs, info = env.reset(seed=0, options={"frames": frames, "actions": actions})
    np.testing.assert_array_equal(obs, frames[-1])
    assert info["step"] == 0
    *_, info = env.step("W")
    assert info["frames"].shape[0] == tiny_world().frames_per_step


def test_burn_in_history_changes_what_comes_next():
    frames = start_views(size())
    a, b = make(), make()
    a.reset(seed=0, options={"frames": frames, "actions": np.array([[1, 0], [1, 1]])})
    b.reset(seed=0, options={"image": frames[-1]})
    assert not np.array_equal(a.step("W")[4]["frames"], b.step("W")[4]["frames"])


@pytest.mark.parametrize(
    "options, error, pattern",
    [
        ({"frames": "start"}, TypeError, "numpy array"),
        (
            {"frames": np.zeros((2, 8, 8, 3), np.uint8), "actions": np.zeros((1, 2), int)},
            ValueError,
            r"\(T, \d+, \d+, 3\)",
        ),
        ({"frames": "SIZE3", "actions": np.zeros((3, 2), int)}, ValueError, r"\(2, 2\)"),
        ({"frames": "SIZE3", "actions": np.zeros((2, 2), np.float32)}, TypeError, "actions"),
        ({"frames": "SIZE3", "actions": np.array([[9, 0], [0, 0]])}, ValueError, r"row 0"),
        ({"frames": "SIZE3"}, ValueError, "needs 'actions'"),
        ({"actions": np.zeros((1, 2), int)}, ValueError, "needs 'frames'"),
        ({"event": 3}, TypeError, "'event' must be a str"),
        ({"state": {"not": "a snapshot"}}, TypeError, "get_state"),
        ({"imagee": 1}, ValueError, r"unknown reset option.*'imagee'.*expected"),
        ({"image": "IMAGE", "frames": "SIZE3"}, ValueError, "exclude each other"),
    ],
)
def test_malformed_reset_options_raise_with_what_was_expected(options, error, pattern):
    views = start_views(size())
    fill = {"SIZE3": views, "IMAGE": views[0]}
    options = {k: fill.get(v, v) if isinstance(v, str) else v for k, v in options.items()}
    with pytest.raises(error, match=pattern):
        make().reset(seed=0, options=options)


def test_options_that_are_not_a_dict_raise_type_error():
    with pytest.raises(TypeError, match="dict"):
        make().reset(options=[("event", "x")])


def test_world_without_start_frames_asks_for_an_image():
    from yume_env.model import WorldModel, WorldModelConfig

    bare = WorldModel.from_config(WorldModelConfig.preset("tiny"), seed=0)
    env = YumeWorldEnv(model=bare)
    with pytest.raises(ValueError, match="no start frames.*'image'"):
        env.reset(seed=0)
    obs, _ = env.reset(seed=0, options={"image": image()})
    np.testing.assert_array_equal(obs, image())


def test_state_option_resumes_a_saved_world_exactly():
    env = make()
    env.reset(seed=5)
    newest = env.step("W")[0]
    snapshot = env.unwrapped.get_state()
    first = [env.step(a)[4]["frames"] for a in ("W", "→", "W+A ↑")]
    env.step("S")  # move on, then branch back twice
    for _ in range(2):
        obs, info = env.reset(options={"state": snapshot})
        np.testing.assert_array_equal(obs, newest)
        again = [env.step(a)[4]["frames"] for a in ("W", "→", "W+A ↑")]
        for x, y in zip(first, again):
            np.testing.assert_array_equal(x, y)
    assert env.step("W")[4]["step"] == 5


def test_state_option_restores_pose_step_and_event():
    env = make()
    env.reset(seed=1, options={"event": "night falls"})
    *_, info = env.step("W")
    snapshot = env.unwrapped.get_state()
    env.reset(seed=2, options={"event": ""})
    obs, info2 = env.reset(options={"state": snapshot})
    np.testing.assert_array_equal(info2["pose"], info["pose"])
    assert info2["step"] == 1 and info2["event"] == "night falls"
    np.testing.assert_array_equal(obs, info["frames"][-1])


def test_state_saved_to_disk_resumes_identically(tmp_path):
    env = make()
    env.reset(seed=3)
    env.step("W")
    path = env.unwrapped.save_state(tmp_path / "branch")
    expected = [env.step(a)[4]["frames"] for a in ("W", "←")]
    fresh = make()
    fresh.reset(options={"state": YumeWorldEnv.load_state(path)})
    got = [fresh.step(a)[4]["frames"] for a in ("W", "←")]
    for x, y in zip(expected, got):
        np.testing.assert_array_equal(x, y)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp folders left


def test_load_state_of_a_missing_folder_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="snapshot.json"):
        YumeWorldEnv.load_state(tmp_path)


def test_get_state_before_reset_says_to_reset():
    with pytest.raises(RuntimeError, match="reset"):
        make().unwrapped.get_state()


def test_reward_fn_callable_gets_the_step_and_can_terminate():
    seen = []

    def reward(ctx):
        seen.append((ctx.frames.shape, tuple(ctx.action), ctx.step))
        return 1.5, ctx.step >= 2

    env = make(reward_fn=reward)
    env.reset(seed=0)
    assert env.step("W")[1:3] == (1.5, False)
    assert env.step("→")[1:3] == (1.5, True)
    assert seen[1][1:] == ((0, 1), 2)


def test_reward_none_gives_zero_and_never_terminates():
    env = make(reward_fn="none")
    env.reset(seed=0)
    assert env.step("W")[1:3] == (0.0, False)


def test_reward_beacon_without_task_head_is_a_clear_error():
    with pytest.raises(ValueError, match="task head"):
        make(reward_fn="beacon")


def test_unknown_reward_name_lists_the_choices():
    with pytest.raises(ValueError, match="beacon.*none"):
        make(reward_fn="distance")
