"""`RewardFunction.batch(RewardBatch)`: the tensor path's rewards equal the per-world contexts' rule."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from model_support import CountOps
from test_env_support import world_with_head
from tolerances import FLOAT64_RTOL

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
    # the tensor path's positions come from torch's sin and cos of the origin's yaw (`batch.poses`)
    # and its distances from torch's sqrt, neither numpy's bits: its float64 memory agrees to rounding
    got, want = batched.get_state(1), by_context.get_state(1)
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL, err_msg=key)


def test_beacon_reward_memory_follows_the_path_that_steps_it():
    """One reward stepped by turns on the tensor path and the numpy path (its memory moving between
    them), restored from snapshots: the numbers of a reward stepped by the numpy path alone."""
    model = world_with_head("beacon")
    mixed, by_context = BeaconReward(), BeaconReward()
    for seed in range(4):
        batch = make_batch(model, seed=seed)
        got = mixed.batch(batch) if seed % 2 else mixed(batch.contexts(), list(range(5)))
        if seed % 2 == 0:
            got = (torch.from_numpy(got[0]).float(), torch.from_numpy(got[1]))
        assert_batch_equals_contexts(got, by_context(batch.contexts(), list(range(5))))
        mixed.set_state(2, mixed.get_state(2))
    assert mixed._memory["first"].device == torch.device("cpu")


def on_meta(batch: RewardBatch) -> RewardBatch:
    """The batch on the meta device (shapes and dtypes, no data): any read of a value fails there."""
    meta = {
        f.name: getattr(batch, f.name).to("meta")
        for f in dataclasses.fields(batch)
        if isinstance(getattr(batch, f.name), torch.Tensor)
    }
    return dataclasses.replace(batch, **meta, pose_state=tuple(t.to("meta") for t in batch.pose_state))


def test_beacon_reward_batch_reads_nothing_on_the_host():
    """On the meta device any host read (`.cpu()`, `.item()`, `.tolist()`, numpy) raises: `batch`
    runs there end to end, its memory included, over steps with a reset and a restored state."""
    model = world_with_head("beacon")
    model.task_head = model.task_head.to("meta")  # world_with_head's copy owns its head
    reward = BeaconReward()
    reward.set_state(1, {"first_distance": 3.0, "walked": 1.0, "last_distance": 2.0, "position": [0.5, 0.0, -0.5]})
    for seed in range(3):
        if seed == 2:
            reward.reset(3)
        rewards, terminated = reward.batch(on_meta(make_batch(model, seed=seed)))
        assert rewards.device.type == terminated.device.type == "meta"
        assert (rewards.dtype, terminated.dtype, rewards.shape, terminated.shape) == (
            torch.float32,
            torch.bool,
            (5,),
            (5,),
        )
    assert all(a.device.type == "meta" for a in reward._memory.values())


def test_beacon_reward_batch_runs_the_same_ops_for_4_and_32_worlds():
    model = world_with_head("beacon")
    counts = []
    for n in (4, 32):
        reward = BeaconReward()
        steps = []
        for seed in range(2):  # the first step grows the memory, the second finds it there
            batch = make_batch(model, n, seed)
            with CountOps() as counter:
                reward.batch(batch)
            steps.append(counter.count)
        counts.append(steps)
    assert counts[0] == counts[1], counts


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
