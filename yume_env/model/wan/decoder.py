"""The Wan2.2 VAE decoder as a streaming module, under Wan's own parameter names.

Why our own module next to diffusers' `AutoencoderKLWan` (which `vae.py` still uses to encode and
as the reference in the tests): the decoder is the hot path (one call per generated chunk), it
must carry its causal state between chunks as plain tensors the pipeline can batch, split and
save, and it must run where diffusers is not installed (the GPU benchmark machine). It reads the
decoder part of `Wan2.2_VAE.pth` as is (`conv2.*`, `decoder.*`) and computes what Wan's
`vae2_2.py` computes; `tests/test_wan_decoder.py` checks it against diffusers on random weights.

Causal state: every temporal conv (kernel 3 in time) needs the two input frames before the chunk.
The state is a dict `{module name: tensor (B, C, <=2, h, w)}`; a temporal upsampler that has seen
only the very first latent frame (which Wan decodes to a single frame) holds an empty (B, 0) marker.
Decoding latents in any split, with the state carried, equals decoding them at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

State = dict[str, torch.Tensor]


class _Ctx:
    """Per call: the state read (previous chunk) and written (for the next chunk)."""

    def __init__(self, state: State | None, first: bool):
        self.old = state or {}
        self.new: State = {}
        self.first = first


class CausalConv3d(nn.Conv3d):
    """3-D conv padded only on the past side in time; the past comes from the stream state."""

    def __init__(self, cin: int, cout: int, kernel, padding=0):
        super().__init__(cin, cout, kernel, padding=0)
        p = (padding,) * 3 if isinstance(padding, int) else tuple(padding)
        self.time_pad = 2 * p[0]
        self.space_pad = (p[2], p[2], p[1], p[1])
        self.key = ""  # set by the decoder: this conv's name in the state

    def forward(self, x: torch.Tensor, ctx: _Ctx | None = None) -> torch.Tensor:
        pad_t = self.time_pad
        if pad_t and ctx is not None:
            past = ctx.old.get(self.key)
            ctx.new[self.key] = _last_two(past, x)
            if past is not None and past.ndim == 5:
                x = torch.cat([past.to(x.dtype), x], 2)
                pad_t -= past.shape[2]
        if pad_t or any(self.space_pad):
            x = F.pad(x, (*self.space_pad, pad_t, 0))
        return super().forward(x)


def _last_two(past: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """The two input frames before the next chunk (fewer only at a stream's very start)."""
    if past is None or past.ndim != 5 or x.shape[2] >= 2:
        return x[:, :, -2:].clone()
    return torch.cat([past[:, :, -1:].to(x.dtype), x], 2)


class RMSNorm(nn.Module):
    """Wan's RMS_norm: L2-normalise over channels (dim 1), times sqrt(C) and a per-channel gamma."""

    def __init__(self, dim: int, images: bool = False):
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim, *((1, 1) if images else (1, 1, 1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x.float(), dim=1).to(x.dtype) * (self.scale * self.gamma)


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        # Wan's nn.Sequential indices: 0 norm, 1 SiLU, 2 conv, 3 norm, 4 SiLU, 5 dropout, 6 conv.
        self.residual = nn.Sequential(
            RMSNorm(cin),
            nn.SiLU(),
            CausalConv3d(cin, cout, 3, padding=1),
            RMSNorm(cout),
            nn.SiLU(),
            nn.Dropout(0.0),
            CausalConv3d(cout, cout, 3, padding=1),
        )
        self.shortcut = CausalConv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, ctx: _Ctx) -> torch.Tensor:
        r = self.residual
        h = r[2](F.silu(r[0](x)), ctx)
        h = r[6](F.silu(r[3](h)), ctx)
        return h + self.shortcut(x)


class AttentionBlock(nn.Module):
    """Single-head self-attention over the pixels of each frame."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = RMSNorm(dim, images=True)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, ctx: _Ctx | None = None) -> torch.Tensor:
        b, c, t, h, w = x.shape
        y = self.norm(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))
        q, k, v = self.to_qkv(y).reshape(b * t, 1, c * 3, h * w).permute(0, 1, 3, 2).chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(q.contiguous(), k.contiguous(), v.contiguous())
        y = self.proj(y.squeeze(1).permute(0, 2, 1).reshape(b * t, c, h, w))
        return x + y.view(b, t, c, h, w).permute(0, 2, 1, 3, 4)


class Resample(nn.Module):
    """2x spatial upsample (nearest, then 3x3 conv), optionally 2x temporal (causal time conv)."""

    def __init__(self, dim: int, temporal: bool):
        super().__init__()
        self.resample = nn.Sequential(
            nn.Upsample(scale_factor=(2.0, 2.0), mode="nearest-exact"), nn.Conv2d(dim, dim, 3, padding=1)
        )
        self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0)) if temporal else None

    def forward(self, x: torch.Tensor, ctx: _Ctx) -> torch.Tensor:
        b, c, t, h, w = x.shape
        if self.time_conv is not None:
            key = self.time_conv.key
            past = ctx.old.get(key)
            if past is None:  # the very first latent frame: decoded to one frame, not doubled
                ctx.new[key] = x.new_zeros(b, 0)
            else:
                hist = torch.zeros_like(x[:, :, :1]) if past.ndim != 5 else past.to(x.dtype)
                ctx.new[key] = torch.cat([hist, x], 2)[:, :, -2:].clone()
                y = self.time_conv._conv_forward(
                    F.pad(torch.cat([past.to(x.dtype), x], 2), (0, 0, 0, 0, 2 - past.shape[2], 0))
                    if past.ndim == 5
                    else F.pad(x, (0, 0, 0, 0, 2, 0)),
                    self.time_conv.weight,
                    self.time_conv.bias,
                )
                x = torch.stack((y[:, :c], y[:, c:]), 3).reshape(b, c, t * 2, h, w)
                t *= 2
        y = self.resample(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))
        return y.view(b, t, c, y.shape[-2], y.shape[-1]).permute(0, 2, 1, 3, 4)


def _dup_up(x: torch.Tensor, cout: int, ft: int, fs: int, first: bool) -> torch.Tensor:
    """Wan2.2's parameter-free DupUp3D shortcut: channels spread over time and space."""
    b, cin, t, h, w = x.shape
    x = x.repeat_interleave(cout * ft * fs * fs // cin, dim=1)
    x = x.view(b, cout, ft, fs, fs, t, h, w).permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, cout, t * ft, h * fs, w * fs)
    return x[:, :, ft - 1 :] if first else x


class UpStage(nn.Module):
    """`num_res_blocks + 1` residual blocks, then (except the last stage) an upsampler, plus the shortcut."""

    def __init__(self, cin: int, cout: int, num_res_blocks: int, temporal: bool, up: bool):
        super().__init__()
        blocks: list[nn.Module] = [ResidualBlock(cin if i == 0 else cout, cout) for i in range(num_res_blocks + 1)]
        if up:
            blocks.append(Resample(cout, temporal))
        self.upsamples = nn.Sequential(*blocks)
        self.cin, self.cout, self.up, self.ft = cin, cout, up, 2 if temporal else 1

    def forward(self, x: torch.Tensor, ctx: _Ctx) -> torch.Tensor:
        skip = x
        for layer in self.upsamples:
            x = layer(x, ctx)
        if self.up:
            x = x + _dup_up(skip, self.cout, self.ft, 2, ctx.first)
        return x


class Decoder3d(nn.Module):
    def __init__(
        self,
        dim: int = 256,
        z_dim: int = 48,
        dim_mult=(1, 2, 4, 4),
        num_res_blocks: int = 2,
        temporal_upsample=(True, True, False),
        out_channels: int = 12,
    ):
        super().__init__()
        dims = [dim * u for u in [dim_mult[-1]] + list(dim_mult[::-1])]
        self.conv1 = CausalConv3d(z_dim, dims[0], 3, padding=1)
        self.middle = nn.Sequential(
            ResidualBlock(dims[0], dims[0]), AttentionBlock(dims[0]), ResidualBlock(dims[0], dims[0])
        )
        n = len(dim_mult)
        self.upsamples = nn.Sequential(
            *[
                UpStage(cin, cout, num_res_blocks, temporal_upsample[i] if i < n - 1 else False, i < n - 1)
                for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:]))
            ]
        )
        self.head = nn.Sequential(RMSNorm(dims[-1]), nn.SiLU(), CausalConv3d(dims[-1], out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, ctx: _Ctx) -> torch.Tensor:
        x = self.conv1(x, ctx)
        for layer in self.middle:
            x = layer(x, ctx)
        for stage in self.upsamples:
            x = stage(x, ctx)
        return self.head[2](F.silu(self.head[0](x)), ctx)


class WanStreamDecoder(nn.Module):
    """`conv2` (post-quant 1x1x1) + `decoder` of the Wan2.2 VAE; state dict = those keys of Wan2.2_VAE.pth."""

    def __init__(
        self,
        dim: int = 256,
        z_dim: int = 48,
        dim_mult=(1, 2, 4, 4),
        num_res_blocks: int = 2,
        temporal_upsample=(True, True, False),
        out_channels: int = 12,
        patch_size: int = 2,
        frames_per_call: int = 8,
    ):
        super().__init__()
        self.z_dim, self.patch_size, self.frames_per_call = z_dim, patch_size, int(frames_per_call)
        self.conv2 = CausalConv3d(z_dim, z_dim, 1)
        self.decoder = Decoder3d(dim, z_dim, dim_mult, num_res_blocks, temporal_upsample, out_channels)
        for name, m in self.named_modules():
            if isinstance(m, CausalConv3d):
                m.key = name

    def conv_layout_(self, channels_last: bool) -> "WanStreamDecoder":
        """Stores the 3-D conv weights channels-last (NDHWC) or contiguous; activations follow the weights."""
        fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                m.weight.data = m.weight.data.contiguous(memory_format=fmt)
        return self

    @torch.no_grad()
    def forward(self, z: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Unnormalised latents (B, z_dim, n, h, w) -> (pixels (B, 3, T, 16h, 16w) in [-1, 1], new state).

        T = 1 + 4 (n - 1) when `state` is None (a stream's start), else 4 n.
        """
        x = self.conv2(z.to(self.conv2.weight.dtype))
        pieces = []
        if state is None:
            pieces.append((x[:, :, :1], True))
            x = x[:, :, 1:]
        step = max(1, self.frames_per_call)
        pieces += [(x[:, :, i : i + step], False) for i in range(0, x.shape[2], step)]
        outs = []
        for piece, first in pieces:
            ctx = _Ctx(state, first)
            outs.append(self.decoder(piece, ctx))
            state = {**(state or {}), **ctx.new}
        out = torch.cat(outs, 2) if len(outs) > 1 else outs[0]
        return unpatchify(out, self.patch_size).clamp_(-1.0, 1.0), state or {}


def unpatchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, 3 p p, T, h, w) -> (B, 3, T, h p, w p), channel order (c, r, q) as Wan's `rearrange`."""
    if p == 1:
        return x
    b, cpp, t, h, w = x.shape
    c = cpp // (p * p)
    x = x.view(b, c, p, p, t, h, w).permute(0, 1, 4, 5, 3, 6, 2)
    return x.reshape(b, c, t, h * p, w * p)
