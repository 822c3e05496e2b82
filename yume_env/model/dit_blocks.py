"""The Wan2.2 DiT's parts, in the order data flows: norms, timestep embedding, self-attention
(qk RMSNorm + 3-axis RoPE), cross-attention to text, the block with adaLN modulation, the head.

Parameter names match Wan's (and so the published Yume-5B files). The residual stream is kept in
float32 and every Linear sees its own weight dtype, like Wan under bf16 autocast, so the weights may
be bf16. Modulation is *piecewise constant*: a sequence is split into pieces (history, current
chunk) that share a timestep, so the 6 modulation vectors are computed per piece, never per token.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from yume_env.model.rope import apply_rope
from yume_env.model.tscm_memory import MemoryRead


def sinusoidal_embedding(dim: int, t: torch.Tensor) -> torch.Tensor:
    """Wan's timestep embedding: [cos, sin] of t * 10000^(-i/half), computed in float64."""
    half = dim // 2
    t = t.to(torch.float64)
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device).div(half))
    ang = torch.outer(t, freqs)
    return torch.cat([ang.cos(), ang.sin()], dim=1).float()


def linear_f32(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """A Linear computed in float32 whatever its weight dtype (Wan runs its timestep embedding,
    modulation and head under float32 autocast, so bf16 weights keep full-precision math)."""
    bias = None if layer.bias is None else layer.bias.float()
    return F.linear(x.float(), layer.weight.float(), bias)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32:  # one fused op
            return F.rms_norm(x, x.shape[-1:], self.weight, self.eps)
        return F.rms_norm(x.float(), x.shape[-1:], eps=self.eps).type_as(x) * self.weight


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32, returning `out_dtype` (default: the input's)."""

    def __init__(self, dim: int, eps: float = 1e-6, elementwise_affine: bool = False):
        super().__init__(dim, eps=eps, elementwise_affine=elementwise_affine)

    def forward(self, x: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        out = F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps)
        return out if out_dtype in (None, torch.float32) and x.dtype == torch.float32 else out.to(out_dtype or x.dtype)


def per_piece(x: torch.Tensor, pieces: tuple[int, ...], fn) -> torch.Tensor:
    """Apply fn(part, i) to each piece of x along the sequence (dim 1) and re-join."""
    if len(pieces) == 1:
        return fn(x, 0)
    return torch.cat([fn(p, i) for i, p in enumerate(x.split(pieces, dim=1))], dim=1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, pieces: tuple[int, ...]) -> torch.Tensor:
    """x * (1 + scale) + shift with shift/scale (B, P, dim) constant within each of the P pieces."""
    return per_piece(x, pieces, lambda p, i: torch.addcmul(shift[:, i : i + 1], p, 1 + scale[:, i : i + 1]))


def gate(y: torch.Tensor, g: torch.Tensor, pieces: tuple[int, ...]) -> torch.Tensor:
    return per_piece(y, pieces, lambda p, i: p * g[:, i : i + 1])


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)  # (B, S, D) -> (B, H, S, d)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qk_norm: bool = True, eps: float = 1e-6):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.norm_k = RMSNorm(dim, eps) if qk_norm else nn.Identity()

    def forward(
        self,
        x: torch.Tensor,
        freqs: torch.Tensor,
        kv_prefix: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, S, dim) in weight dtype; freqs (B, S, d/2) complex RoPE rotations. kv_prefix: cached keys/values
        (B, H, S0, d), already rotated, that the queries also see (before x's own). mask: bool,
        broadcastable to (B, H, S, S0 + S), True = may attend. Returns (output, (k, v) of x)."""
        q = apply_rope(_heads(self.norm_q(self.q(x)), self.num_heads), freqs)
        k, v = self.project_kv(x, freqs)
        kk, vv = (k, v) if kv_prefix is None else (torch.cat([kv_prefix[0], k], 2), torch.cat([kv_prefix[1], v], 2))
        out = F.scaled_dot_product_attention(q, kk, vv, attn_mask=mask)
        return self.o(out.transpose(1, 2).flatten(2)), (k, v)

    def project_kv(self, x: torch.Tensor, freqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotated keys and values (B, H, S, d) of x (B, S, dim)."""
        k = apply_rope(_heads(self.norm_k(self.k(x)), self.num_heads), freqs)
        return k, _heads(self.v(x), self.num_heads)


class CrossAttention(SelfAttention):
    def context_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys/values (B, H, L, d) of the embedded text (B, L, dim): fixed for a whole chunk."""
        return _heads(self.norm_k(self.k(context)), self.num_heads), _heads(self.v(context), self.num_heads)

    def forward(self, x: torch.Tensor, context_kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        """x (B, S, dim) in weight dtype; no RoPE, no mask (like Wan)."""
        q = _heads(self.norm_q(self.q(x)), self.num_heads)
        out = F.scaled_dot_product_attention(q, *context_kv)
        return self.o(out.transpose(1, 2).flatten(2))


class WanBlock(nn.Module):
    """Wan attention block (+ the TSCM channel-stream read when `memory` is given)."""

    def __init__(
        self,
        dim: int,
        ffn_dim: int,
        num_heads: int,
        qk_norm: bool = True,
        cross_attn_norm: bool = True,
        eps: float = 1e-6,
        memory: MemoryRead | None = None,
    ):
        super().__init__()
        self.norm1 = LayerNorm(dim, eps)
        self.self_attn = SelfAttention(dim, num_heads, qk_norm, eps)
        self.norm3 = LayerNorm(dim, eps, elementwise_affine=True) if cross_attn_norm else None
        self.cross_attn = CrossAttention(dim, num_heads, qk_norm, eps)
        self.norm2 = LayerNorm(dim, eps)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(ffn_dim, dim))
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)
        self.memory = memory

    def forward(
        self,
        x: torch.Tensor,
        mod: torch.Tensor,
        pieces: tuple[int, ...],
        freqs: torch.Tensor,
        context_kv: tuple[torch.Tensor, torch.Tensor],
        kv_prefix: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
        memory: tuple[torch.Tensor, torch.Tensor] | None = None,
        memory_start: int = 0,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, S, dim) float32 residual stream; mod (B, P, 6, dim) float32 time projection per
        piece; freqs: RoPE rotations; context_kv: `cross_attn.context_kv(text)`; memory: this block's (kv, k_sum) read by tokens from `memory_start` on.
        Returns the new x and this block's self-attention (k, v) of x."""
        wd = self.ffn[0].weight.dtype
        e = (self.modulation.float().unsqueeze(0) + mod).unbind(2)  # 6 x (B, P, dim)
        h = modulate(self.norm1(x), e[0], e[1], pieces)
        y, kv = self.self_attn(h.to(wd), freqs, kv_prefix, mask)
        x = x + gate(y.float(), e[2], pieces)
        if memory is not None and self.memory is not None:
            if memory_start == 0:
                x = x + self.memory(x, *memory)
            else:
                cur = x[:, memory_start:]
                x = torch.cat([x[:, :memory_start], cur + self.memory(cur, *memory)], dim=1)
        xn = self.norm3(x, wd) if self.norm3 is not None else x.to(wd)
        x = x + self.cross_attn(xn, context_kv).float()
        h = modulate(self.norm2(x), e[3], e[4], pieces)
        x = x + gate(self.ffn(h.to(wd)).float(), e[5], pieces)
        return x, kv

    def history_kv(self, x: torch.Tensor, mod: torch.Tensor, freqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Only this block's self-attention keys/values of x (B, S, dim), one piece: what the last
        block contributes to a causal history cache (the rest of its output is never read)."""
        e = self.modulation.float().unsqueeze(0) + mod
        h = modulate(self.norm1(x), e[:, :, 0], e[:, :, 1], (x.shape[1],))
        return self.self_attn.project_kv(h.to(self.ffn[0].weight.dtype), freqs)


class Head(nn.Module):
    def __init__(self, dim: int, out_dim: int, patch_size: tuple[int, int, int], eps: float = 1e-6):
        super().__init__()
        self.norm = LayerNorm(dim, eps)
        self.head = nn.Linear(dim, math.prod(patch_size) * out_dim)
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """x (B, S, dim) float32, e (B, dim) float32 time embedding of the chunk -> (B, S, out)."""
        shift, scale = (self.modulation.float() + e.unsqueeze(1)).unbind(1)  # (B, dim) each
        h = torch.addcmul(shift.unsqueeze(1), self.norm(x), 1 + scale.unsqueeze(1))
        return linear_f32(self.head, h)
