"""One seed for a whole run: Python's `random`, numpy's global generator and torch (CPU and CUDA).

What is promised: a stage that calls `seed_everything(seed)` before it builds its model, and trains
with `TrainerConfig(seed=seed)` (the trainer calls `seed_everything(config.seed)` itself when a
run starts at step 0; a resumed run restores the RNG states saved in its checkpoint instead),
gives bitwise-identical losses and weights when run again on the same machine and device, with
the same torch thread count and library versions. A run killed and resumed gives the same
losses as one that was not.

Not promised: equality between CPU and GPU, between thread counts or library versions, or on
CUDA kernels that accumulate with atomics (`torch.use_deterministic_algorithms(True)` and
`CUBLAS_WORKSPACE_CONFIG` are left to the caller, as they slow training down). Generators that
a module makes for itself (`torch.Generator().manual_seed(...)`) are that module's business.
"""

from __future__ import annotations

import random

import numpy as np
import torch

MAX_SEED = 2**32 - 1  # numpy's legacy global generator takes seeds in [0, 2**32)


def seed_everything(seed: int) -> None:
    """Seeds Python's `random`, numpy's global generator and torch's CPU and CUDA generators."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, {MAX_SEED}], got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # every CUDA device too
