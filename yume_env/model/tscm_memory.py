"""TSCM channel stream: a linear-attention memory of the whole history.

Every history latent is patchified into a few channels (`memory_channels`, 96 for Yume-5B) as
memory tokens m. Each DiT block keeps a running state of its keys and values,

    S = sum_m phi(k(m))^T v(m)      (heads, dk, dv)        z = sum_m phi(k(m))      (heads, dk)

with phi = elu + 1, so adding a chunk costs O(new tokens) and the state's size does not depend on
the history length. Current tokens read it as linear attention, phi(q) S / (phi(q) . z), and the
read enters the block through a gate that starts at zero: a fresh (or published) model is
unchanged by the memory until fine-tuning opens the gate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from yume_env.host_to_device import to_device

_DEN_EPS = 1e-6


def phi(x: torch.Tensor) -> torch.Tensor:
    """Positive feature map of linear attention."""
    return F.elu(x) + 1.0


@dataclass
class MemoryState:
    """Running sums of one world's channel-stream memory, per DiT block (float32).

    kv: (num_layers, heads, dk, dv) = sum phi(k)^T v; k_sum: (num_layers, heads, dk) = sum phi(k);
    n_latents / n_tokens: how many history latents / memory tokens went in.
    """

    kv: torch.Tensor
    k_sum: torch.Tensor
    n_latents: int = 0
    n_tokens: int = 0

    def clone(self) -> "MemoryState":
        return MemoryState(self.kv.clone(), self.k_sum.clone(), self.n_latents, self.n_tokens)

    def to(self, device) -> "MemoryState":
        return MemoryState(self.kv.to(device), self.k_sum.to(device), self.n_latents, self.n_tokens)

    def to_dict(self) -> dict:
        """Plain tensors and ints (savable with torch.save(weights_only) or safetensors + json)."""
        return {"kv": self.kv, "k_sum": self.k_sum, "n_latents": self.n_latents, "n_tokens": self.n_tokens}

    @classmethod
    def from_dict(cls, d: dict) -> "MemoryState":
        missing = {"kv", "k_sum"} - set(d)
        if missing:
            raise ValueError(f"MemoryState dict lacks {sorted(missing)}; got keys {sorted(d)}")
        n_lat, n_tok = d.get("n_latents", 0), d.get("n_tokens", 0)
        return cls(d["kv"], d["k_sum"], int(n_lat), int(n_tok))

    @property
    def num_bytes(self) -> int:
        return self.kv.numel() * self.kv.element_size() + self.k_sum.numel() * self.k_sum.element_size()


@dataclass
class MemoryBatch:
    """The channel-stream sums of B worlds as batched tensors, in the layout the DiT reads:
    kv (num_layers, B, heads, dk, dv), k_sum (num_layers, B, heads, dk); n_latents / n_tokens per
    world. `batch[i]` is world i's `MemoryState` (views). Build with `MemoryBatch.empty` or
    `MemoryBatch.from_states`; `WanDiT.update_memories` adds a chunk to every world at once."""

    kv: torch.Tensor
    k_sum: torch.Tensor
    n_latents: list[int]
    n_tokens: list[int]

    @classmethod
    def empty(cls, config, batch: int, device=None) -> "MemoryBatch":
        """The sums of `batch` worlds with no history (zeros), sized by a `WorldModelConfig`."""
        L, H, d = config.num_layers, config.memory_heads, config.memory_head_dim
        kv = torch.zeros(L, batch, H, d, d, device=device)
        return cls(kv, torch.zeros(L, batch, H, d, device=device), [0] * batch, [0] * batch)

    @classmethod
    def from_states(cls, states: list[MemoryState | None], template: MemoryState) -> "MemoryBatch":
        """Per-world states (None: empty) as one batch; `template` gives the shapes of an empty one."""
        kv, k_sum = stack_memory(list(states) + [template])
        return cls(
            kv[:, :-1].clone(),
            k_sum[:, :-1].clone(),
            [0 if m is None else m.n_latents for m in states],
            [0 if m is None else m.n_tokens for m in states],
        )

    def __len__(self) -> int:
        return len(self.n_latents)

    def __getitem__(self, i: int) -> MemoryState:
        return MemoryState(self.kv[:, i], self.k_sum[:, i], self.n_latents[i], self.n_tokens[i])

    def rows(self, idx: list[int]) -> "MemoryBatch":
        """Worlds `idx` (copies)."""
        index = to_device(idx, self.kv.device, torch.long)
        return MemoryBatch(
            self.kv.index_select(1, index),
            self.k_sum.index_select(1, index),
            [self.n_latents[i] for i in idx],
            [self.n_tokens[i] for i in idx],
        )

    @staticmethod
    def cat(batches: list["MemoryBatch"]) -> "MemoryBatch":
        first = batches[0]
        return MemoryBatch(
            torch.cat([b.kv.to(first.kv) for b in batches], 1),
            torch.cat([b.k_sum.to(first.k_sum) for b in batches], 1),
            [n for b in batches for n in b.n_latents],
            [n for b in batches for n in b.n_tokens],
        )

    def set_rows(self, idx: list[int], other: "MemoryBatch") -> None:
        """Worlds `idx` replaced by `other`'s, in place."""
        index = to_device(idx, self.kv.device, torch.long)
        self.kv[:, index] = other.kv.to(self.kv)
        self.k_sum[:, index] = other.k_sum.to(self.k_sum)
        for j, i in enumerate(idx):
            self.n_latents[i], self.n_tokens[i] = other.n_latents[j], other.n_tokens[j]

    def clone(self) -> "MemoryBatch":
        return MemoryBatch(self.kv.clone(), self.k_sum.clone(), list(self.n_latents), list(self.n_tokens))

    def to(self, device) -> "MemoryBatch":
        """A copy on `device` (always a copy: `set_rows` writes in place)."""
        return MemoryBatch(
            self.kv.to(device, copy=True), self.k_sum.to(device, copy=True), list(self.n_latents), list(self.n_tokens)
        )


def stack_memory(
    memory: list[MemoryState | None] | None, template: MemoryState | None = None
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Batch per-world states into (kv (L, B, H, dk, dv), k_sum (L, B, H, dk)); None entries are
    empty memories (all zeros, which read as exactly zero). None if no world has memory."""
    if not memory or all(m is None for m in memory):
        return None
    ref = template or next(m for m in memory if m is not None)
    kv = [m.kv if m is not None else torch.zeros_like(ref.kv) for m in memory]
    ks = [m.k_sum if m is not None else torch.zeros_like(ref.k_sum) for m in memory]
    return torch.stack(kv, dim=1), torch.stack(ks, dim=1)


class MemoryRead(nn.Module):
    """One block's channel-stream branch: keys/values of memory tokens, gated read by the tokens."""

    def __init__(self, dim: int, memory_channels: int, heads: int, head_dim: int, eps: float = 1e-6):
        super().__init__()
        self.heads, self.head_dim, self.eps = heads, head_dim, eps
        inner = heads * head_dim
        self.q = nn.Linear(dim, inner)
        self.k = nn.Linear(memory_channels, inner)
        self.v = nn.Linear(memory_channels, inner)
        self.o = nn.Linear(inner, dim, bias=False)  # no bias: an empty memory reads as exactly 0
        self.gate = nn.Parameter(torch.zeros(dim))

    def summarize(self, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sums over memory tokens m (T, memory_channels): (heads, dk, dv) and (heads, dk), float32."""
        k = phi(self.k(m).float()).unflatten(-1, (self.heads, self.head_dim))  # (T, H, dk)
        v = self.v(m).float().unflatten(-1, (self.heads, self.head_dim))  # (T, H, dv)
        return torch.einsum("thk,thv->hkv", k, v), k.sum(0)

    def summarize_batch(self, m: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`summarize` for B worlds at once: m (B, T, memory_channels), mask (B, T) of the tokens
        that count -> (B, heads, dk, dv) and (B, heads, dk), float32 (masked tokens add nothing)."""
        w = mask.to(torch.float32)[:, :, None, None]
        k = phi(self.k(m).float()).unflatten(-1, (self.heads, self.head_dim)) * w  # (B, T, H, dk)
        v = self.v(m).float().unflatten(-1, (self.heads, self.head_dim))  # (B, T, H, dv)
        return torch.einsum("bthk,bthv->bhkv", k, v), k.sum(1)

    def forward(self, x: torch.Tensor, kv: torch.Tensor, k_sum: torch.Tensor) -> torch.Tensor:
        """Gated read for x (B, S, dim) float32 from states kv (B, H, dk, dv), k_sum (B, H, dk)."""
        dtype = self.q.weight.dtype
        h = F.layer_norm(x.float(), x.shape[-1:], eps=self.eps)
        q = phi(self.q(h.to(dtype)).float()).unflatten(-1, (self.heads, self.head_dim))  # (B, S, H, dk)
        num = torch.einsum("bshk,bhkv->bshv", q, kv)
        den = torch.einsum("bshk,bhk->bsh", q, k_sum).unsqueeze(-1) + _DEN_EPS
        read = (num / den).flatten(2)
        return self.o(read.to(dtype)).float() * self.gate.float()
