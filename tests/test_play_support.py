"""Shared helpers of the play tests for worlds whose actions are not Yume's (no tests here).

`other_world_dir(nvec, names)` saves, once per process, a tiny world with random weights whose
action vocabulary is `nvec` (e.g. (3,) like a recorded Discrete(3) env, or (4, 3)), as
`yume-env train world` would write one for a recorded env, so the play and record code paths run on
the real loading path without training.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
from test_env_support import START_EVENTS, TEST_EVENTS, start_views, wake_zero_parameters

LEFT_STAY_RIGHT = (("left", "stay", "right"),)  # names of the one-component world's choices


@functools.cache
def other_world_dir(nvec: tuple[int, ...], names: tuple[tuple[str, ...], ...] = ()) -> str:
    """A saved tiny world with the action vocabulary `nvec` (and `names`), built once per process."""
    from yume_env.model import WorldModel, WorldModelConfig

    config = WorldModelConfig.preset("tiny").replace(
        action_nvec=list(nvec),
        action_names=[list(row) for row in names],
        action_embedding=True,
        pose_memory=False,
        recall_frames=0,
        sample_steps=1,
    )
    model = WorldModel.from_config(config, seed=0)
    wake_zero_parameters(model.dit, seed=0)
    for text in TEST_EVENTS:
        model.text.event_tokens(text)
    folder = Path(tempfile.mkdtemp(prefix="yume-play-other-world-"))
    atexit.register(shutil.rmtree, folder, True)
    model.save_pretrained(str(folder))
    np.savez(folder / "start_frames.npz", frames=start_views(tuple(model.frame_size)), events=np.array(START_EVENTS))
    return str(folder)


def make_other_env(nvec: tuple[int, ...], names: tuple[tuple[str, ...], ...] = (), **kwargs):
    import gymnasium as gym

    import yume_env  # noqa: F401  (registers the envs)

    return gym.make("YumeWorld-v0", model=other_world_dir(nvec, names), disable_env_checker=True, **kwargs)
