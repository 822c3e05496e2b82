"""Built-in rewards: the beacon task head's progress, bonus and termination; model/dtype arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_env_support import start_views, tiny_world, tiny_world_dir
from tolerances import FLOAT64_RTOL

from yume_env.env.rewards import BeaconReward, NoReward, RewardContext, make_reward
from yume_env.env.world_env import YumeWorldEnv


class HeadStub:
    """Stands in for WorldModel.predict_task with scripted outputs (one call per step)."""

    task_head = object()

    def __init__(self, distances, logits):
        self.outputs = iter(zip(distances, logits))

    def predict_task(self, latents):
        d, r = next(self.outputs)
        return {"distance": torch.tensor(d, dtype=torch.float32), "reached_logit": torch.tensor(r, dtype=torch.float32)}


def contexts(model, n, forward=0.0):
    """n worlds' contexts, each camera `forward` metres along z (per world when a list)."""
    forward = forward if isinstance(forward, list) else [forward] * n
    poses = [np.eye(4) for _ in range(n)]
    for pose, z in zip(poses, forward):
        pose[2, 3] = z
    return [
        RewardContext(np.zeros((2, 8, 8, 3), np.uint8), torch.zeros(4, 2, 2, 2), np.array([1, 0]), pose, 1, "", model)
        for pose in poses
    ]


def test_beacon_reward_is_distance_progress_plus_bonus_on_arrival():
    model = HeadStub(distances=[[5.0, 9.0], [4.0, 9.5], [2.5, 9.0]], logits=[[-1, -1], [-1, -1], [2.0, -1]])
    reward = BeaconReward(bonus=10.0)
    for i in range(2):
        reward.reset(i)
    first, done = reward(contexts(model, 2, 0.0), [0, 1])
    np.testing.assert_allclose(first, [0.0, 0.0])  # nothing to compare with yet
    second, done = reward(contexts(model, 2, 2.0), [0, 1])
    np.testing.assert_allclose(second, [1.0, -0.5])
    third, done = reward(contexts(model, 2, 4.0), [0, 1])
    np.testing.assert_allclose(third, [1.5 + 10.0, 0.5])
    assert done.tolist() == [True, False]


def test_beacon_progress_is_bounded_by_the_distance_the_camera_moved():
    # the head says the beacon came 3 m closer, but the camera moved 0.5 m: 0.5 of progress
    model = HeadStub(distances=[[9.0], [6.0], [8.0]], logits=[[-1], [-1], [-1]])
    reward = BeaconReward()
    reward.reset(0)
    reward(contexts(model, 1, 0.0), [0])
    np.testing.assert_allclose(reward(contexts(model, 1, 0.5), [0])[0], [0.5])
    np.testing.assert_allclose(reward(contexts(model, 1, 0.5), [0])[0], [0.0])  # standing still: no change at all


def test_turning_in_place_never_arrives_at_a_far_beacon():
    # what PPO exploited: turn until the drifting picture makes the head say "arrived"
    model = HeadStub(distances=[[12.0], [9.0], [2.0]], logits=[[-1], [-1], [3.0]])
    reward = BeaconReward(bonus=10.0, arrive_distance=3.0, distance_slack=2.0)
    reward.reset(0)
    out = [reward(contexts(model, 1, 0.0), [0]) for _ in range(3)]
    assert [float(r[0]) for r, _ in out] == [0.0, 0.0, 0.0]
    assert not any(bool(d[0]) for _, d in out)


def test_beacon_arrival_needs_the_distance_head_to_agree():
    # an arrival logit far from the beacon (what blurry generated frames provoke) is no arrival
    model = HeadStub(distances=[[8.0, 2.0]], logits=[[3.0, 3.0]])
    reward = BeaconReward(bonus=10.0, arrive_distance=3.0)
    for i in range(2):
        reward.reset(i)
    rewards, done = reward(contexts(model, 2), [0, 1])
    assert done.tolist() == [False, True]
    np.testing.assert_allclose(rewards, [0.0, 10.0])


def test_beacon_reward_memory_survives_get_and_set_state():
    model = HeadStub(distances=[[5.0], [4.0]], logits=[[-1], [-1]])
    a = BeaconReward()
    a.reset(0)
    a(contexts(model, 1, 0.0), [0])
    b = BeaconReward()
    b.set_state(0, a.get_state(0))
    np.testing.assert_allclose(b(contexts(model, 1, 1.0), [0])[0], [1.0])


def _beacon_by_world(bonus, arrive, slack, memory, distance, logit, positions):
    """The beacon reward written world by world (what the batched arrays must equal)."""
    rewards, done = np.zeros(len(distance)), np.zeros(len(distance), dtype=bool)
    for b, (d, position) in enumerate(zip(distance.astype(np.float64), positions)):
        mem = memory.setdefault(b, {})
        if not mem:
            mem.update(first_distance=d, walked=0.0)
        else:
            moved = float(np.linalg.norm(position - np.asarray(mem["position"])))
            mem["walked"] += moved
            rewards[b] = float(np.clip(mem["last_distance"] - d, -moved, moved))
        done[b] = logit[b] > 0 and d < arrive and mem["walked"] + arrive + slack >= mem["first_distance"]
        rewards[b] += bonus * done[b]
        mem.update(last_distance=d, position=position.tolist())
    return rewards, done


def test_batched_beacon_reward_equals_the_world_by_world_rule_with_resets():
    rng = np.random.default_rng(0)
    n, steps = 6, 12
    distances = rng.uniform(0.5, 8.0, (steps, n)).astype(np.float32)
    logits = rng.normal(0.0, 2.0, (steps, n)).astype(np.float32)
    moves = rng.normal(0.0, 1.0, (steps, n, 3))
    reward, memory = BeaconReward(bonus=10.0, arrive_distance=3.0, distance_slack=2.0), {}
    for i in range(n):
        reward.reset(i)
    position = np.zeros((n, 3))
    for t in range(steps):
        if t == 5:  # world 2 starts a new episode; world 4 is restored from a snapshot of itself
            reward.reset(2)
            memory[2] = {}
            reward.set_state(4, reward.get_state(4))
        position = position + moves[t]
        ctx = contexts(HeadStub([distances[t]], [logits[t]]), n)
        for c, pos in zip(ctx, position):
            c.pose[:3, 3] = pos
        got = reward(ctx, list(range(n)))
        want = _beacon_by_world(10.0, 3.0, 2.0, memory, distances[t], logits[t], position)
        # the batched norm (axis=1) and the per-world norm take different numpy kernels: the
        # rewards agree to float64 rounding, not bit for bit (-1.6967095294191925 vs ...23 seen)
        np.testing.assert_allclose(got[0], want[0], rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL)
        np.testing.assert_array_equal(got[1], want[1])
    state, rule = reward.get_state(1), memory[1]
    assert state.keys() == rule.keys()
    for key in state:
        np.testing.assert_allclose(state[key], rule[key], rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL, err_msg=key)


def test_default_reward_is_beacon_with_a_task_head_and_none_without():
    assert isinstance(make_reward(None, HeadStub([], [])), BeaconReward)
    assert isinstance(make_reward(None, tiny_world()), NoReward)


def test_env_with_a_task_head_terminates_when_the_head_says_reached():
    from yume_env.model import WorldModel, WorldModelConfig
    from yume_env.model.task_head import TaskHead

    model = WorldModel.from_config(WorldModelConfig.preset("tiny"), seed=0)
    c = model.config
    model.task_head = TaskHead(c.latent_channels, c.latent_hw).eval()
    with torch.no_grad():
        model.task_head.fc2.weight.zero_()
        model.task_head.fc2.bias.copy_(torch.tensor([1.0, 3.0]))  # constant distance, "reached"
    env = YumeWorldEnv(model=model)
    env.reset(seed=0, options={"image": start_views(model.frame_size)[0]})
    _, reward, terminated, truncated, _ = env.step("W")
    assert (reward, terminated, truncated) == (10.0, True, False)


@pytest.mark.parametrize("dtype", ["int8", "float8"])
def test_unknown_dtype_lists_the_choices(dtype):
    with pytest.raises(ValueError, match="float32, bfloat16"):
        YumeWorldEnv(model=tiny_world_dir(), dtype=dtype)


def test_missing_default_world_says_how_to_pass_a_model(monkeypatch, tmp_path):
    import yume_env.model.paths as paths

    monkeypatch.setattr(paths, "default_world_path", lambda: tmp_path / "default_world")
    with pytest.raises(FileNotFoundError, match="default world.*model="):
        YumeWorldEnv()
