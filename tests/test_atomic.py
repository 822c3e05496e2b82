"""yume_env.atomic: whole files or none, temp names that keep the suffix and that the cleaners find."""

from __future__ import annotations

import numpy as np
import pytest

from yume_env.atomic import atomic_write, atomic_write_text, temp_name_glob


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    path = atomic_write_text(tmp_path / "log.json", "old", durable=True)

    def half_then_fail(tmp):
        tmp.write_text("ne")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["log.json"]


def test_the_temp_file_keeps_the_suffix_and_matches_the_cleanup_glob(tmp_path):
    seen = []

    def save(tmp):
        seen.append(tmp)
        np.save(tmp, np.arange(3))  # numpy would append ".npy" to a name without it

    path = atomic_write(tmp_path / "sub" / "a.npy", save)
    assert seen[0].suffix == ".npy" and seen[0].match(temp_name_glob("a.npy"))
    assert np.load(path).tolist() == [0, 1, 2] and sorted(p.name for p in path.parent.iterdir()) == ["a.npy"]
