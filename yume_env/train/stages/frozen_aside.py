"""Base of the stage modules that train one DiT beside frozen helpers (a teacher, a VAE)."""

from __future__ import annotations

from torch import nn


class DiTWithFrozen(nn.Module):
    """Trains `self.dit`; the frozen helpers are held outside the module tree, so DDP, EMA and
    checkpoints see only the DiT, while `.to(device)` moves the helpers with it."""

    def __init__(self, dit: nn.Module, **frozen: nn.Module):
        super().__init__()
        self.dit = dit  # named like FlowMatchingModule's, so `pretrain.dit_state` reads every stage
        self._frozen = {name: m.eval().requires_grad_(False) for name, m in frozen.items()}  # a dict: not registered

    def frozen(self, name: str) -> nn.Module:
        return self._frozen[name]

    def _apply(self, fn, recurse=True):
        for name, module in self._frozen.items():
            self._frozen[name] = module._apply(fn)
        return super()._apply(fn, recurse)
