"""The Sekai-layout writer/reader, the dataset of windows and `yume-env data`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from yume_env.actions import action_caption
from yume_env.camera import clip_label
from yume_env.data.layout import ClipError, ClipMeta, class_folder, clip_files, find_clips, read_clip, write_clip
from yume_env.sim import Simulator

torch = pytest.importorskip("torch")
from yume_env.data.dataset import SekaiClipDataset, collate_windows  # noqa: E402


def _sim_clip(n_steps: int = 6, seed: int = 0, event_at: int = -1):
    sim = Simulator(32, 32, sub_frames=2, seed=seed)
    frames, poses, actions = [sim.reset(seed)[None]], [sim.pose[None]], []
    for k in range(n_steps):
        if k == event_at:
            sim.set_event("it starts to snow")
        a = np.array([1, 1 if k % 2 else 0])
        out = sim.step(a)
        frames.append(out.frames)
        poses.append(out.poses)
        actions += [a, a]
    return np.concatenate(frames), np.concatenate(poses), np.stack(actions)


def _write(root, stem="clip_000000", event_at=-1, with_actions=True, seed=0):
    frames, poses, actions = _sim_clip(event_at=event_at, seed=seed)
    keys, mouse = clip_label(poses)
    n = len(frames)
    meta = ClipMeta(
        0,
        n - 1,
        n,
        keys=keys,
        mouse=mouse,
        caption="caption",
        event="it starts to snow" if event_at >= 0 else "",
        event_start=1 + 2 * event_at if event_at >= 0 else -1,
    )
    path = write_clip(root / class_folder(keys, mouse), stem, frames, poses, meta, actions if with_actions else None)
    return path, frames, poses, actions


def test_writer_reader_round_trip(tmp_path):
    path, frames, poses, actions = _write(tmp_path, event_at=2)
    clip = read_clip(path)
    assert clip.frames.shape == frames.shape
    assert np.abs(clip.frames.astype(int) - frames.astype(int)).mean() < 4  # lossy H.264
    assert np.allclose(clip.poses, poses.astype(np.float32))
    assert np.array_equal(clip.actions, actions)
    assert clip.meta.duration == len(frames) and clip.meta.event == "it starts to snow" and clip.meta.event_start == 5
    text = clip_files(path)["txt"].read_text(encoding="utf-8")
    for line in (
        "Start Frame: 0",
        f"End Frame: {len(frames) - 1}",
        f"Duration: {len(frames)} frames",
        "Keys: W",
        "Mouse: ",
    ):
        assert line in text


def test_writer_leaves_no_temp_files(tmp_path):
    _write(tmp_path)
    assert not [p for p in tmp_path.rglob(".*")]


def test_truncated_video_error_names_the_file(tmp_path):
    path, *_ = _write(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ClipError, match=str(path.name)):
        read_clip(path)


def test_corrupt_poses_error_names_the_file(tmp_path):
    path, *_ = _write(tmp_path)
    npy = clip_files(path)["poses"]
    npy.write_bytes(npy.read_bytes()[:100])
    with pytest.raises(ClipError, match=npy.name):
        read_clip(path)


def test_missing_text_error_names_the_file(tmp_path):
    path, *_ = _write(tmp_path)
    clip_files(path)["txt"].unlink()
    with pytest.raises(ClipError, match=r"\.txt"):
        read_clip(path)


def test_duration_mismatch_is_an_error(tmp_path):
    path, *_ = _write(tmp_path)
    txt = clip_files(path)["txt"]
    txt.write_text(
        txt.read_text().replace("Duration: 13 frames", "Duration: 14 frames").replace("End Frame: 12", "End Frame: 13")
    )
    with pytest.raises(ClipError, match="poses"):
        read_clip(path)


def test_dataset_raises_on_a_bad_clip_or_lists_it_with_skip_bad(tmp_path):
    _write(tmp_path, "clip_000000")
    bad, *_ = _write(tmp_path, "clip_000001", seed=1)
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(ClipError, match="clip_000001"):
        SekaiClipDataset(tmp_path, window=5)
    ds = SekaiClipDataset(tmp_path, window=5, skip_bad=True)
    assert ds.report["clips"] == 1 and len(ds.report["bad"]) == 1 and "clip_000001" in ds.report["bad"][0]["path"]


def test_orphan_files_are_not_skipped_silently(tmp_path):
    path, *_ = _write(tmp_path)
    path.unlink()
    with pytest.raises(ClipError, match="without a matching .mp4"):
        SekaiClipDataset(tmp_path)
    assert find_clips(tmp_path)[1]


def test_interrupted_write_leftovers_are_reported(tmp_path):
    path, *_ = _write(tmp_path)
    (path.parent / ".clip_000009.tmp123.mp4").write_bytes(b"partial")
    with pytest.raises(ClipError, match="interrupted write"):
        SekaiClipDataset(tmp_path)
    assert len(SekaiClipDataset(tmp_path, skip_bad=True).report["bad"]) == 1


def test_dataset_windows_have_frames_actions_poses_captions_event(tmp_path):
    _write(tmp_path, event_at=3)
    ds = SekaiClipDataset(tmp_path, window=5, stride=4)
    assert len(ds) == 3  # 13 frames: starts 0, 4, 8
    item = ds[2]
    assert item["frames"].shape == (5, 32, 32, 3) and item["frames"].dtype == torch.uint8
    assert item["actions"].shape == (4, 2) and item["poses"].shape == (5, 4, 4)
    assert item["captions"][0] == action_caption(*item["actions"][0].tolist())
    assert item["event"] == "it starts to snow" and item["event_start"] == 0  # began at frame 7, before this window
    assert ds[0]["event"] == "" and ds[0]["event_start"] == -1
    ds1 = SekaiClipDataset(tmp_path, window=9, stride=4)
    assert ds1[0]["event_start"] == 7
    batch = collate_windows([ds[0], ds[1]])
    assert batch["frames"].shape == (2, 5, 32, 32, 3) and len(batch["captions"]) == 2
    assert SekaiClipDataset(tmp_path, window=5, frames="float")[0]["frames"].dtype == torch.float32


def test_real_sekai_folder_without_actions_gets_them_from_the_poses(tmp_path):
    path, frames, poses, actions = _write(tmp_path, with_actions=False)
    ds = SekaiClipDataset(tmp_path, window=None)
    assert np.array_equal(ds[0]["actions"].numpy(), actions)


def _plain_clip(root, keys="W+A", mouse="→", span=True, sidecar=False, stem="clip_000000"):
    """A clip of a plain video folder: the .mp4 and a .txt of Keys/Mouse labels, no poses."""
    path, frames, _, actions = _write(root, stem)
    files = clip_files(path)
    files["poses"].unlink()
    if not sidecar:
        files["actions"].unlink()
    n = len(frames)
    lines = ["Start Frame: 0", f"End Frame: {n - 1}", f"Duration: {n} frames"] if span else []
    files["txt"].write_text("\n".join(lines + [f"Keys: {keys}", f"Mouse: {mouse}"]) + "\n", encoding="utf-8")
    return path, frames, actions


def test_plain_video_clip_takes_its_actions_from_the_keys_mouse_labels(tmp_path, capsys):
    from yume_env.actions import parse_camera, parse_key
    from yume_env.camera import trajectory_actions
    from yume_env.cli import main

    path, frames, _ = _plain_clip(tmp_path)
    clip = read_clip(path)
    n = len(frames)
    assert clip.meta.labelled and clip.actions.shape == (n - 1, 2) and clip.poses.shape == (n, 4, 4)
    assert (clip.actions == [parse_key("W+A"), parse_camera("→")]).all()
    assert np.array_equal(trajectory_actions(clip.poses), clip.actions)  # dead-reckoned poses agree with the labels
    ds = SekaiClipDataset(tmp_path, window=5)
    assert ds[0]["actions"].tolist() == [[5, 1]] * 4 and ds[0]["frames"].shape == (5, 32, 32, 3)
    assert ds[0]["captions"][0] == action_caption(5, 1) and ds[0]["poses"].shape == (5, 4, 4)
    capsys.readouterr()
    assert main(["data", "info", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["actions_from"] == {"labels": 1}


def test_plain_video_clip_without_duration_lines_counts_its_frames(tmp_path):
    path, frames, _ = _plain_clip(tmp_path, keys="None", mouse="·", span=False)
    clip = read_clip(path, decode=False)
    assert clip.meta.duration == len(frames) and clip.meta.end_frame == len(frames) - 1
    assert (clip.actions == 0).all()
    assert len(SekaiClipDataset(tmp_path, window=None, verify=False)[0]["frames"]) == len(frames)


def test_clip_without_poses_uses_its_sidecar_actions(tmp_path):
    path, _, actions = _plain_clip(tmp_path, sidecar=True)
    assert np.array_equal(read_clip(path, decode=False).actions, actions)


def test_clip_without_poses_or_labels_is_an_error(tmp_path):
    path, frames, _ = _plain_clip(tmp_path)
    files = clip_files(path)
    files["txt"].write_text(f"Start Frame: 0\nEnd Frame: {len(frames) - 1}\nDuration: {len(frames)} frames\n")
    with pytest.raises(ClipError, match=r"missing poses file.*'Keys:' and 'Mouse:'"):
        read_clip(path)
    files["txt"].write_text("Caption: no labels, no span\n")
    with pytest.raises(ClipError, match=r"missing poses file.*'Keys:' and 'Mouse:'"):
        read_clip(path)
    files["txt"].write_text("Duration: 13 frames\nKeys: W\n")  # a span needs all three lines
    with pytest.raises(ClipError, match=r"\.txt: needs integer 'Start Frame:'"):
        read_clip(path)


def test_bad_action_label_names_the_text_file(tmp_path):
    path, *_ = _plain_clip(tmp_path, keys="Q+E")
    with pytest.raises(ClipError, match=r"clip_000000\.txt: bad action label .*unknown movement key"):
        read_clip(path)


def test_cli_generate_and_info(tmp_path, capsys):
    from yume_env.cli import main

    out = tmp_path / "ds"
    assert (
        main(
            [
                "data",
                "generate",
                "--out",
                str(out),
                "--clips",
                "3",
                "--frames",
                "9",
                "--height",
                "32",
                "--width",
                "32",
                "--seed",
                "5",
                "--event-prob",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    summary = json.loads((out / "dataset.json").read_text())
    assert summary["clips"] == 3 and sum(summary["classes"].values()) == 3
    mp4s, orphans = find_clips(out)
    assert len(mp4s) == 3 and not orphans
    ds = SekaiClipDataset(out, window=9)
    assert len(ds) == 3 and ds[0]["frames"].shape == (9, 32, 32, 3)
    capsys.readouterr()
    assert main(["data", "info", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["clips"] == 3
    shutil.rmtree(out / next(iter(summary["classes"])))
    assert main(["data", "info", str(out)]) == 0
