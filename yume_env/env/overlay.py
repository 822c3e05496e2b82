"""Viewing aids for recorded videos: integer upscaling and a panel showing keys, camera move and event."""

from __future__ import annotations

import numpy as np

from yume_env import actions as A
from yume_env.env.font import GLYPH_H, GLYPH_W, draw_text

PANEL_H = 32  # a multiple of 16, so mp4 frame sides stay multiples of 16
_ON, _OFF, _EDGE = (255, 210, 60), (60, 60, 60), (140, 140, 140)
_BG, _TEXT = (16, 16, 16), (235, 235, 235)
# camera move -> (row, col) in a 3x3 grid: up is row 0, right is col 2
_CAMERA_CELL = {
    "·": (1, 1),
    "→": (1, 2),
    "←": (1, 0),
    "↑": (0, 1),
    "↓": (2, 1),
    "↑→": (0, 2),
    "↑←": (0, 0),
    "↓→": (2, 2),
    "↓←": (2, 0),
}
_CAMERA_WORD = {
    "·": "",
    "→": "RIGHT",
    "←": "LEFT",
    "↑": "UP",
    "↓": "DOWN",
    "↑→": "UP-RIGHT",
    "↑←": "UP-LEFT",
    "↓→": "DOWN-RIGHT",
    "↓←": "DOWN-LEFT",
}


def default_upscale(frame_size: tuple[int, int], target: int = 256) -> int:
    """The integer factor that brings the longer side to about `target` pixels (1 for large frames)."""
    return max(1, int(target) // max(frame_size))


def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour integer upscale of uint8 (..., H, W, 3)."""
    if factor == 1:
        return frames
    return frames.repeat(factor, axis=-3).repeat(factor, axis=-2)


def _box(panel: np.ndarray, x: int, y: int, size: int, on: bool, label: str = "") -> None:
    panel[y : y + size, x : x + size] = _EDGE
    panel[y + 1 : y + size - 1, x + 1 : x + size - 1] = _ON if on else _OFF
    if label:
        draw_text(panel, label, x + (size - GLYPH_W) // 2, y + (size - GLYPH_H) // 2, color=(0, 0, 0) if on else _TEXT)


def _wrap(text: str, width_chars: int, lines: int) -> list[str]:
    words, out, line = str(text).split(), [], ""
    for word in words:
        candidate = f"{line} {word}".strip()
        if len(candidate) <= width_chars:
            line = candidate
            continue
        out.append(line)
        line = word[:width_chars]
    out.append(line)
    out = [l for l in out if l]
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1][: max(width_chars - 2, 0)] + ".."
    return out


def panel(width: int, action: tuple[int, int] | None, event: str, step: int) -> np.ndarray:
    """A uint8 (PANEL_H, width, 3) strip: W/A/S/D boxes, a 3x3 camera grid, the step and the event."""
    strip = np.empty((PANEL_H, width, 3), dtype=np.uint8)
    strip[:] = _BG
    key_name = A.KEYS[action[0]] if action is not None else "None"
    camera = A.CAMERAS[action[1]] if action is not None else "·"
    pressed = set(key_name.split("+")) if action is not None else set()
    size, gap, y0 = 13, 2, 2
    for label, (row, col) in {"W": (0, 1), "A": (1, 0), "S": (1, 1), "D": (1, 2)}.items():
        _box(strip, 3 + col * (size + gap), y0 + row * (size + gap) - 1, size, label in pressed, label)
    cell, cx0 = 9, 3 + 3 * (size + gap) + 4
    active = _CAMERA_CELL[camera] if action is not None else None
    for row in range(3):
        for col in range(3):
            _box(strip, cx0 + col * (cell + 1), 2 + row * (cell + 1), cell, (row, col) == active and camera != "·")
    tx = cx0 + 3 * (cell + 1) + 5
    chars = max((width - tx - 2) // (GLYPH_W + 1), 0)
    head = f"STEP {step}" + ("" if action is None else f" {key_name} {_CAMERA_WORD[camera]}".rstrip())
    lines = [head[:chars]] + _wrap(f"EVENT: {event}" if event else "", chars, 2)
    for n, line in enumerate(lines):
        draw_text(strip, line, tx, 2 + n * (GLYPH_H + 3), color=_TEXT)
    return strip


def annotate(frames: np.ndarray, factor: int, action: tuple[int, int] | None, event: str, step: int) -> np.ndarray:
    """Upscales uint8 (F, H, W, 3) frames and appends the panel below each: (F, H*factor + PANEL_H, W*factor, 3)."""
    big = upscale(frames, factor)
    strip = panel(big.shape[2], action, event, step)
    return np.concatenate([big, np.broadcast_to(strip, (big.shape[0], *strip.shape))], axis=1)
