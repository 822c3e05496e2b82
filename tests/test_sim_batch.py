"""The torch batch simulator, the policies and the GPU clip stream."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from yume_env.camera import trajectory_actions  # noqa: E402
from yume_env.sim.batch import BatchSimulator  # noqa: E402
from yume_env.sim.policies import POLICIES, make_policy  # noqa: E402
from yume_env.sim.stream import clip_stream  # noqa: E402


def test_batch_step_shapes_and_types():
    sim = BatchSimulator(3, 32, 32, sub_frames=2, seed=0)
    first = sim.reset()
    assert first.shape == (3, 32, 32, 3) and first.dtype == torch.uint8
    out = sim.step(np.array([[1, 0], [0, 1], [5, 3]]))
    assert out.frames.shape == (3, 2, 32, 32, 3) and out.frames.dtype == torch.uint8
    assert out.poses.shape == (3, 2, 4, 4)
    assert out.reward.shape == out.beacon_distance.shape == out.reached.shape == (3,)
    assert out.events == ["", "", ""]


def test_batch_is_deterministic_and_worlds_differ():
    a, b = BatchSimulator(2, 32, 32, seed=4), BatchSimulator(2, 32, 32, seed=4)
    fa, fb = a.reset(), b.reset()
    assert torch.equal(fa, fb)
    assert not torch.equal(fa[0], fa[1])


def test_batch_events_apply_per_world():
    sim = BatchSimulator(2, 32, 32, seed=0)
    sim.reset()
    sim.set_event("night falls", indices=[1])
    out = sim.step(np.zeros((2, 2), np.int64))
    assert out.events == ["", "night falls"]
    assert out.frames[1].float().mean() < out.frames[0].float().mean() - 20


def test_batch_ghost_masks_are_the_pixels_the_ghost_changes():
    from yume_env.sim import EVENTS

    plain, haunted = BatchSimulator(2, 32, 32, seed=0), BatchSimulator(2, 32, 32, seed=0)
    plain.reset(), haunted.reset()
    haunted.set_event(EVENTS["ghost"][0], indices=[1])
    still = np.zeros((2, 2), np.int64)
    for _ in range(3):
        a, b = plain.step(still, ghost_mask=True), haunted.step(still, ghost_mask=True)
        assert b.ghost_mask.shape == (2, 2, 32, 32) and b.ghost_mask.dtype == torch.bool
        assert not a.ghost_mask.any() and torch.equal(b.ghost_mask, (a.frames != b.frames).any(-1))
    assert not b.ghost_mask[0].any() and b.ghost_mask[1, -1].sum() > 5
    assert haunted.step(still).ghost_mask is None  # only on request


def test_batch_rejects_bad_actions():
    sim = BatchSimulator(2, 32, 32, seed=0)
    sim.reset()
    with pytest.raises(ValueError, match="shape"):
        sim.step(np.zeros((3, 2), np.int64))
    with pytest.raises(ValueError, match="camera"):
        sim.step(np.array([[0, 9], [0, 0]]))


@pytest.mark.parametrize("name", sorted(POLICIES) + ["mixed"])
def test_policies_give_valid_actions(name):
    pol = make_policy(name, 4, np.random.default_rng(0))
    acts = np.stack([pol.act() for _ in range(30)])
    assert acts.shape == (30, 4, 2) and acts.dtype == np.int64
    assert acts[..., 0].min() >= 0 and acts[..., 0].max() < 9 and acts[..., 1].max() < 9


def test_clip_stream_actions_match_the_poses():
    batch = next(clip_stream(2, 7, height=32, width=32, seed=0, event_prob=1.0))
    assert batch["frames"].shape == (2, 7, 32, 32, 3) and batch["actions"].shape == (2, 6, 2)
    assert all(batch["events"]) and (batch["event_start"] >= 1).all()
    for i in range(2):  # where no wall blocked the move, the quantizer reads back the action
        q = trajectory_actions(batch["poses"][i].numpy())
        assert (q[:, 1] == batch["actions"][i, :, 1].numpy()).all()


def test_partial_reset_restarts_only_the_given_worlds():
    sim = BatchSimulator(2, 32, 32, seed=0)
    sim.reset()
    sim.step(np.array([[1, 1], [1, 1]]))
    before = sim.poses.clone()
    views = sim.reset(indices=[1])
    assert torch.equal(sim.poses[0], before[0]) and not torch.equal(sim.poses[1], before[1])
    assert views.shape == (2, 32, 32, 3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batch_matches_cpu():
    cpu, gpu = BatchSimulator(4, 64, 64, seed=3), BatchSimulator(4, 64, 64, device="cuda", seed=3)
    assert (cpu.reset().int() - gpu.reset().cpu().int()).abs().float().mean() < 1.0
    gpu.set_event("it starts to snow"), cpu.set_event("it starts to snow")
    acts = np.array([[1, 0], [5, 3], [0, 1], [2, 8]])
    a, b = cpu.step(acts), gpu.step(acts)
    assert (a.frames.int() - b.frames.cpu().int()).abs().float().mean() < 2.0
    assert torch.allclose(a.poses, b.poses.cpu(), atol=1e-6)
