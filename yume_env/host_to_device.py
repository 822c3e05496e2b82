"""`to_device`: host values on a device without a device sync.

A plain copy from pageable host memory to a GPU waits for every queued kernel, which serialises the
host's work and the GPU's; a world step sends its host values (actions, indices, text rows) through
this instead: pinned memory, copied asynchronously. On other devices it is a plain copy.
"""

from __future__ import annotations

import numpy as np
import torch


def to_device(values, device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Host values (a numpy array, list or CPU tensor) as a new tensor on `device`, without a device
    sync: to a GPU through pinned memory, asynchronously."""
    t = values.detach().clone() if torch.is_tensor(values) else torch.tensor(np.asarray(values))
    if dtype is not None:
        t = t.to(dtype)
    if torch.device(device).type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)
