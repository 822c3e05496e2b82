"""Rows of a batch of worlds: grouped by host-side integer keys, and host values moved to the device.

    for key, members in group_rows(n_history, kept):   # key: a tuple of ints, members: int64 rows
        ...
    index = to_device(members, device)                  # no GPU sync

Worlds of a batch differ in a few host-known integers (history length, frames kept); everything
batched is computed once per distinct key, never once per world. Every host value a world step
sends to the device (actions, indices, text rows) goes through `to_device`: a plain copy from
pageable host memory to a GPU waits for every queued kernel, which would serialise the host's
work and the GPU's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def group_rows(*columns: Sequence[int] | np.ndarray) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """The distinct rows of the integer columns (each of length B), with the rows holding each,
    in order of first appearance; members ascending."""
    table = np.stack([np.asarray(c, dtype=np.int64).reshape(-1) for c in columns], 1)
    if table.shape[0] == 0:
        return []
    keys, first, inverse = np.unique(table, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=len(keys)))[:-1]
    members = np.split(order, bounds)
    return [(tuple(int(v) for v in keys[j]), members[j]) for j in np.argsort(first)]


def to_device(values, device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Host values (a numpy array, list or CPU tensor) as a new tensor on `device`, without a device
    sync: to a GPU through pinned memory, asynchronously."""
    t = values.detach().clone() if torch.is_tensor(values) else torch.tensor(np.asarray(values))
    if dtype is not None:
        t = t.to(dtype)
    if torch.device(device).type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def row_index(members: np.ndarray, batch: int, device) -> torch.Tensor | None:
    """The rows as an index tensor on `device`, or None when they are the whole batch in order."""
    if len(members) == batch:
        return None
    return to_device(members, device, torch.long)


def take_rows(x: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """x's rows `index` (all of x when None, no copy)."""
    return x if index is None else x.index_select(0, index)
