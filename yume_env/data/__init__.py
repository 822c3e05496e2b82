"""Datasets: the Sekai clip layout (`layout`; plain video folders with Keys/Mouse labels too), the
simulator generator (`generate`), the torch dataset of clip windows (`dataset`), and episodes of any
Gymnasium env recorded into streaming shards (`record.record`, `shards`). See docs/sim.md and
docs/your_own_world.md."""

from .layout import Clip, ClipError, ClipMeta, class_folder, find_clips, read_clip, write_clip

__all__ = [
    "Clip",
    "ClipError",
    "ClipMeta",
    "class_folder",
    "find_clips",
    "read_clip",
    "write_clip",
    "SekaiClipDataset",
    "collate_windows",
    "generate_dataset",
    "ShardWriter",
    "ShardReader",
    "ShardDataset",
    "ShardError",
    "read_index",
    "split_episodes",
    "make_action_space",
]

_SHARDS = (
    "ShardWriter",
    "ShardReader",
    "ShardDataset",
    "ShardError",
    "read_index",
    "split_episodes",
    "make_action_space",
)


def __getattr__(name):  # torch, Gymnasium and the simulator load only when asked for
    if name in ("SekaiClipDataset", "collate_windows"):
        from . import dataset

        return getattr(dataset, name)
    if name == "generate_dataset":
        from .generate import generate_dataset

        return generate_dataset
    if name in _SHARDS:
        from . import shards

        return getattr(shards, name)
    raise AttributeError(f"module 'yume_env.data' has no attribute {name!r}")
