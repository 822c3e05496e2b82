"""Wan2.2 VAE: the diffusers `AutoencoderKLWan` config and the map from Wan's parameter names to diffusers'.

`Wan2_2_VAE.pth` uses the names of Wan-Video/Wan2.2 `wan/modules/vae2_2.py`
(`encoder.downsamples.1.downsamples.0.residual.2.weight`); diffusers' `AutoencoderKLWan` with
`is_residual=True` holds the same tensors under other names
(`encoder.down_blocks.1.resnets.0.conv1.weight`). Shapes are identical, so conversion is a rename.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from yume_env.model.wan.latent_stats import WAN22_LATENTS_MEAN, WAN22_LATENTS_STD

# diffusers config of the Wan2.2 (TI2V-5B) VAE: 48 latent channels, encoder base 160, decoder
# base 256, 2x2 patchify (12 in/out channels), compression 4 (time) x 16 x 16 (space).
WAN22_VAE_CONFIG: dict[str, Any] = dict(
    base_dim=160,
    decoder_base_dim=256,
    z_dim=48,
    dim_mult=[1, 2, 4, 4],
    num_res_blocks=2,
    attn_scales=[],
    temperal_downsample=[False, True, True],
    dropout=0.0,
    latents_mean=list(WAN22_LATENTS_MEAN),
    latents_std=list(WAN22_LATENTS_STD),
    is_residual=True,
    in_channels=12,
    out_channels=12,
    patch_size=2,
    scale_factor_temporal=4,
    scale_factor_spatial=16,
)

# Inside one residual block: Wan's nn.Sequential indices -> diffusers' attribute names.
_RESBLOCK = {
    "residual.0.gamma": "norm1.gamma",
    "residual.2.weight": "conv1.weight",
    "residual.2.bias": "conv1.bias",
    "residual.3.gamma": "norm2.gamma",
    "residual.6.weight": "conv2.weight",
    "residual.6.bias": "conv2.bias",
    "shortcut.weight": "conv_shortcut.weight",
    "shortcut.bias": "conv_shortcut.bias",
}
# The middle stage: resblock, attention, resblock.
_ATTN = {
    "norm.gamma": "norm.gamma",
    "to_qkv.weight": "to_qkv.weight",
    "to_qkv.bias": "to_qkv.bias",
    "proj.weight": "proj.weight",
    "proj.bias": "proj.bias",
}
_RESAMPLE = {
    "resample.1.weight": "resample.1.weight",
    "resample.1.bias": "resample.1.bias",
    "time_conv.weight": "time_conv.weight",
    "time_conv.bias": "time_conv.bias",
}
_TOP = {
    "conv1.weight": "quant_conv.weight",
    "conv1.bias": "quant_conv.bias",
    "conv2.weight": "post_quant_conv.weight",
    "conv2.bias": "post_quant_conv.bias",
}


def _lookup(table: Mapping[str, str], rest: str, key: str) -> str:
    if rest not in table:
        raise KeyError(f"Wan2.2 VAE key {key!r} is not a known parameter name (unexpected part {rest!r})")
    return table[rest]


def wan_vae_key_to_diffusers(key: str, num_res_blocks: int = 2) -> str:
    """One Wan2.2 VAE parameter name -> the `AutoencoderKLWan` name; KeyError for unknown names."""
    if key in _TOP:
        return _TOP[key]
    m = re.fullmatch(r"(encoder|decoder)\.(.+)", key)
    if not m:
        raise KeyError(f"Wan2.2 VAE key {key!r} is not a known parameter name")
    part, rest = m.groups()
    if m2 := re.fullmatch(r"conv1\.(weight|bias)", rest):
        return f"{part}.conv_in.{m2.group(1)}"
    if m2 := re.fullmatch(r"head\.0\.gamma", rest):
        return f"{part}.norm_out.gamma"
    if m2 := re.fullmatch(r"head\.2\.(weight|bias)", rest):
        return f"{part}.conv_out.{m2.group(1)}"
    if m2 := re.fullmatch(r"middle\.([02])\.(.+)", rest):
        idx = int(m2.group(1)) // 2
        return f"{part}.mid_block.resnets.{idx}.{_lookup(_RESBLOCK, m2.group(2), key)}"
    if m2 := re.fullmatch(r"middle\.1\.(.+)", rest):
        return f"{part}.mid_block.attentions.0.{_lookup(_ATTN, m2.group(1), key)}"
    if part == "encoder" and (m2 := re.fullmatch(r"downsamples\.(\d+)\.downsamples\.(\d+)\.(.+)", rest)):
        stage, j, sub = int(m2.group(1)), int(m2.group(2)), m2.group(3)
        if j < num_res_blocks:
            return f"encoder.down_blocks.{stage}.resnets.{j}.{_lookup(_RESBLOCK, sub, key)}"
        if j == num_res_blocks:
            return f"encoder.down_blocks.{stage}.downsampler.{_lookup(_RESAMPLE, sub, key)}"
    if part == "decoder" and (m2 := re.fullmatch(r"upsamples\.(\d+)\.upsamples\.(\d+)\.(.+)", rest)):
        stage, j, sub = int(m2.group(1)), int(m2.group(2)), m2.group(3)
        if j <= num_res_blocks:
            return f"decoder.up_blocks.{stage}.resnets.{j}.{_lookup(_RESBLOCK, sub, key)}"
        if j == num_res_blocks + 1:
            return f"decoder.up_blocks.{stage}.upsampler.{_lookup(_RESAMPLE, sub, key)}"
    raise KeyError(f"Wan2.2 VAE key {key!r} is not a known parameter name")


def convert_wan_vae_state_dict(state: Mapping[str, Any], num_res_blocks: int = 2) -> dict[str, Any]:
    """Renames a whole Wan2.2 VAE state dict to diffusers names (values untouched, no copies).

    Raises KeyError for a name that is not a Wan2.2 VAE parameter and ValueError if two names
    would land on the same diffusers key.
    """
    out: dict[str, Any] = {}
    for key, value in state.items():
        new = wan_vae_key_to_diffusers(key, num_res_blocks)
        if new in out:
            raise ValueError(f"two Wan2.2 VAE keys map to {new!r} (second: {key!r})")
        out[new] = value
    return out
