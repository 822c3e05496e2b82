"""FP8 (e4m3) matmuls for the DiT blocks' big Linears: an approximate speed lever for Hopper GPUs.

`quantize_blocks_fp8_(dit)` replaces each block's self-attention, cross-attention and FFN Linears
by `FP8Linear`: the weight is stored in float8_e4m3fn with one scale per output row, activations
are quantised per row on the fly, and `torch._scaled_mm` multiplies with float32 accumulation
and a bf16 result. Outputs differ from bf16 by about 1-3% relative (rounding of 3-bit mantissas),
so this changes the published model's numbers: measured and reported as approximate, off by default.
The channel-stream read, embeddings, modulation and head stay in their own precision.
"""

from __future__ import annotations

import torch
from torch import nn

E4M3_MAX = 448.0
_TARGETS = (
    "self_attn.q",
    "self_attn.k",
    "self_attn.v",
    "self_attn.o",
    "cross_attn.q",
    "cross_attn.k",
    "cross_attn.v",
    "cross_attn.o",
    "ffn.0",
    "ffn.2",
)


def _quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, k) -> (float8 values, float32 scale per row) with x ~= values * scale."""
    scale = x.abs().amax(dim=-1, keepdim=True).float().clamp_min(1e-12) / E4M3_MAX
    return (x.float() / scale).to(torch.float8_e4m3fn), scale


class FP8Linear(nn.Module):
    """A Linear whose weight lives in float8 e4m3 (row-wise scales); bf16 result, returned in the input dtype."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        w, s = _quantize_rows(linear.weight.detach())
        self.register_buffer("weight_fp8", w)
        self.register_buffer("weight_scale", s.reshape(1, -1))  # (1, out)
        self.bias = (
            None if linear.bias is None else nn.Parameter(linear.bias.detach().to(torch.bfloat16), requires_grad=False)
        )
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # Callers read `.weight.dtype` to pick the activation dtype: an empty probe of the original dtype answers.
        self.register_buffer("weight", torch.empty(0, dtype=linear.weight.dtype, device=w.device), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        xq, xs = _quantize_rows(x2)
        if x2.is_cuda:
            out = torch._scaled_mm(
                xq, self.weight_fp8.t(), scale_a=xs, scale_b=self.weight_scale, bias=self.bias, out_dtype=torch.bfloat16
            )
        else:  # reference path (CPU tests): the same quantised operands, dequantised
            out = (xq.float() * xs) @ (self.weight_fp8.float() * self.weight_scale.t()).t()
            out = (out + self.bias.float() if self.bias is not None else out).to(torch.bfloat16)
        return out.reshape(*shape[:-1], self.out_features).to(x.dtype)


def quantize_blocks_fp8_(dit: nn.Module) -> int:
    """Swaps the blocks' big Linears for FP8Linear in place; returns how many were swapped."""
    n = 0
    for blk in dit.blocks:
        for path in _TARGETS:
            parent_path, _, name = path.rpartition(".")
            parent = blk.get_submodule(parent_path)
            child = getattr(parent, name) if not name.isdigit() else parent[int(name)]
            if isinstance(child, nn.Linear):
                q = FP8Linear(child)
                if name.isdigit():
                    parent[int(name)] = q
                else:
                    setattr(parent, name, q)
                n += 1
    return n
