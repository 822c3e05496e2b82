"""Base of the stage modules that train one DiT beside frozen helpers (a teacher, a VAE)."""

from __future__ import annotations

from torch import nn


class DiTWithFrozen(nn.Module):
    """Trains `self.dit` (and, when given, a `critic` trained beside it with its own learning-rate
    scale); the frozen helpers are held outside the module tree, so DDP, EMA and checkpoints see
    only the trained networks, while `.to(device)` moves the helpers with them."""

    def __init__(self, dit: nn.Module, critic: nn.Module | None = None, critic_lr_scale: float = 1.0,
                 **frozen: nn.Module):
        super().__init__()
        self.dit = dit  # named like FlowMatchingModule's, so `pretrain.dit_state` reads every stage
        self.critic = critic  # None registers nothing: checkpoints without a critic stay as they were
        self.critic_lr_scale = float(critic_lr_scale)
        self._frozen = {name: m.eval().requires_grad_(False) for name, m in frozen.items()}  # a dict: not registered

    def frozen(self, name: str) -> nn.Module:
        return self._frozen[name]

    def param_groups(self) -> list[dict]:
        """The optimizer's groups: the DiT's trainable weights, then the critic's (its lr scaled)."""
        groups = [{"params": [p for p in self.dit.parameters() if p.requires_grad]}]
        if self.critic is not None:
            groups.append({"params": list(self.critic.parameters()), "lr_scale": self.critic_lr_scale})
        return groups

    def _apply(self, fn, recurse=True):
        for name, module in self._frozen.items():
            self._frozen[name] = module._apply(fn)
        return super()._apply(fn, recurse)
