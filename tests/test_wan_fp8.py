"""FP8 Linears: close to the bf16 Linear they replace, and swapped into every DiT block."""

from __future__ import annotations

import torch


def test_fp8_linear_stays_within_a_few_percent_of_the_linear():
    from yume_env.model.wan.fp8 import FP8Linear

    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 32)
    x = torch.randn(5, 7, 64)
    ref = lin(x)
    out = FP8Linear(lin)(x).float()
    assert out.shape == ref.shape
    assert ((out - ref).norm() / ref.norm()).item() < 0.05


def test_quantize_blocks_swaps_attention_and_ffn_linears_and_the_dit_still_runs():
    from yume_env.model.config import WorldModelConfig
    from yume_env.model.dit import build_dit
    from yume_env.model.wan.fp8 import FP8Linear, quantize_blocks_fp8_

    cfg = WorldModelConfig.preset("yume-5b").replace(
        dim=64, ffn_dim=128, num_layers=2, num_heads=4, text_dim=32, height=64, width=64
    )
    torch.manual_seed(0)
    dit = build_dit(cfg).eval()
    torch.nn.init.normal_(dit.head.head.weight, std=0.02)  # Wan initialises the head at zero
    args = (torch.randn(1, 48, 2, 4, 4), torch.tensor([500.0]), torch.randn(1, 3, 32))
    with torch.no_grad():
        ref = dit(*args)
        assert quantize_blocks_fp8_(dit) == 2 * 10
        out = dit(*args)
    assert isinstance(dit.blocks[0].ffn[0], FP8Linear)
    assert torch.isfinite(out).all() and ((out - ref).norm() / ref.norm()).item() < 0.1
