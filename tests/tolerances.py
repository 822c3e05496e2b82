"""Tolerances for comparing two computations of the same quantity along different paths.

Batched against one-at-a-time (or vectorised against scalar, GPU against CPU) runs different
kernels: BLAS blocks a batched matrix product differently, and torch/numpy run the SIMD body of
an elementwise op (sin, cos, norm) on most elements but a scalar tail on the last few, so which
path an element takes depends on the batch size. Each may round differently in the last bit, and
which host gives which bits depends on its CPU. Tests of such pairs use these tolerances; bitwise
checks stay only where the same code runs on the same shapes (a seed rerun, a restored state).
"""

from __future__ import annotations

import numpy as np

# float64 quantities after a few dozen ops: a few ulps each (2.2e-16 relative), far below 1e-12
FLOAT64_RTOL = 1e-12
# metres and radians in float64 after 50 dead-reckoning steps: ulps add up to ~1e-14; 1e-9 is still
# far below anything a frame could show
POSE_ATOL = 1e-9
# uint8 frames decoded from float latents that differ in the last bits: a pixel near a rounding
# boundary may land one grey level either side (docs/env.md says so for the default world too)
GREY_LEVELS = 1


def assert_frames_close(got: np.ndarray, want: np.ndarray, levels: int = GREY_LEVELS) -> None:
    """uint8 frames of the same shape that differ by at most `levels` grey levels anywhere."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
    assert diff.max(initial=0) <= levels, f"frames differ by up to {diff.max()} grey levels (allowed {levels})"
