"""Pose recall: the bank of old views (one rule for the env and the trainer), recalling the nearest
view, and a world that carries the bank in its state and reads the recalled view."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from model_support import CountOps, awake, small_config, synthetic_text
from tolerances import assert_frames_close

from yume_env import motion
from yume_env.actions import CAMERAS, KEYS
from yume_env.model import pose_memory
from yume_env.model.noise import WorldNoise
from yume_env.model.pipeline import WorldModel
from yume_env.model.recall import RecallBank, has_entries, pose_cell, sharp_frames
from yume_env.model.retarget import retarget
from yume_env.model.vae import frames_to_tensor

pytestmark = pytest.mark.usefixtures("one_thread")
W, NONE = KEYS.index("W"), KEYS.index("None")
RIGHT, LEFT = CAMERAS.index("→"), CAMERAS.index("←")


@pytest.fixture(scope="module")
def worlds():
    """A one-step tiny-fine world with pose memory, and the same world recalling one view."""
    mc = small_config(sample_steps=1, patch_size=[1, 1, 1], tscm_schedule="tiny-fine")
    plain = awake(WorldModel.from_config(mc, seed=0, text=synthetic_text(mc.text_dim)), seed=1)
    posed = retarget(plain, pose_memory=True)
    with torch.no_grad():  # a pose embedding that says something (it starts at zero)
        posed.dit.pose_embedding.net[2].weight.normal_(0, 0.5)
    return posed, retarget(posed, recall_frames=1)


def _frames(n):
    return np.random.default_rng(0).integers(0, 255, (n, 32, 32, 3)).astype(np.uint8)


def _yaw_poses(degrees):
    return torch.tensor([[0.0, 0.0, math.radians(d), 0.0] for d in degrees])


def test_the_bank_keeps_one_view_per_pose_the_latest_and_recalls_the_nearest():
    bank = RecallBank.empty(1, torch.zeros(2, 1, 1), size=8)
    for i, yaw in enumerate(range(0, 30, 5)):  # a turn in 5-degree sub-moves: one entry each
        bank.insert(torch.full((1, 2, 1, 1), float(i)), _yaw_poses([yaw]))
    assert int(bank.filled().sum()) == 6
    bank.insert(torch.full((1, 2, 1, 1), 99.0), _yaw_poses([1]))  # back at the start: its view is replaced
    assert int(bank.filled().sum()) == 6 and bank.latents[0, 0, 0, 0, 0] == 99.0
    latents, feats = bank.recall(_yaw_poses([2]), 2)
    assert latents[0, 0, :, 0, 0].tolist() == [99.0, 1.0]  # nearest first
    assert feats.shape == (1, 2, pose_memory.POSE_FEATURES)
    for i in range(3):  # a full bank gives the oldest entry's slot to a new place
        bank.insert(torch.full((1, 2, 1, 1), 200.0 + i), torch.tensor([[float(i + 1), 0.0, 0.0, 0.0]]))
    assert int(bank.filled().sum()) == 8 and 1.0 not in bank.latents[0, 0, :, 0, 0].tolist()
    assert 99.0 in bank.latents[0, 0, :, 0, 0].tolist()  # re-seen: younger than the entries after it
    one = RecallBank.empty(1, torch.zeros(2, 1, 1), size=4).insert(torch.full((1, 2, 1, 1), 7.0), _yaw_poses([40]))
    assert one.recall(_yaw_poses([0]), 3)[0][0, 0, :, 0, 0].tolist() == [7.0] * 3  # fewer entries: the nearest again
    assert not has_entries(sharp_frames("tiny-fine"), "tiny-fine") and has_entries(15, "tiny-fine")
    assert bank.nearest_distance(_yaw_poses([1])).item() < 1.0  # the start view is in the bank
    assert bank.nearest_distance(_yaw_poses([180])).item() > 1.0  # nothing looks the other way
    assert math.isinf(RecallBank.empty(1, torch.zeros(2, 1, 1)).nearest_distance(_yaw_poses([0])).item())


def test_pose_cells_are_one_sub_move_wrap_the_yaw_and_survive_rounding():
    cells = pose_cell(
        torch.tensor(
            [
                [0.1, 0.3, math.pi - 0.01, 0.0],
                [0.1, 0.3, -math.pi + 0.01, 0.0],
                [0.35, 0.3, 0.0, 0.0],
                [0.1, 0.3, 0.0, math.radians(6)],
            ]
        )
    )
    assert cells[0, 2] == 35 and cells[1, 2] == 36  # either side of the half turn, in range
    assert cells[2, 0] == 1 and cells[3, 3] == 1
    turned = motion.clip_poses(torch.tensor([[[NONE, RIGHT]] * 36 + [[NONE, LEFT]] * 36]), 2)[0]
    assert torch.equal(pose_cell(turned[0]), pose_cell(turned[-1]))  # a whole turn and back: the same cell
    assert len({tuple(c) for c in pose_cell(turned[:72]).tolist()}) == 72  # every sub-move of a turn is new


def test_the_env_fills_the_bank_as_the_trainer_does(worlds):
    _, recalling = worlds
    init_moves = np.array([[W, RIGHT]] * 8)  # 9 burn-in frames, one sub-move between each two
    state = recalling.init_state(_frames(9), init_moves)
    latents = [recalling.vae.encode(frames_to_tensor(_frames(9)[None]))]
    pose = torch.zeros(1, 4)
    poses = [pose]
    for a in init_moves:
        pose = motion.dead_reckon(pose, torch.as_tensor(a)[None], 2, moves=1)[:, 0]
        poses.append(pose)
    script = [[NONE, RIGHT]] * 10 + [[W, 0]] * 4 + [[NONE, LEFT]] * 10
    for t, a in enumerate(script):
        out = recalling.step([state], np.array([a]), torch.Generator().manual_seed(t))
        latents.append(out.latents)
        step = motion.dead_reckon(poses[-1], torch.as_tensor(a)[None], 2)[0]
        poses += [p[None] for p in step.unbind(0)]
    full, full_poses = torch.cat(latents, 2), torch.stack([p.reshape(4) for p in poses])[None]
    n, recall = state.history.n_history[0], state.history.recall
    assert full.shape[2] == n == full_poses.shape[1]
    upto = n - sharp_frames("tiny-fine")  # the frames that left the sharp window, as the trainer offers them
    bank = RecallBank.empty(1, full[0, :, 0]).insert_many(full[:, :, :upto], full_poses[:, :upto], 0)
    assert torch.equal(bank.stamp, recall.stamp) and torch.equal(bank.inserted, recall.inserted)
    assert torch.allclose(bank.poses, recall.poses, atol=1e-5)
    assert torch.allclose(bank.latents, recall.latents, atol=1e-5)
    assert int(recall.filled().sum()) > 10


def test_a_world_reads_the_recalled_view_once_its_bank_has_one_and_batches_like_single_worlds(worlds):
    posed, recalling = worlds
    acts = np.repeat(np.array([[W, RIGHT]] * 4), 2, 0)
    a, b = posed.init_state(_frames(9), acts), recalling.init_state(_frames(9), acts)
    steps = 0
    while b.history.n_history[0] + 2 <= sharp_frames(
        "tiny-fine"
    ):  # nothing has left the sharp bands: nothing to recall
        fa = posed.step([a], np.array([[NONE, RIGHT]]), torch.Generator().manual_seed(steps)).frames
        fb = recalling.step([b], np.array([[NONE, RIGHT]]), torch.Generator().manual_seed(steps)).frames
        assert np.array_equal(fa, fb) and not b.history.recall.filled().any()
        steps += 1
    for t in range(3):
        fa = posed.step([a], np.array([[NONE, RIGHT]]), torch.Generator().manual_seed(t)).frames
        fb = recalling.step([b], np.array([[NONE, RIGHT]]), torch.Generator().manual_seed(t)).frames
    assert b.history.recall.filled().any() and not np.array_equal(fa, fb)
    assert b.memory_stats()[0]["memory_tokens"] == a.memory_stats()[0]["memory_tokens"] + 4 * 4  # one 4x4 view
    short = recalling.init_state(_frames(3), acts[:2])  # an empty bank beside a full one
    worlds = [short, b, recalling.init_state(_frames(2), acts[:1])]  # kept poses 3, 18, 2: three groups
    worlds.append(worlds[0].clone())  # ... and a group of two worlds apart in the batch
    moves = np.array([[W, 0], [W, RIGHT], [NONE, LEFT], [W, LEFT]])
    one = [
        recalling.step([s.clone()], moves[i : i + 1], torch.Generator().manual_seed(i)).frames
        for i, s in enumerate(worlds)
    ]
    many = recalling.step([s.clone() for s in worlds], moves, [torch.Generator().manual_seed(i) for i in range(4)])
    for i in range(4):  # batched vs single: within a grey level (tests/tolerances.py)
        assert_frames_close(many.frames[i], one[i][0])


def test_the_bank_is_saved_cloned_and_required(worlds):
    posed, recalling = worlds
    state = recalling.init_state(_frames(20), np.array([[NONE, RIGHT]] * 19))
    assert state.history.recall.filled().any()
    restored = recalling.load_state(state.to_dict())
    for field in ("latents", "poses", "stamp", "inserted"):
        assert torch.equal(getattr(restored.history.recall, field), getattr(state.history.recall, field))
    branch = state.clone()
    recalling.step([branch], np.array([[NONE, RIGHT]]), torch.Generator().manual_seed(0))
    assert not torch.equal(branch.history.recall.stamp, state.history.recall.stamp)  # the original's bank is its own
    with pytest.raises(ValueError, match=r"made by another model \(config differs in \['recall_frames'\]"):
        recalling.step([posed.init_state(_frames(20), np.array([[NONE, RIGHT]] * 19))], np.array([[W, 0]]))
    with pytest.raises(ValueError, match="set pose_memory true too"):
        posed.config.replace(pose_memory=False, recall_frames=1)


def test_a_batched_step_runs_the_same_torch_ops_for_any_number_of_worlds(worlds):
    """What a batched GPU step costs the host grows with the torch ops it runs per world; a per-world
    loop (as the pose features once were: ~12 ops a world; the noise, one draw a world) made 1,024
    worlds host-bound. Worlds at staggered lengths, as after the env's autoresets, recalling, with
    pose memory, each drawing its own noise (`WorldNoise`, as the envs do)."""
    _, recalling = worlds

    def ops(n):
        states = recalling.join_states(
            [recalling.init_state(_frames(1 + i % 5), np.zeros((i % 5, 2), dtype=np.int64)) for i in range(n)]
        )
        noise = WorldNoise(list(range(n)))
        for t in range(10):  # past the sharp bands: banks filled and read
            recalling.step(states, np.full((n, 2), [W, RIGHT]), noise)
        with CountOps() as counter:
            recalling.step(states, np.full((n, 2), [W, RIGHT]), noise)
        return counter.count

    # five lengths, so groups of 2, 4 and 16 worlds (a group of one world skips an index or two)
    ten, twenty, eighty = ops(10), ops(20), ops(80)
    assert ten == twenty == eighty, f"{ten} torch ops for 10 worlds, {twenty} for 20, {eighty} for 80"


def _cell_poses(gen: torch.Generator, shape: tuple[int, ...], cells: int = 3) -> torch.Tensor:
    """Poses (..., 4) inside a few bank cells, so frames often share one."""
    x = torch.randint(cells, shape, generator=gen) * 0.25 + 0.1
    yaw = torch.randint(cells, shape, generator=gen) * math.radians(5.0) + 0.01
    return torch.stack([x, torch.zeros(shape), yaw, torch.zeros(shape)], -1)


@pytest.mark.parametrize("n", [1, 2, 7, 20])
def test_offering_many_frames_at_once_gives_the_banks_of_one_by_one(n):
    gen = torch.Generator().manual_seed(n)
    B, C, K = 3, 2, 32  # room for every n: the batched path
    banks = [RecallBank.empty(B, torch.zeros(C, 1, 1), size=K) for _ in range(2)]
    before = [0, 3, 9]  # worlds already offered different numbers of frames
    for b, count in enumerate(before):
        for t in range(count):
            lat, pose = torch.randn(1, C, 1, 1, generator=gen), _cell_poses(gen, (1,))
            for bank in banks:
                one = bank.rows([b]).insert(lat, pose)
                bank.set_rows([b], one)
    latents, poses = torch.randn(B, C, n, 1, 1, generator=gen), _cell_poses(gen, (B, n))
    one_by_one, at_once = banks
    for t in range(n):
        one_by_one.insert(latents[:, :, t], poses[:, t])
    at_once.insert_many(latents, poses, offered_before=max(before))
    for field in ("latents", "poses", "stamp", "inserted"):
        assert torch.equal(getattr(at_once, field), getattr(one_by_one, field)), field


def test_offering_more_frames_than_a_bank_holds_evicts_as_one_by_one():
    gen = torch.Generator().manual_seed(0)
    latents, poses = torch.randn(2, 2, 30, 1, 1, generator=gen), _cell_poses(gen, (2, 30), cells=6)
    one_by_one, at_once = (RecallBank.empty(2, torch.zeros(2, 1, 1), size=8) for _ in range(2))
    for t in range(30):
        one_by_one.insert(latents[:, :, t], poses[:, t])
    at_once.insert_many(latents, poses, offered_before=0)
    assert int(one_by_one.filled().sum()) == 16  # full: entries were evicted
    for field in ("latents", "poses", "stamp", "inserted"):
        assert torch.equal(getattr(at_once, field), getattr(one_by_one, field)), field
