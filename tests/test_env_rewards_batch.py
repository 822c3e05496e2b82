"""`RewardFunction.batch(RewardBatch)`: the tensor path's rewards equal the per-world contexts' rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_env_support import world_with_head

from yume_env.env.poses import pose_matrices, pose_matrices_tensor
from yume_env.env.rewards import BeaconReward, CallableReward, LearnedReward, NoReward, RewardBatch


def make_batch(model, n: int = 5, seed: int = 0) -> RewardBatch:
    """n worlds' random step: frames, latents of the model's shape, actions, poses seen from origins."""
    g = torch.Generator().manual_seed(seed)
    c = model.config
    pose, origin = torch.randn(n, 4, generator=g), torch.randn(n, 4, generator=g)
    return RewardBatch(
        frames=torch.randint(0, 256, (n, 2, 8, 8, 3), generator=g, dtype=torch.uint8),
        latents=torch.randn(n, c.latent_channels, c.latent_frames_per_chunk, *c.latent_hw, generator=g),
        actions=torch.randint(0, 9, (n, 2), generator=g),
        poses=pose_matrices_tensor(pose, origin),
        steps=torch.arange(1, n + 1),
        events=[f"event {i}" for i in range(n)],
        model=model,
        pose_state=(pose, origin),
    )


def assert_batch_equals_contexts(got, want) -> None:
    rewards, terminated = got
    assert rewards.dtype == torch.float32 and terminated.dtype == torch.bool
    np.testing.assert_array_equal(rewards.numpy(), np.asarray(want[0]).astype(np.float32))
    np.testing.assert_array_equal(terminated.numpy(), np.asarray(want[1], dtype=bool))


@pytest.mark.parametrize("ends", [False, True])
def test_learned_reward_batch_equals_the_per_world_contexts(ends):
    batch = make_batch(world_with_head("reward", ends=ends))
    assert_batch_equals_contexts(LearnedReward().batch(batch), LearnedReward()(batch.contexts(), list(range(5))))


def test_beacon_reward_batch_equals_the_per_world_contexts_over_steps_with_a_reset():
    model = world_with_head("beacon")
    batched, by_context = BeaconReward(), BeaconReward()
    for seed in range(4):
        if seed == 2:
            batched.reset(3)
            by_context.reset(3)
        batch = make_batch(model, seed=seed)
        assert_batch_equals_contexts(batched.batch(batch), by_context(batch.contexts(), list(range(5))))
    assert batched.get_state(1) == by_context.get_state(1)


def test_callable_and_custom_rewards_get_the_per_world_contexts_of_the_batch():
    batch = make_batch(world_with_head("reward"))
    fn = CallableReward(lambda ctx: (float(ctx.frames.mean()) + ctx.pose[0, 3], ctx.step % 2 == 0))
    want = [(float(c.frames.mean()) + c.pose[0, 3], c.step % 2 == 0) for c in batch.contexts()]
    assert_batch_equals_contexts(fn.batch(batch), ([r for r, _ in want], [t for _, t in want]))


def test_no_reward_batch_is_zeros_on_the_batch_device():
    rewards, terminated = NoReward().batch(make_batch(world_with_head("reward")))
    assert rewards.tolist() == [0.0] * 5 and not terminated.any() and rewards.dtype == torch.float32


def test_reward_batch_contexts_hold_what_the_numpy_path_gives():
    batch = make_batch(world_with_head("reward"))
    pose, origin = batch.pose_state
    contexts = batch.contexts()
    np.testing.assert_array_equal(np.stack([c.pose for c in contexts]), pose_matrices(pose, origin))
    np.testing.assert_allclose(batch.poses.numpy(), pose_matrices(pose, origin), rtol=0, atol=1e-12)
    for i, c in enumerate(contexts):
        assert c.frames.dtype == np.uint8 and c.frames.shape == (2, 8, 8, 3)
        assert c.action.dtype == np.int64 and c.action.tolist() == batch.actions[i].tolist()
        assert (c.step, c.event, c.model) == (i + 1, f"event {i}", batch.model)
        assert torch.equal(c.latents, batch.latents[i])
