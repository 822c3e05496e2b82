"""Sekai-layout datasets: the clip layout (`layout`), the simulator generator (`generate`) and the
torch dataset of training windows (`dataset`). See docs/sim.md."""

from .layout import Clip, ClipError, ClipMeta, class_folder, find_clips, read_clip, write_clip

__all__ = ["Clip", "ClipError", "ClipMeta", "class_folder", "find_clips", "read_clip", "write_clip",
           "SekaiClipDataset", "collate_windows", "generate_dataset"]


def __getattr__(name):  # torch and the simulator load only when asked for
    if name in ("SekaiClipDataset", "collate_windows"):
        from . import dataset

        return getattr(dataset, name)
    if name == "generate_dataset":
        from .generate import generate_dataset

        return generate_dataset
    raise AttributeError(f"module 'yume_env.data' has no attribute {name!r}")
