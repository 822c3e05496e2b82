"""Checkpoint I/O on small modules: atomic writes, strict checks, messages that name file and keys."""

import pytest
import torch
from torch import nn

from yume_env.model.checkpoint import (
    CheckpointError,
    check_state_dict,
    load_module,
    load_pth,
    load_safetensors,
    require_file,
    save_folder,
    save_safetensors,
)


def small(dim=4, layers=2):
    return nn.Sequential(*[nn.Linear(dim, dim) for _ in range(layers)])


def test_safetensors_round_trip_leaves_no_temp_files(tmp_path):
    model = small()
    save_safetensors(tmp_path / "m.safetensors", model.state_dict(), {"k": "v"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
    other = small()
    meta = load_module(other, tmp_path / "m.safetensors")
    assert meta == {"k": "v"}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


def test_a_truncated_file_is_reported_as_corrupt_or_truncated(tmp_path):
    path = tmp_path / "dit.safetensors"
    save_safetensors(path, small().state_dict())
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(
        CheckpointError, match=r"dit\.safetensors is not a readable safetensors file .*corrupt or truncated"
    ):
        load_safetensors(path)


def test_garbage_is_reported_as_corrupt(tmp_path):
    path = tmp_path / "vae.safetensors"
    path.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="vae.safetensors is not a readable safetensors file"):
        load_module(small(), path)


def test_missing_and_unexpected_keys_are_listed_with_counts(tmp_path):
    path = tmp_path / "dit.safetensors"
    save_safetensors(path, small(layers=2).state_dict())
    with pytest.raises(CheckpointError) as err:
        load_module(small(layers=3), path)
    msg = str(err.value)
    assert "dit.safetensors" in msg and "missing keys: '2.bias', '2.weight' (2)" in msg
    with pytest.raises(CheckpointError, match=r"unexpected keys: '2.bias', '2.weight' \(2\)"):
        save_safetensors(path, small(layers=3).state_dict())
        load_module(small(layers=2), path)


def test_many_offending_keys_are_shortened_with_the_total():
    expected = {f"w{i}": torch.zeros(1) for i in range(12)}
    with pytest.raises(CheckpointError, match=r"missing keys: 'w0', 'w1', 'w10', 'w11', 'w2', \.\.\. \(12 in all\)"):
        check_state_dict(expected, {}, "x.safetensors")


def test_wrong_shapes_are_reported_as_a_config_mismatch(tmp_path):
    path = tmp_path / "dit.safetensors"
    save_safetensors(path, small(dim=6).state_dict())
    with pytest.raises(CheckpointError) as err:
        load_module(small(dim=4), path, config_file=tmp_path / "config.json")
    msg = str(err.value)
    assert "wrong shapes (4)" in msg and "'0.weight': file (6, 6) vs model (4, 4)" in msg
    assert "config.json" in msg and "different models" in msg


def test_optional_keys_may_be_absent(tmp_path):
    path = tmp_path / "dit.safetensors"
    model = small(layers=2)
    save_safetensors(path, {k: v for k, v in model.state_dict().items() if not k.startswith("1.")})
    load_module(small(layers=2), path, optional={"1.weight", "1.bias"})


def test_require_file_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model folder .*nowhere does not exist; train one"):
        require_file(tmp_path / "nowhere", "config.json", "train one")
    (tmp_path / "vae.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"config\.json is missing \(the folder holds: vae\.safetensors\)"):
        require_file(tmp_path, "config.json", "re-save")


def test_save_folder_replaces_the_old_folder_whole(tmp_path):
    target = tmp_path / "world"
    save_folder(target, lambda d: (d / "a.txt").write_text("1"))
    save_folder(target, lambda d: (d / "b.txt").write_text("2"))
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["world"]


def test_a_failed_save_leaves_the_old_folder_untouched(tmp_path):
    target = tmp_path / "world"
    save_folder(target, lambda d: (d / "a.txt").write_text("1"))

    def broken(d):
        (d / "half.txt").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_folder(target, broken)
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["world"]


class Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_pth_files_are_read_without_unpickling_objects(tmp_path):
    good, bad = tmp_path / "good.pth", tmp_path / "bad.pth"
    torch.save({"w": torch.ones(2)}, good)
    torch.save({"w": Evil()}, bad)
    assert torch.equal(load_pth(good)["w"], torch.ones(2))
    with pytest.raises(CheckpointError, match=r"bad\.pth could not be read as a weights-only torch file"):
        load_pth(bad)
