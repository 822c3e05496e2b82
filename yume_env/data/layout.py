"""The Sekai-style clip layout: writing and reading one clip (video, poses, text, actions).

A dataset is a folder of clip-class folders (named after the clip label, e.g. `W+A_right/`);
each clip is a group of files sharing a stem:

    <root>/<keys>_<camera>/<stem>.mp4          the frames (H.264 via imageio-ffmpeg)
    <root>/<keys>_<camera>/<stem>.npy          (N, 4, 4) float32 camera-to-world poses, one per frame
    <root>/<keys>_<camera>/<stem>.txt          Start Frame / End Frame / Duration / Keys / Mouse lines
                                               (Sekai), plus our Caption / Event / Event Start Frame
    <root>/<keys>_<camera>/<stem>.actions.npy  (N-1, 2) int64 (key, camera) per frame transition (ours)

Real Sekai folders have no `.actions.npy`; readers re-derive actions from the poses with the camera
quantizer. Plain video folders need no poses: a clip without its `.npy` takes its actions from the
`.actions.npy` if there is one, else from its `.txt` labels (`Keys: W+A`, `Mouse: →`: that one
(key, camera) pair for every frame transition), and its poses are dead-reckoned from those actions
(`label_poses`). Such a `.txt` may leave out Start Frame / End Frame / Duration: the video is then
decoded once to count its frames. Every file is written atomically (temp file + os.replace), the
`.txt` last. A missing, corrupt or truncated file raises `ClipError` naming the file and what was
expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yume_env.atomic import atomic_write

from ..actions import CAMERAS, KEYS, NUM_CAMERAS, NUM_KEYS, parse_camera, parse_key

CAMERA_NAMES = {
    "·": "still",
    "→": "right",
    "←": "left",
    "↑": "up",
    "↓": "down",
    "↑→": "up_right",
    "↑←": "up_left",
    "↓→": "down_right",
    "↓←": "down_left",
}
DEFAULT_FPS = 8
LABEL_SUB_FRAMES = 2  # frames per simulator step when dead-reckoning the poses of a clip without them
CRF = 10
PIXEL_FORMAT = "yuv444p"


class ClipError(ValueError):
    """A clip's files are missing, corrupt, truncated or inconsistent; the message names the file."""


@dataclass
class ClipMeta:
    """The `.txt` of a clip, parsed."""

    start_frame: int
    end_frame: int
    duration: int
    keys: str = "None"
    mouse: str = "·"
    caption: str = ""
    event: str = ""
    event_start: int = -1  # first frame (clip index) showing the event, -1 for none
    extra: dict = field(default_factory=dict)  # any other "Name: value" lines
    labelled: bool = False  # the .txt has a Keys: or Mouse: line (not written back: derived when read)
    has_span: bool = True  # the .txt has the Start Frame / End Frame / Duration lines


@dataclass
class Clip:
    path: Path  # the .mp4
    meta: ClipMeta
    poses: np.ndarray  # (N, 4, 4) float32 (dead-reckoned from the actions when the clip has no .npy)
    actions: np.ndarray | None  # (N-1, 2) int64, None when the clip has poses but no sidecar
    frames: np.ndarray | None = None  # (N, H, W, 3) uint8 when decoded


def class_folder(keys: str, camera: str) -> str:
    """Folder name of a clip class: ("W+A", "→") -> "W+A_right"."""
    if keys not in KEYS or camera not in CAMERAS:
        raise ValueError(f"clip class must be a key of {KEYS} and a camera move of {CAMERAS}, got {keys!r}, {camera!r}")
    return f"{keys}_{CAMERA_NAMES[camera]}"


def clip_files(mp4: str | os.PathLike) -> dict[str, Path]:
    """The paths of one clip's files from its .mp4 path."""
    mp4 = Path(mp4)
    stem = mp4.with_suffix("")
    return {
        "mp4": mp4,
        "poses": stem.with_suffix(".npy"),
        "txt": stem.with_suffix(".txt"),
        "actions": Path(str(stem) + ".actions.npy"),
    }


# -- writing ------------------------------------------------------------------------------
def _save_npy(path: Path, arr: np.ndarray) -> None:
    def write(tmp):
        with open(tmp, "wb") as f:
            np.save(f, arr)

    atomic_write(path, write)


def write_video(
    path: Path, frames: np.ndarray, fps: int = DEFAULT_FPS, crf: int = CRF, pixelformat: str = PIXEL_FORMAT
) -> None:
    """H.264 mp4 of uint8 (N, H, W, 3) frames (sides multiples of 16 avoid resizing).

    yuv444p (full-resolution colour) by default: at 64x64, 4:2:0 chroma subsampling smears the
    colour edges the world model must learn (mean error ~5 vs ~1.5 grey levels at crf 10). Pass
    pixelformat="yuv420p" for files that browsers play.
    """
    import imageio.v2 as iio

    def write(tmp):
        w = iio.get_writer(
            tmp,
            format="FFMPEG",
            fps=fps,
            codec="libx264",
            macro_block_size=16,
            pixelformat=pixelformat,
            ffmpeg_params=["-crf", str(crf)],
        )
        try:
            for f in frames:
                w.append_data(np.ascontiguousarray(f))
        finally:
            w.close()

    atomic_write(path, write)


def format_meta(meta: ClipMeta) -> str:
    lines = [
        f"Start Frame: {meta.start_frame}",
        f"End Frame: {meta.end_frame}",
        f"Duration: {meta.duration} frames",
        f"Keys: {meta.keys}",
        f"Mouse: {meta.mouse}",
        f"Caption: {meta.caption}",
        f"Event: {meta.event}",
        f"Event Start Frame: {meta.event_start}",
    ]
    lines += [f"{k}: {v}" for k, v in meta.extra.items()]
    return "\n".join(lines) + "\n"


def write_clip(
    folder: str | os.PathLike,
    stem: str,
    frames: np.ndarray,
    poses: np.ndarray,
    meta: ClipMeta,
    actions: np.ndarray | None = None,
    fps: int = DEFAULT_FPS,
) -> Path:
    """Write one clip's files into `folder` (created if needed); returns the .mp4 path."""
    frames = np.asarray(frames)
    poses = np.asarray(poses, dtype=np.float32)
    n = len(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
    if poses.shape != (n, 4, 4):
        raise ValueError(f"poses must be ({n}, 4, 4) (one per frame), got {poses.shape}")
    if meta.duration != n:
        raise ValueError(f"meta.duration ({meta.duration}) must equal the number of frames ({n})")
    if actions is not None:
        actions = np.asarray(actions, dtype=np.int64)
        if actions.shape != (n - 1, 2):
            raise ValueError(f"actions must be ({n - 1}, 2) (one per frame transition), got {actions.shape}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = clip_files(folder / f"{stem}.mp4")
    _save_npy(files["poses"], poses)
    if actions is not None:
        _save_npy(files["actions"], actions)
    write_video(files["mp4"], frames, fps)
    atomic_write(files["txt"], lambda tmp: Path(tmp).write_text(format_meta(meta), encoding="utf-8"))
    return files["mp4"]


# -- reading ------------------------------------------------------------------------------
def parse_meta(path: Path, need_span: bool = True) -> ClipMeta:
    """Parse a clip's .txt. The Sekai lines Start Frame, End Frame and Duration are required when
    `need_span`; otherwise a .txt without them gets start 0, end -1, duration 0 and has_span False."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ClipError(
            f"{path}: missing clip text file (expected 'Start Frame:', 'End Frame:', 'Duration:' lines)"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ClipError(f"{path}: unreadable clip text file ({e})") from None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields[k.strip()] = v.strip()
    labelled = "Keys" in fields or "Mouse" in fields
    has_span = any(k in fields for k in ("Start Frame", "End Frame", "Duration"))
    if has_span or need_span:
        try:
            start, end = int(fields.pop("Start Frame")), int(fields.pop("End Frame"))
            duration = int(fields.pop("Duration").split()[0])
        except (KeyError, ValueError, IndexError):
            raise ClipError(
                f"{path}: needs integer 'Start Frame:', 'End Frame:' and 'Duration: N frames' lines"
            ) from None
    else:
        start, end, duration = 0, -1, 0
    try:
        event_start = int(fields.pop("Event Start Frame", "-1") or -1)
    except ValueError:
        raise ClipError(f"{path}: 'Event Start Frame:' must be an integer") from None
    return ClipMeta(
        start,
        end,
        duration,
        keys=fields.pop("Keys", "None"),
        mouse=fields.pop("Mouse", "·"),
        caption=fields.pop("Caption", ""),
        event=fields.pop("Event", ""),
        event_start=event_start,
        extra=fields,
        labelled=labelled,
        has_span=has_span,
    )


def label_action(meta: ClipMeta, txt: Path) -> tuple[int, int]:
    """The (key, camera) indices of a clip's `Keys:` / `Mouse:` lines; ClipError naming the .txt."""
    try:
        return parse_key(meta.keys), parse_camera(meta.mouse)
    except ValueError as e:
        raise ClipError(f"{txt}: bad action label ({e})") from None


def label_poses(actions: np.ndarray, sub_frames: int = LABEL_SUB_FRAMES) -> np.ndarray:
    """(N, 4, 4) float32 camera-to-world poses dead-reckoned from (N-1, 2) (key, camera) actions:
    one `sub_frames`-th of a simulator step per frame, from the origin (`yume_env.motion`, no walls)."""
    from ..motion import camera_to_world, dead_reckon  # imports torch: only for clips without poses

    actions = np.asarray(actions, dtype=np.int64).reshape(-1, 2)
    pose = np.zeros((1, 4), dtype=np.float64)
    out = [pose]
    for a in actions:
        pose = dead_reckon(pose, a[None], sub_frames, moves=1)[:, 0]
        out.append(pose)
    p = np.concatenate(out)
    return camera_to_world(p[:, 0], 0.0, p[:, 1], p[:, 2], p[:, 3]).astype(np.float32)


def _load_npy(path: Path, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ClipError(f"{path}: missing {what} file") from None
    except (ValueError, OSError, EOFError) as e:
        raise ClipError(f"{path}: corrupt or truncated {what} file ({e})") from None


def read_video(path: Path) -> np.ndarray:
    """All frames of an mp4 as uint8 (N, H, W, 3); ClipError naming the file if it cannot be decoded."""
    import imageio.v2 as iio

    if not Path(path).exists():
        raise ClipError(f"{path}: missing video file")
    try:
        reader = iio.get_reader(path, format="FFMPEG")
        try:
            frames = [np.asarray(f) for f in reader]
        finally:
            reader.close()
    except Exception as e:  # imageio/ffmpeg raise several types (OSError, RuntimeError, IndexError)
        raise ClipError(f"{path}: corrupt or truncated video ({type(e).__name__}: {e})") from None
    if not frames:
        raise ClipError(f"{path}: video has no decodable frames (corrupt or truncated)")
    return np.stack(frames)


def read_clip(mp4: str | os.PathLike, decode: bool = True) -> Clip:
    """Read and check one clip (frames only when `decode`, or when a clip without poses has no
    Duration line and must be decoded to count its frames). Raises ClipError naming the bad file."""
    files = clip_files(mp4)
    if not files["mp4"].exists():
        raise ClipError(f"{files['mp4']}: missing video file")
    has_poses = files["poses"].exists()
    meta = parse_meta(files["txt"], need_span=has_poses)
    frames = None
    if not meta.has_span:  # a labelled clip of a plain video folder: the video says how long it is
        frames = read_video(files["mp4"])
        meta.start_frame, meta.end_frame, meta.duration = 0, len(frames) - 1, len(frames)
    if meta.duration < 1 or meta.end_frame - meta.start_frame + 1 != meta.duration:
        raise ClipError(
            f"{files['txt']}: Duration ({meta.duration}) must equal End Frame - Start Frame + 1 "
            f"({meta.end_frame} - {meta.start_frame} + 1)"
        )
    poses = None
    if has_poses:
        poses = _load_npy(files["poses"], "poses")
        if poses.shape != (meta.duration, 4, 4):
            raise ClipError(
                f"{files['poses']}: poses must have shape ({meta.duration}, 4, 4) (Duration from the .txt), "
                f"got {poses.shape}"
            )
    actions = _read_sidecar(files["actions"], meta.duration) if files["actions"].exists() else None
    if poses is None:
        if actions is None:
            actions = _label_actions(meta, files)
        poses = label_poses(actions)
    clip = Clip(files["mp4"], meta, poses.astype(np.float32), actions)
    if decode:
        clip.frames = read_video(files["mp4"]) if frames is None else frames
        if len(clip.frames) != meta.duration:
            raise ClipError(
                f"{files['mp4']}: video has {len(clip.frames)} frames but {files['txt'].name} says "
                f"Duration: {meta.duration} frames (truncated or mismatched clip)"
            )
    return clip


def _read_sidecar(path: Path, duration: int) -> np.ndarray:
    """A clip's `.actions.npy`, checked: int (duration - 1, 2) within the action vocabulary."""
    actions = _load_npy(path, "actions")
    if actions.shape != (duration - 1, 2) or not np.issubdtype(actions.dtype, np.integer):
        raise ClipError(f"{path}: actions must be int ({duration - 1}, 2), got {actions.dtype} {actions.shape}")
    if ((actions[:, 0] < 0) | (actions[:, 0] >= NUM_KEYS) | (actions[:, 1] < 0) | (actions[:, 1] >= NUM_CAMERAS)).any():
        raise ClipError(f"{path}: actions must be (key in [0, {NUM_KEYS}), camera in [0, {NUM_CAMERAS}))")
    return actions.astype(np.int64)


def _label_actions(meta: ClipMeta, files: dict[str, Path]) -> np.ndarray:
    """(duration - 1, 2) actions of a clip without poses or sidecar: its .txt label on every transition."""
    if not meta.labelled:
        raise ClipError(
            f"{files['poses']}: missing poses file; a clip without poses needs action labels: "
            f"'Keys:' and 'Mouse:' lines in {files['txt'].name} (e.g. 'Keys: W+A', 'Mouse: →') "
            f"or a {files['actions'].name} sidecar"
        )
    key, camera = label_action(meta, files["txt"])
    return np.tile(np.array([key, camera], dtype=np.int64), (meta.duration - 1, 1))


def find_clips(root: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """(clips, orphans): every .mp4 under `root` (sorted), and clip files without an .mp4 or left
    behind by an interrupted write (hidden `.<name>.*.tmp*` files)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    mp4s = sorted(p for p in root.rglob("*.mp4") if not p.name.startswith("."))
    stems = {p.with_suffix("") for p in mp4s}
    orphans = []
    for p in sorted(root.rglob("*")):
        if p.name.startswith(".") and ".tmp" in p.name and p.parent != root and p.is_file():
            orphans.append(p)
            continue
        if p.name.startswith(".") or p.parent == root or not p.is_file() or p.suffix not in (".txt", ".npy"):
            continue  # clips live in class folders; files at the top (a README, a manifest) are not clips
        stem = Path(str(p)[: -len(".actions.npy")]) if p.name.endswith(".actions.npy") else p.with_suffix("")
        if stem not in stems:
            orphans.append(p)
    return mp4s, orphans
