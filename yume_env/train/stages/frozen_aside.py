"""Base of the stage modules that train one DiT beside frozen helpers (a teacher, a VAE)."""

from __future__ import annotations

from torch import nn


class DiTWithFrozen(nn.Module):
    """Trains `self.dit` (and, when given, a `critic` trained beside it with its own learning-rate
    scale); the frozen helpers are held outside the module tree, so DDP, EMA and checkpoints see
    only the trained networks, while `.to(device)` moves the helpers with them."""

    def __init__(self, dit: nn.Module, critic: nn.Module | None = None, critic_lr_scale: float = 1.0,
                 dit_lr_scales: dict[str, float] | None = None, **frozen: nn.Module):
        super().__init__()
        self.dit = dit  # named like FlowMatchingModule's, so `pretrain.dit_state` reads every stage
        self.critic = critic  # None registers nothing: checkpoints without a critic stay as they were
        self.critic_lr_scale = float(critic_lr_scale)
        # DiT weights under these name prefixes learn at a scaled rate (a new part, e.g. the pose
        # embedding, that starts at zero inside a trained network)
        self.dit_lr_scales = {k: float(v) for k, v in (dit_lr_scales or {}).items() if float(v) != 1.0}
        self._frozen = {name: m.eval().requires_grad_(False) for name, m in frozen.items()}  # a dict: not registered

    def frozen(self, name: str) -> nn.Module:
        return self._frozen[name]

    def param_groups(self) -> list[dict]:
        """The optimizer's groups: the DiT's trainable weights (those under `dit_lr_scales` prefixes
        in groups of their own, lr scaled), then the critic's (its lr scaled)."""
        named = [(n, p) for n, p in self.dit.named_parameters() if p.requires_grad]
        scaled = {prefix: [p for n, p in named if n.startswith(prefix)] for prefix in self.dit_lr_scales}
        taken = {id(p) for ps in scaled.values() for p in ps}
        groups = [{"params": [p for _, p in named if id(p) not in taken]}]
        groups += [{"params": ps, "lr_scale": self.dit_lr_scales[prefix]} for prefix, ps in scaled.items() if ps]
        if self.critic is not None:
            groups.append({"params": list(self.critic.parameters()), "lr_scale": self.critic_lr_scale})
        return groups

    def _apply(self, fn, recurse=True):
        for name, module in self._frozen.items():
            self._frozen[name] = module._apply(fn)
        return super()._apply(fn, recurse)
