"""YumeWorldVectorEnv (gym.make_vec) and the SB3 adapter on the tiny random world."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from test_env_support import start_views, tiny_world_dir
from tolerances import POSE_ATOL, assert_frames_close

import yume_env  # noqa: F401


def make_vec(n=3, **kwargs):
    return gym.make_vec("YumeWorld-v0", num_envs=n, model=tiny_world_dir(), **kwargs)


def test_make_vec_uses_the_batched_class_with_same_step_autoreset():
    env = make_vec(2, max_episode_steps=5)
    assert type(env).__name__ == "YumeWorldVectorEnv"
    assert env.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert env.max_episode_steps == 5
    assert env.single_action_space == gym.spaces.MultiDiscrete([9, 9])
    assert env.action_space.shape == (2, 2) and env.action_space.contains(np.array([[8, 8], [0, 0]]))
    assert env.single_observation_space.shape == (64, 64, 3)


def test_vector_env_equals_single_envs_run_with_the_same_seeds():
    """A batch of 3 worlds against 3 single envs: different kernel paths (tests/tolerances.py), so
    frames agree within a grey level and poses to float64 rounding; the start frames are copies."""
    actions = np.array([[[1, 0], [5, 1], [0, 3]], [[2, 2], [1, 1], [4, 0]]])  # (steps, worlds, 2)
    vec = make_vec(3)
    obs, info = vec.reset(seed=10)
    vec_frames = [info["frames"]]
    for a in actions:
        obs, reward, term, trunc, info = vec.step(a)
        vec_frames.append(info["frames"])
    for i in range(3):
        single = gym.make("YumeWorld-v0", model=tiny_world_dir(), disable_env_checker=True)
        s_obs, s_info = single.reset(seed=10 + i)
        np.testing.assert_array_equal(vec_frames[0][i], s_info["frames"])
        for t, a in enumerate(actions):
            s_obs, *_, s_info = single.step(a[i])
            assert_frames_close(vec_frames[t + 1][i], s_info["frames"])
        assert_frames_close(obs[i], s_obs)
        np.testing.assert_allclose(info["pose"][i], s_info["pose"], rtol=0, atol=POSE_ATOL)


def test_vector_env_with_mixed_events_and_history_lengths_equals_single_envs():
    """Worlds of different events and history lengths in one batched step (one gathered text
    context, history appends shared across lengths) get the frames a single env gives each."""
    views = np.concatenate([start_views((64, 64), 3)] * 14)
    starts = [(25, ""), (37, "night falls"), (41, "it starts to snow"), (3, "night falls")]
    options = [{"frames": views[:n], "actions": np.ones((n - 1, 2), np.int64), "event": e} for n, e in starts]
    actions = np.array([[[1, 0], [5, 1], [0, 3], [2, 2]], [[2, 2], [1, 1], [4, 0], [8, 8]]])  # (steps, worlds, 2)
    vec = make_vec(len(starts))
    vec.reset(seed=3, options=options)
    vec_frames = [vec.step(a)[-1]["frames"] for a in actions]
    for i, opt in enumerate(options):
        single = gym.make("YumeWorld-v0", model=tiny_world_dir(), disable_env_checker=True)
        single.reset(seed=3 + i, options=opt)
        for t, a in enumerate(actions):
            *_, info = single.step(a[i])
            assert_frames_close(vec_frames[t][i], info["frames"])  # batched vs single: tests/tolerances.py


def test_worlds_started_from_one_frame_step_beside_longer_histories_with_the_spread_gain_on():
    """The shipped world keeps the spread of its newest latents (`spread_gain_max`): a world that
    holds one latent (started from an image) beside worlds that hold more steps as it does alone."""
    views = start_views((64, 64), 3)
    options = [{"image": views[0]}, {"frames": views, "actions": np.ones((2, 2), np.int64)}]
    vec = gym.make_vec("YumeWorld-v0", num_envs=2)
    vec.reset(seed=5, options=options)
    vec_frames = vec.step(np.array([[1, 0], [2, 3]]))[-1]["frames"]
    for i, opt in enumerate(options):
        single = gym.make("YumeWorld-v0", disable_env_checker=True)
        single.reset(seed=5 + i, options=opt)
        *_, info = single.step(np.array([[1, 0], [2, 3]])[i])
        assert_frames_close(vec_frames[i], info["frames"])


def test_same_step_autoreset_returns_the_new_episode_and_the_final_observation():
    vec = make_vec(2, max_episode_steps=2)
    vec.reset(seed=0)
    obs, _, term, trunc, info = vec.step(np.ones((2, 2), dtype=np.int64))
    assert not trunc.any() and "final_obs" not in info
    last, _, term, trunc, info = vec.step(np.ones((2, 2), dtype=np.int64))
    assert trunc.all() and not term.any()
    assert info["_final_obs"].all() and info["final_obs"][0].shape == (64, 64, 3)
    assert info["final_info"][1]["step"] == 2 and (info["step"] == 0).all()
    np.testing.assert_array_equal(last[0], info["frames"][0][-1])  # the new episode's start frame
    *_, info = vec.step(np.ones((2, 2), dtype=np.int64))
    assert (info["step"] == 1).all()


def _assert_same_infos(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for key, w in want.items():
        g = got[key]
        if isinstance(w, dict):
            _assert_same_infos(g, w)
            continue
        assert g.dtype == w.dtype and g.shape == w.shape, key
        if w.dtype != object:
            np.testing.assert_array_equal(g, w)
        else:
            for a, b in zip(g, w):
                assert np.array_equal(a, b) if isinstance(b, np.ndarray) else a == b, key


def test_batched_step_infos_equal_the_merged_per_world_infos_also_after_a_reset():
    from yume_env.env.core import put_world_info, world_info
    from yume_env.env.options import parse_reset_options
    from yume_env.env.snapshot import WorldSnapshot
    from yume_env.env.world_vector_env import merge_infos

    vec = make_vec(3)
    vec.reset(seed=0, options={"event": "it starts to snow"})
    vec.step(np.ones((3, 2), dtype=np.int64))
    world, rng = vec._world, np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 2, 64, 64, 3), dtype=np.uint8)
    poses = rng.normal(size=(3, 4, 4))
    batched = world.batch_info(frames, 0.25, poses)
    per_world = {i: world.info(i, frames[i], 0.25, poses[i]) for i in range(3)}
    _assert_same_infos(batched, merge_infos(per_world, 3))
    for i in range(3):  # what final_info holds for a finished world
        one = world_info(batched, i)
        assert list(one) == list(per_world[i]) and one["memory"] == per_world[i]["memory"]
        assert all(np.array_equal(one[k], per_world[i][k]) for k in ("frames", "pose", "step", "event", "latency_s"))
    _, per_world[1] = world.reset_world(1, rng, parse_reset_options(None, world.frame_size, WorldSnapshot))
    put_world_info(batched, 1, per_world[1])  # a reset's one frame beside the others' chunks
    _assert_same_infos(batched, merge_infos(per_world, 3))
    assert batched["frames"].dtype == object and batched["frames"][1].shape == (1, 64, 64, 3)


def test_vector_reset_options_per_world_and_reset_mask():
    vec = make_vec(2)
    obs, info = vec.reset(seed=0, options=[{"event": "night falls"}, None])
    assert list(info["event"]) == ["night falls", info["event"][1]]
    vec.step(np.ones((2, 2), dtype=np.int64))
    _, info = vec.reset(options={"reset_mask": np.array([False, True]), "event": "thick fog rolls in"})
    assert list(info["_step"]) == [False, True] and info["event"][1] == "thick fog rolls in"
    *_, info = vec.step(np.ones((2, 2), dtype=np.int64))
    assert list(info["step"]) == [2, 1] and info["event"][0] == "night falls"


def test_vector_set_event_and_get_state_per_world():
    vec = make_vec(2)
    vec.reset(seed=0, options={"event": ""})
    vec.set_event("it starts to snow", index=1)
    *_, info = vec.step(np.zeros((2, 2), dtype=np.int64))
    assert list(info["event"]) == ["", "it starts to snow"]
    snap = vec.get_state(1)
    assert snap.event == "it starts to snow" and snap.step == 1


@pytest.mark.parametrize("bad", [np.ones((3, 2), int), np.ones((2,), int), np.full((2, 2), 9), np.ones((2, 2)) * 0.5])
def test_wrong_vector_actions_raise_with_the_expected_shape(bad):
    vec = make_vec(2)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        vec.step(bad)


def test_flat_vector_actions_step_like_pairs():
    pairs, flat = make_vec(2), make_vec(2, flatten_actions=True)
    pairs.reset(seed=1)
    flat.reset(seed=1)
    a = pairs.step(np.array([[5, 1], [0, 2]]))[4]["frames"]
    b = flat.step(np.array([5 * 9 + 1, 2]))[4]["frames"]
    np.testing.assert_array_equal(a, b)


def test_sb3_adapter_reports_terminal_observation_and_truncation():
    from yume_env.env.sb3 import Sb3VecEnvAdapter

    venv = Sb3VecEnvAdapter(make_vec(2, max_episode_steps=1))
    venv.seed(3)
    obs = venv.reset()
    assert obs.shape == (2, 64, 64, 3) and obs.dtype == np.uint8
    venv.step_async(np.array([[1, 0], [2, 0]]))
    obs, rewards, dones, infos = venv.step_wait()
    assert dones.all() and rewards.dtype == np.float32
    assert infos[0]["terminal_observation"].shape == (64, 64, 3) and infos[0]["TimeLimit.truncated"] is True
    assert venv.env_method("set_event", "night falls", indices=[0]) == [None]
    assert venv.get_attr("frame_size") == [(64, 64), (64, 64)]


@pytest.mark.slow
def test_sb3_adapter_trains_ppo_with_a_cnn_policy():
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    from yume_env.env.sb3 import Sb3VecEnvAdapter

    class TinyCNN(BaseFeaturesExtractor):
        def __init__(self, space, features_dim=16):
            super().__init__(space, features_dim)
            self.net = torch.nn.Sequential(
                torch.nn.Conv2d(3, 8, 8, stride=8),
                torch.nn.ReLU(),
                torch.nn.Flatten(),
                torch.nn.LazyLinear(features_dim),
            )
            with torch.no_grad():
                self.net(torch.zeros(1, *space.shape))

        def forward(self, x):
            return self.net(x)

    # 4 worlds x 50 steps: 200 env steps from 50 batched forwards, one PPO update
    venv = Sb3VecEnvAdapter(make_vec(4, max_episode_steps=16, reward_fn=lambda ctx: float(ctx.action[0] == 1)))
    model = PPO(
        "CnnPolicy",
        venv,
        n_steps=50,
        batch_size=50,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs={"features_extractor_class": TinyCNN, "features_extractor_kwargs": {"features_dim": 16}},
    )
    model.learn(total_timesteps=200)
    assert model.num_timesteps == 200 and model._n_updates == 1
    action, _ = model.predict(venv.reset())
    assert action.shape == (4, 2)


def test_a_start_view_reset_again_after_steps_gives_the_same_episode_as_a_fresh_env():
    """Start views are encoded once and copied at later resets: stepping the copies never changes
    the kept state, so a world reset again (and an autoreset) replays what a fresh env gives."""
    actions = np.array([[[1, 0], [5, 1]], [[2, 2], [1, 1]], [[4, 3], [0, 2]]])  # (steps, worlds, 2)

    def episode(env):
        obs, info = env.reset(seed=4)
        frames = [info["frames"]]
        for a in actions:
            frames.append(env.step(a)[4]["frames"])
        return frames

    env = make_vec(2)
    first = episode(env)
    again = episode(env)  # the kept start states, stepped above, copied again
    fresh = episode(make_vec(2))
    for a, b, c in zip(first, again, fresh):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
