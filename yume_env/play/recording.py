"""What was played since the last reset: the action log (replayable) and the shown frames (mp4).

The action log is the JSON of `yume-env record` (`yume_env.env.policies.ActionScript`, format
"yume-env-actions/1"): `seed`, `event` (the reset's event option: None, the start view's own),
`events` ([[step, text], ...]: set before that 0-based step), `action_nvec` (the world's actions:
[9, 9] for Yume's), `actions` (one list per step, one integer per component: [[key, camera], ...]
for Yume's), `action_text`, `model` and `frames`. `yume-env record --agent log.json --model DIR` replays it exactly.
An episode started from an uploaded picture names it as `"image": "yume-play-start.png"` (record
reads that file, relative to where it runs: save the picture beside the log and replay from there)
and also carries it inline as `"image_data"` (a PNG data URL), so the log alone keeps it. Frames are kept as the encoded bytes already sent to the page (no second encoding);
the mp4 is written only when asked for.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from yume_env.env.policies import ActionScript
from yume_env.play.frames import decode_frame, to_data_url
from yume_env.vocabulary import YUME, ActionVocabulary

START_IMAGE_NAME = "yume-play-start.png"  # the file name of the start picture download


class Recording:
    """The current branch's history from its reset. Not thread-safe: the session's lock guards it."""

    def __init__(
        self,
        seed: int | None,
        model: str | None,
        first_frame: bytes,
        image_png: bytes | None = None,
        vocabulary: ActionVocabulary = YUME,
    ):
        self.seed = seed
        self.model = model
        self.vocabulary = vocabulary  # the world's actions, which the log is written in
        self.image_png = image_png  # the start picture as the world got it (fitted, PNG), if any
        self.actions: list[tuple[int, ...]] = []
        self.events: dict[int, str] = {}  # number of steps taken when the event was set -> text
        self.frames: list[bytes] = [first_frame]  # the reset observation, then every chunk's frames

    @property
    def num_steps(self) -> int:
        return len(self.actions)

    def set_event(self, text: str) -> None:
        """Records an event set now (before the next step); the last one before a step wins."""
        self.events[len(self.actions)] = str(text)

    def add(self, action: tuple[int, ...], frames: list[bytes]) -> None:
        self.actions.append(tuple(int(v) for v in action))
        self.frames.extend(frames)

    def copy(self) -> "Recording":
        """A branch point: later steps on either copy do not show up in the other."""
        twin = copy.copy(self)
        twin.actions, twin.events, twin.frames = list(self.actions), dict(self.events), list(self.frames)
        return twin

    def action_log(self) -> dict:
        actions = np.array(self.actions, dtype=np.int64).reshape(-1, self.vocabulary.components)
        script = ActionScript(actions, dict(self.events), self.seed, event=None, vocabulary=self.vocabulary)
        log = {**script.to_json(), "model": self.model or "default", "frames": len(self.frames)}
        if self.image_png is not None:
            log["image"] = START_IMAGE_NAME
            log["image_data"] = to_data_url(self.image_png, "png")
        return log

    def write_mp4(self, path: str | os.PathLike, fps: float) -> Path:
        """Writes every recorded frame to `path` (H.264 via imageio-ffmpeg), atomically."""
        return write_mp4(self.frames, path, fps)


def write_mp4(frames: list[bytes], path: str | os.PathLike, fps: float) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".mp4", dir=path.parent)
    os.close(fd)
    try:
        first = decode_frame(frames[0])
        # sides that are not multiples of 16 are padded by ffmpeg's macro blocks: keep the frame as is
        with imageio.get_writer(tmp, fps=fps, codec="libx264", macro_block_size=1, quality=8) as writer:
            writer.append_data(_even(first))
            for data in frames[1:]:
                writer.append_data(_even(decode_frame(data)))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _even(frame: np.ndarray) -> np.ndarray:
    """libx264 with yuv420p needs even sides: pad odd ones by one edge row/column."""
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frame
