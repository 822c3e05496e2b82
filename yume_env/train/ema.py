"""Exponential moving average of a model's weights (the weights we ship).

The shadow copy lives beside the parameters (same device, same sharding: under FSDP2 each rank
averages only its own shard, because `lerp_` works on DTensors shard by shard). The decay warms
up as min(decay, (1 + n) / (10 + n)) so early, poor weights are forgotten quickly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class EMA:
    """Shadow weights of `model`'s floating-point parameters and buffers, keyed by name."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.updates = 0
        self.shadow: dict[str, torch.Tensor] = {name: t.detach().clone().float() for name, t in _tracked(model)}

    def current_decay(self) -> float:
        n = self.updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        pairs = [(self.shadow[name], t.detach().float()) for name, t in _tracked(model)]
        plain = [(s, t) for s, t in pairs if type(s) is torch.Tensor and type(t) is torch.Tensor]
        if plain:  # one fused multi-tensor kernel instead of one launch per parameter
            torch._foreach_lerp_([s for s, _ in plain], [t for _, t in plain], 1.0 - d)
        for s, t in pairs:
            if not (type(s) is torch.Tensor and type(t) is torch.Tensor):  # e.g. FSDP2 DTensors
                s.lerp_(t, 1.0 - d)
        self.updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Writes the averaged weights into `model` (same structure)."""
        for name, t in _tracked(model):
            t.copy_(self.shadow[name].to(t.dtype))

    def state_dict(self) -> dict[str, Any]:
        """Full (unsharded) CPU tensors, so a checkpoint loads under any parallel layout."""
        return {"decay": self.decay, "updates": self.updates, "shadow": {k: _full(v) for k, v in self.shadow.items()}}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = sorted(set(self.shadow) - set(state["shadow"]))
        unexpected = sorted(set(state["shadow"]) - set(self.shadow))
        if missing or unexpected:
            raise KeyError(f"EMA state does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self.updates = int(state["updates"])
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(_like(value, self.shadow[name]))


def _tracked(model: nn.Module):
    for name, p in model.named_parameters():
        yield name, p
    for name, b in model.named_buffers():
        if b.is_floating_point():
            yield name, b


def _full(t: torch.Tensor) -> torch.Tensor:
    full = t.full_tensor() if hasattr(t, "full_tensor") else t
    return full.detach().cpu()


def _like(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`value` (full tensor) laid out like `target` (plain tensor or DTensor shard)."""
    if hasattr(target, "device_mesh"):
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(value.to(target.device_mesh.device_type), target.device_mesh, target.placements)
    return value.to(target.device)
