"""Rows of a batch of worlds, grouped by host-side integer keys.

    for key, members in group_rows(n_history, kept):   # key: a tuple of ints, members: int64 rows
        index = row_index(members, B, device)           # None for the whole batch; no GPU sync
        part = take_rows(x, index)

Worlds of a batch differ in a few host-known integers (history length, frames kept); everything
batched is computed once per distinct key, never once per world.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from yume_env.host_to_device import to_device


def group_rows(*columns: Sequence[int] | np.ndarray) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """The distinct rows of the integer columns (each of length B), with the rows holding each,
    in order of first appearance; members ascending."""
    table = np.stack([np.asarray(c, dtype=np.int64).reshape(-1) for c in columns], 1)
    if table.shape[0] == 0:
        return []
    if (table == table[0]).all():  # one key (one world, or every world past the warm-up): no sort
        return [(tuple(int(v) for v in table[0]), np.arange(table.shape[0]))]
    keys, first, inverse = np.unique(table, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=len(keys)))[:-1]
    members = np.split(order, bounds)
    return [(tuple(int(v) for v in keys[j]), members[j]) for j in np.argsort(first)]


def row_index(members: np.ndarray, batch: int, device) -> torch.Tensor | None:
    """The rows as an index tensor on `device`, or None when they are the whole batch in order."""
    if len(members) == batch:
        return None
    return to_device(members, device, torch.long)


def take_rows(x: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """x's rows `index` (all of x when None, no copy)."""
    return x if index is None else x.index_select(0, index)
