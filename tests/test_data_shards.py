"""The shard format: ShardWriter, read_index, ShardReader, the train/heldout split and ShardDataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from yume_env.data.shards import (
    INDEX,
    ShardDataset,
    ShardError,
    ShardReader,
    ShardWriter,
    make_action_space,
    read_index,
    split_episodes,
)

torch = pytest.importorskip("torch")

S = 8
DISCRETE = {"type": "discrete", "nvec": [3]}
MULTI = {"type": "multi_discrete", "nvec": [9, 4]}


def _episode(T: int, A: int, high: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    terminated = np.zeros(T, bool)
    terminated[-1] = True
    return {
        "frames": rng.integers(0, 256, (T + 1, S, S, 3), dtype=np.uint8),
        "actions": rng.integers(0, high, (T, A)),
        "rewards": rng.standard_normal(T).astype(np.float32),
        "terminated": terminated,
        "truncated": np.zeros(T, bool),
    }


def _write(root, lengths=(5, 7, 3, 9), space=MULTI, shard_bytes=1):
    eps = [_episode(T, len(space["nvec"]), min(space["nvec"]), i) for i, T in enumerate(lengths)]
    with ShardWriter(
        root,
        "Test-v0",
        space,
        S,
        fps=10,
        frames_from="observation",
        source={"policy": "random"},
        shard_bytes=shard_bytes,
    ) as w:
        for i, ep in enumerate(eps):
            assert w.add_episode(**ep, seed=i) == i
    return eps


def test_writer_reader_round_trip_and_index(tmp_path):
    eps = _write(tmp_path, shard_bytes=1000)  # 216 B a frame: a shard every few episodes
    index = read_index(tmp_path)
    assert index["format"] == "yume-env-shards" and index["version"] == 1 and index["env_id"] == "Test-v0"
    assert index["action_space"] == MULTI and index["frame_size"] == S and index["fps"] == 10.0
    assert index["episodes"] == 4 and index["steps"] == 24 and len(index["shards"]) >= 2
    assert [t for s in index["shards"] for t in s["episode_steps"]] == [5, 7, 3, 9]
    assert sum(s["episodes"] for s in index["shards"]) == 4 and index["shards"][0]["seeds"][0] == 0
    reader = ShardReader(tmp_path)
    for e, ep in enumerate(eps):
        got = reader.read(e)
        assert (
            got["frames"].dtype == np.uint8 and got["actions"].dtype == np.int64 and got["rewards"].dtype == np.float32
        )
        assert got["terminated"].dtype == np.bool_ and got["truncated"].dtype == np.bool_
        for f in ep:
            assert np.array_equal(got[f], ep[f]), f
    part = reader.read(3, start=2, frames=4)
    assert np.array_equal(part["frames"], eps[3]["frames"][2:6]) and np.array_equal(
        part["actions"], eps[3]["actions"][2:5]
    )
    with pytest.raises(IndexError):
        reader.read(2, start=2, frames=3)


def test_writer_checks_episodes(tmp_path):
    w = ShardWriter(tmp_path, "Test-v0", DISCRETE, S)
    ep = _episode(4, 1, 3, 0)
    with pytest.raises(ValueError, match="frames must be uint8"):
        w.add_episode(**dict(ep, frames=ep["frames"][:, :4]))
    with pytest.raises(ValueError, match="zero-based"):
        w.add_episode(**dict(ep, actions=ep["actions"] + 3))
    with pytest.raises(ValueError, match="rewards must have shape"):
        w.add_episode(**dict(ep, rewards=ep["rewards"][:2]))


def test_reopening_continues_and_refuses_another_env(tmp_path):
    _write(tmp_path, lengths=(3, 4))
    with ShardWriter(tmp_path, "Test-v0", MULTI, S, shard_bytes=1) as w:
        assert w.episodes == 2
        w.add_episode(**_episode(5, 2, 4, 9))
    assert read_index(tmp_path)["episodes"] == 3
    for other in ({"env_id": "Other-v0"}, {"frame_size": 16}, {"action_space": DISCRETE}):
        args = dict(env_id="Test-v0", action_space=MULTI, frame_size=S) | other
        with pytest.raises(ShardError, match="another --out"):
            ShardWriter(tmp_path, **args)


def test_pending_episodes_are_kept_when_recording_stops_on_an_error(tmp_path):
    with pytest.raises(RuntimeError), ShardWriter(tmp_path, "Test-v0", DISCRETE, S) as w:
        w.add_episode(**_episode(4, 1, 3, 0))
        raise RuntimeError("the env crashed")
    assert read_index(tmp_path)["episodes"] == 1


def test_killed_writer_leftovers_are_invisible_and_cleaned(tmp_path):
    _write(tmp_path, lengths=(3, 4))
    (tmp_path / ".shard-000002.tmp4242.safetensors").write_bytes(b"half a shard")
    (tmp_path / "shard-000002.safetensors").write_bytes((tmp_path / "shard-000000.safetensors").read_bytes())
    (tmp_path / ".index.tmp4242.json").write_text("{")
    assert len(ShardDataset(tmp_path, window=2, heldout_fraction=0)) == 3 + 4  # readers trust the index only
    w = ShardWriter(tmp_path, "Test-v0", MULTI, S)
    assert sorted(w.cleaned) == [".index.tmp4242.json", ".shard-000002.tmp4242.safetensors", "shard-000002.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [INDEX, "shard-000000.safetensors", "shard-000001.safetensors"]


def test_read_index_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_index(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="index.json: missing"):
        read_index(tmp_path)
    _write(tmp_path, lengths=(3, 4))
    path = tmp_path / INDEX
    good = json.loads(path.read_text())
    path.write_text(path.read_text()[:40])
    with pytest.raises(ShardError, match="index.json: damaged index"):
        read_index(tmp_path)
    for bad, message in (
        (dict(good, version=99), "format version 99"),
        (dict(good, episodes=5), "do not add up"),
        (dict(good, action_space={"type": "box"}), "bad action space"),
        ({k: v for k, v in good.items() if k != "shards"}, "missing"),
        ([], "not a"),
    ):
        path.write_text(json.dumps(bad))
        with pytest.raises(ShardError, match=message):
            read_index(tmp_path)


def test_missing_or_damaged_shard_errors_name_the_file(tmp_path):
    _write(tmp_path, lengths=(3, 4))
    shard = tmp_path / "shard-000001.safetensors"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardError, match="shard-000001.safetensors"):
        ShardReader(tmp_path).read(1)
    shard.unlink()
    with pytest.raises(ShardError, match="shard-000001.safetensors: missing"):
        ShardReader(tmp_path)


def test_split_is_disjoint_deterministic_and_stable():
    train, held = split_episodes(200, 0.1)
    assert not set(train) & set(held) and sorted(train + held) == list(range(200))
    assert 8 <= len(held) <= 35 and (train, held) == split_episodes(200, 0.1)
    assert set(split_episodes(100, 0.1)[1]) == {e for e in held if e < 100}  # recording more moves no episode
    assert len(split_episodes(3, 0.1)[1]) == 1 and split_episodes(1, 0.1) == ([0], [])
    assert split_episodes(10, 0.0) == (list(range(10)), [])
    with pytest.raises(ValueError, match="heldout_fraction"):
        split_episodes(10, 1.0)


def test_dataset_windows_cover_the_split_episodes(tmp_path):
    eps = _write(tmp_path)
    train, held = ShardDataset(tmp_path, window=3), ShardDataset(tmp_path, window=3, split="heldout")
    assert train.episodes and held.episodes and not set(train.episodes) & set(held.episodes)
    assert sorted(train.episodes + held.episodes) == [0, 1, 2, 3]
    assert len(train) == sum(len(eps[e]["frames"]) - 2 for e in train.episodes)
    seen = set()
    for i in range(len(train)):
        item = train[i]
        e, s = item["episode"], item["start"]
        seen.add((e, s))
        assert item["frames"].shape == (3, S, S, 3) and item["frames"].dtype == torch.uint8
        assert item["actions"].shape == (2, 2) and item["actions"].dtype == torch.int64
        assert item["rewards"].dtype == torch.float32 and item["terminated"].dtype == torch.bool
        assert np.array_equal(item["frames"].numpy(), eps[e]["frames"][s : s + 3])
        assert np.array_equal(item["terminated"].numpy(), eps[e]["terminated"][s : s + 2])
    assert len(seen) == len(train)
    strided = ShardDataset(tmp_path, window=4, stride=2, heldout_fraction=0)
    assert [strided.locate(i) for i in range(3)] == [(0, 0), (0, 2), (1, 0)]
    assert len(ShardDataset(tmp_path, window=20, heldout_fraction=0)) == 0  # no episode is that long
    with pytest.raises(ValueError, match="split"):
        ShardDataset(tmp_path, window=3, split="test")


def test_dataloader_with_two_workers(tmp_path):
    _write(tmp_path)
    ds = ShardDataset(tmp_path, window=3, heldout_fraction=0)
    ds[0]  # opens a shard in the parent: forked workers must open their own
    loader = torch.utils.data.DataLoader(
        ds, batch_size=4, num_workers=2, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    batches = list(loader)
    assert sum(len(b["episode"]) for b in batches) == len(ds)
    assert batches[0]["frames"].shape == (4, 3, S, S, 3) and batches[0]["actions"].shape == (4, 2, 2)


def test_make_action_space():
    from gymnasium import spaces

    assert make_action_space({"type": "discrete", "nvec": [2]}) == spaces.Discrete(2)
    assert make_action_space({"type": "discrete", "nvec": [4], "start": [1]}) == spaces.Discrete(4, start=1)
    assert make_action_space({"type": "multi_discrete", "nvec": [9, 9]}) == spaces.MultiDiscrete([9, 9])
    with pytest.raises(ShardError, match="bad action space"):
        make_action_space({"type": "discrete", "nvec": [2, 3]})
