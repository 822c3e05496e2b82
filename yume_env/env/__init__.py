"""Gymnasium environments of yume-env: the learned world (`YumeWorld-v0`), its batched twin, the SB3
adapter and episode recording. `YumeSim-v0` (the simulator) lives in `sim_env.py`.

Importing this package imports Gymnasium, but not the model: classes load lazily, so
`from yume_env.env import parse_action` is cheap.
"""

from __future__ import annotations

import importlib

from yume_env.actions import action_to_str, parse_action

_LAZY = {
    "YumeWorldEnv": "yume_env.env.world_env",
    "YumeWorldVectorEnv": "yume_env.env.world_vector_env",
    "Sb3VecEnvAdapter": "yume_env.env.sb3",
    "RecordEpisode": "yume_env.env.recording",
    "write_video": "yume_env.env.video",
    "WorldSnapshot": "yume_env.env.snapshot",
    "RewardContext": "yume_env.env.rewards",
    "RewardFunction": "yume_env.env.rewards",
    "RewardBatch": "yume_env.env.rewards",
    "actions_from_strings": "yume_env.env.spaces",
}

__all__ = ["parse_action", "action_to_str", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'yume_env.env' has no attribute {name!r}")
