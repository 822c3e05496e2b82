"""The tensor path of YumeWorldVectorEnv (`tensors=True`): device tensors out, the numpy path's numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_env_support import start_views, tiny_world_dir, world_with_head
from tolerances import POSE_ATOL

from yume_env.env.core import resize_frame, resize_pixels
from yume_env.env.world_vector_env import YumeWorldVectorEnv

WORLDS = {
    "none": lambda: tiny_world_dir(),
    "learned": lambda: world_with_head("reward"),
    "learned, ending every step": lambda: world_with_head("reward", ends=True),
    "beacon": lambda: world_with_head("beacon"),
}


def pair(n=3, world="none", **kwargs):
    model = WORLDS[world]()
    return YumeWorldVectorEnv(n, model=model, **kwargs), YumeWorldVectorEnv(n, model=model, tensors=True, **kwargs)


@pytest.mark.parametrize("obs_size", [None, (40, 48)])
def test_tensor_path_returns_tensors_of_the_documented_dtypes_and_shapes(obs_size):
    _, env = pair(3, obs_size=obs_size)
    h, w = obs_size or (64, 64)
    obs, info = env.reset(seed=0)
    assert isinstance(obs, torch.Tensor) and obs.dtype == torch.uint8 and obs.shape == (3, h, w, 3)
    assert info["frames"].shape == (3, 1, 64, 64, 3) and "memory" not in info
    obs, reward, term, trunc, info = env.step(torch.ones((3, 2), dtype=torch.long))
    assert obs.device == env.device == torch.device("cpu") and obs.shape == (3, h, w, 3)
    assert reward.dtype == torch.float32 and reward.shape == (3,)
    assert term.dtype == trunc.dtype == torch.bool and term.shape == trunc.shape == (3,)
    assert info["frames"].dtype == torch.uint8 and info["frames"].shape == (3, env.model.frames_per_step, 64, 64, 3)
    assert info["pose"].dtype == torch.float64 and info["pose"].shape == (3, 4, 4)
    assert (
        info["step"].tolist() == [1, 1, 1] and info["_frames"].all() and list(info["event"]) == list(env._world.events)
    )


@pytest.mark.parametrize(
    ("world", "obs_size"),
    [("none", None), ("none", (40, 48)), ("learned", None), ("learned, ending every step", None), ("beacon", None)],
)
def test_tensor_path_equals_the_numpy_path_bit_for_bit_on_a_cpu(world, obs_size):
    """Same seeds and actions, 6 steps with autoresets (truncation at 2 steps, the learned head's
    terminations): observations, rewards, terminations, final observations and frames equal."""
    numpy_env, tensor_env = pair(3, world, obs_size=obs_size, max_episode_steps=2)
    obs_np, _ = numpy_env.reset(seed=7)
    obs_t, _ = tensor_env.reset(seed=7)
    np.testing.assert_array_equal(obs_t.numpy(), obs_np)
    actions = np.random.default_rng(0).integers(0, 9, (6, 3, 2))
    for a in actions:
        obs_np, r_np, term_np, trunc_np, info_np = numpy_env.step(a)
        obs_t, r_t, term_t, trunc_t, info_t = tensor_env.step(torch.as_tensor(a))
        np.testing.assert_array_equal(obs_t.numpy(), obs_np)
        np.testing.assert_array_equal(r_t.numpy(), r_np.astype(np.float32))
        np.testing.assert_array_equal(term_t.numpy(), term_np)
        np.testing.assert_array_equal(trunc_t.numpy(), trunc_np)
        np.testing.assert_array_equal(info_t["step"].numpy(), info_np["step"])
        np.testing.assert_array_equal(info_t["event"], info_np["event"])
        np.testing.assert_allclose(info_t["pose"].numpy(), np.stack(list(info_np["pose"])), rtol=0, atol=POSE_ATOL)
        done = term_np | trunc_np
        assert ("final_obs" in info_t) == done.any()
        for i in range(3):
            if done[i]:
                np.testing.assert_array_equal(info_t["final_obs"][i].numpy(), info_np["final_obs"][i])
                np.testing.assert_array_equal(
                    info_t["final_info"]["frames"][i].numpy(), info_np["final_info"][i]["frames"]
                )
            else:
                np.testing.assert_array_equal(info_t["frames"][i].numpy(), info_np["frames"][i])
    if world.startswith("learned"):  # the head's rewards are not all zero: the comparison compared something
        assert r_np.any() and term_np.all() == world.endswith("every step")


def test_tensor_path_autoreset_returns_the_new_episode_and_the_final_observation():
    _, env = pair(2, max_episode_steps=2)
    env.reset(seed=0)
    _, _, term, trunc, info = env.step(np.ones((2, 2), dtype=np.int64))
    assert not (term | trunc).any() and "final_obs" not in info
    last, _, term, trunc, info = env.step(np.ones((2, 2), dtype=np.int64))
    assert trunc.all() and not term.any()
    assert info["_final_obs"].all() and isinstance(info["final_obs"], torch.Tensor)
    assert info["final_obs"].shape == (2, 64, 64, 3) and not torch.equal(info["final_obs"], last)
    assert info["final_info"]["step"].tolist() == [2, 2] and info["final_info"]["_frames"].all()
    assert info["step"].tolist() == [0, 0] and not info["_frames"].any()
    torch.testing.assert_close(info["pose"], torch.eye(4, dtype=torch.float64).expand(2, 4, 4))
    np.testing.assert_array_equal(last.numpy(), np.stack(env._world.last_frames))  # the new episodes' start views
    *_, info = env.step(np.ones((2, 2), dtype=np.int64))
    assert info["step"].tolist() == [1, 1] and info["_frames"].all()


def test_tensor_path_render_and_snapshots_copy_the_newest_frame_to_the_host():
    numpy_env, tensor_env = pair(2, render_mode="rgb_array")
    for env in (numpy_env, tensor_env):
        env.reset(seed=2)
        env.step(np.full((2, 2), 3))
    for a, b in zip(numpy_env.render(), tensor_env.render()):
        np.testing.assert_array_equal(a, b)
    snap = tensor_env.get_state(1)
    np.testing.assert_array_equal(snap.last_frame, numpy_env.get_state(1).last_frame)
    obs, _ = tensor_env.reset(options=[None, {"state": snap}])
    np.testing.assert_array_equal(obs[1].numpy(), snap.last_frame)
    assert tensor_env._world.step_counts.tolist() == [0, 1]


def test_tensor_path_reset_mask_keeps_the_other_worlds_observation():
    _, env = pair(2)
    env.reset(seed=0, options={"image": start_views((64, 64))[0]})
    before, *_ = env.step(np.ones((2, 2), dtype=np.int64))
    obs, info = env.reset(options={"reset_mask": np.array([False, True])})
    assert torch.equal(obs[0], before[0]) and list(info["_step"]) == [False, True]


@pytest.mark.parametrize("size", [(40, 48), (84, 84), (64, 64), (7, 9)])
def test_resize_pixels_is_resize_frame_for_a_batch_bit_for_bit(size):
    frames = np.random.default_rng(0).integers(0, 256, (5, 2, 64, 48, 3), dtype=np.uint8)
    newest = torch.from_numpy(frames)[:, -1]  # a strided view, as the newest frames of a chunk are
    want = np.stack([resize_frame(f, size) for f in frames[:, -1]])
    np.testing.assert_array_equal(resize_pixels(newest, size).numpy(), want)


def test_sb3_adapter_refuses_the_tensor_path():
    pytest.importorskip("stable_baselines3")
    from yume_env.env.sb3 import Sb3VecEnvAdapter

    with pytest.raises(ValueError, match="tensors=False"):
        Sb3VecEnvAdapter(pair(1)[1])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tensor_path_on_cuda_keeps_everything_on_the_device():
    env = YumeWorldVectorEnv(4, model=tiny_world_dir(), device="cuda", tensors=True, max_episode_steps=2)
    env.reset(seed=0)
    for _ in range(3):
        obs, reward, term, trunc, info = env.step(torch.ones((4, 2), dtype=torch.long, device="cuda"))
    for value in (obs, reward, term, trunc, info["frames"], info["pose"], info["step"]):
        assert value.device.type == "cuda"
    assert env._world._host_stale  # no frame was copied to the host
