"""The Wan2.2 VAE (48 latent channels, 4x16x16 compression) on diffusers' `AutoencoderKLWan`, with streaming decode.

`load_wan_vae(path)` reads the published `Wan2.2_VAE.pth` (Wan names, `torch.load(weights_only=True,
mmap=True)`), renames it (`vae_keys`) and assigns it into an `AutoencoderKLWan` built on the meta
device (used to encode); the decoder's tensors are shared, under Wan's names, with our streaming
decoder (`decoder.WanStreamDecoder`, checked against diffusers' decode in the tests). `WanVAE`
adds what the world model needs on top:

- latents are normalised with the 48 published means/stds (`latent_stats`), as the DiT expects;
- `decode_chunk(latents, cache) -> (frames, cache)` keeps the decoder's causal feature cache
  between chunks, so each latent frame is decoded once and consecutive chunks join without seams:
  decoding chunks one after another gives exactly the frames of one decode of all latents.

Why chunks may hold several latent frames at once (diffusers and Wan call the decoder one latent
frame at a time): every decoder layer is either per frame (norms, 2-D convs, the mid attention,
the shortcuts) or a causal temporal conv that reads the previous two input frames, which the cache
holds. Only the very first latent frame is special (the temporal upsamplers do not double it), so
the first call decodes it alone and everything after goes through in pieces of
`frames_per_call` latent frames: same math, far fewer, larger kernels.

`diffusers` is optional (`pip install "yume-env[yume5b]"`); it is imported only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from yume_env.model.checkpoint import CheckpointError, check_state_dict, load_pth
from yume_env.model.vae import VideoVAE
from yume_env.model.wan.decoder import WanStreamDecoder
from yume_env.model.wan.latent_stats import WAN22_LATENTS_MEAN, WAN22_LATENTS_STD
from yume_env.model.wan.vae_keys import WAN22_VAE_CONFIG, convert_wan_vae_state_dict


def _autoencoder_cls():
    try:
        from diffusers import AutoencoderKLWan
    except ImportError as exc:
        raise ImportError(
            'the Wan2.2 VAE of Yume-5B needs diffusers (AutoencoderKLWan): pip install "yume-env[yume5b]"'
        ) from exc
    return AutoencoderKLWan


def build_autoencoder(config: Mapping[str, Any] | None = None, device: str | torch.device = "meta"):
    """An empty `AutoencoderKLWan` of `config` (default: the published Wan2.2 sizes)."""
    cls = _autoencoder_cls()
    with torch.device(device):
        return cls(**dict(WAN22_VAE_CONFIG if config is None else config))


def vae_config_from_state(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The diffusers config a Wan2.2-layout state dict implies (base widths read from the shapes).

    The layout (stages, blocks) is fixed; only widths vary, so scaled-down test files load too.
    """
    try:
        base = int(state["encoder.conv1.weight"].shape[0])
        dec_top = int(state["decoder.conv1.weight"].shape[0])
        z_dim = int(state["conv2.weight"].shape[0])
        in_ch = int(state["encoder.conv1.weight"].shape[1])
    except KeyError as exc:
        raise CheckpointError(f"not a Wan2.2 VAE state dict: it has no {exc.args[0]!r}") from exc
    mult = WAN22_VAE_CONFIG["dim_mult"]
    return {
        **WAN22_VAE_CONFIG,
        "base_dim": base,
        "decoder_base_dim": dec_top // mult[-1],
        "z_dim": z_dim,
        "in_channels": in_ch,
        "out_channels": in_ch,
    }


def load_wan_vae(
    path: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = torch.bfloat16,
    state: Mapping[str, torch.Tensor] | None = None,
) -> "WanVAE":
    """`Wan2.2_VAE.pth` (Wan names) -> `WanVAE`; CheckpointError naming the file on any mismatch."""
    path = Path(path)
    state = load_pth(path) if state is None else state
    try:
        config = vae_config_from_state(state)
    except CheckpointError as exc:
        raise CheckpointError(f"{path} is not the Wan2.2 VAE file: {exc}") from exc
    model = build_autoencoder(config, "meta")
    try:
        converted = convert_wan_vae_state_dict(state, config["num_res_blocks"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a Wan2.2 VAE file: {exc}") from exc
    check_state_dict(model.state_dict(), converted, path)
    placed = {k: v.to(device=device, dtype=dtype or v.dtype).contiguous() for k, v in state.items()}
    model.load_state_dict(convert_wan_vae_state_dict(placed, config["num_res_blocks"]), strict=True, assign=True)
    # The streaming decoder reads Wan's names and shares the very same tensors (no second copy).
    with torch.device("meta"):
        decoder = WanStreamDecoder(
            dim=config["decoder_base_dim"],
            z_dim=config["z_dim"],
            dim_mult=config["dim_mult"],
            num_res_blocks=config["num_res_blocks"],
            temporal_upsample=config["temperal_downsample"][::-1],
            out_channels=config["out_channels"],
            patch_size=config["patch_size"],
        )
    decoder.load_state_dict({k: v for k, v in placed.items() if k in decoder.state_dict()}, strict=True, assign=True)
    return WanVAE(model.eval().requires_grad_(False), decoder.eval().requires_grad_(False))


class WanVAE(VideoVAE):
    """Wan2.2 VAE with normalised latents and a streaming decoder.

    Pixels are (B, 3, T, H, W) in [-1, 1]; latents (B, 48, t, H/16, W/16), normalised. T = 1 + 4 (t - 1):
    the first latent frame stands for one pixel frame, every later one for four.
    """

    latent_channels = 48
    spatial_compression = 16
    temporal_compression = 4

    def __init__(self, autoencoder: torch.nn.Module, decoder: WanStreamDecoder):
        super().__init__()
        self.model = autoencoder  # diffusers AutoencoderKLWan: encode (and the reference decode)
        self.decoder = decoder  # streaming decode, same tensors as self.model.decoder
        z = int(autoencoder.config.z_dim)
        self.latent_channels = z
        dev = decoder.conv2.weight.device
        # Other z_dims only occur in scaled-down test files; they get the identity normalisation.
        mean = torch.tensor(WAN22_LATENTS_MEAN if z == 48 else [0.0] * z, device=dev).view(1, z, 1, 1, 1)
        std = torch.tensor(WAN22_LATENTS_STD if z == 48 else [1.0] * z, device=dev).view(1, z, 1, 1, 1)
        self.register_buffer("latents_mean", mean, persistent=False)
        self.register_buffer("latents_std", std, persistent=False)

    @property
    def dtype(self) -> torch.dtype:
        return self.model.post_quant_conv.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.model.post_quant_conv.weight.device

    # ------------------------------------------------------------------ encode
    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, 1 + 4k, H, W) in [-1, 1] -> normalised latents (B, 48, 1 + k, H/16, W/16) (posterior mean)."""
        if pixels.shape[2] % self.temporal_compression != 1:
            raise ValueError(f"the Wan2.2 VAE encodes 1 + 4k frames, got {pixels.shape[2]}")
        mu = self.model.encode(pixels.to(self.device, self.dtype)).latent_dist.mode()
        return (mu.float() - self.latents_mean.to(mu.device)) / self.latents_std.to(mu.device)

    # ------------------------------------------------------------------ decode
    @property
    def frames_per_call(self) -> int:
        """Latent frames per decoder call (the first frame of a stream always goes alone)."""
        return self.decoder.frames_per_call

    @frames_per_call.setter
    def frames_per_call(self, n: int) -> None:
        self.decoder.frames_per_call = int(n)

    @torch.no_grad()
    def decode_chunk(
        self, latents: torch.Tensor, cache: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Decodes the next latents of a stream: (B, 48, n, h, w) -> (pixels (B, 3, T, H, W) in [-1, 1], cache).

        T = 1 + 4 (n - 1) for the first chunk of a stream (cache None) and 4 n afterwards. The
        cache is a dict of tensors with the batch in dim 0; the one passed in is not modified,
        so branching a stream is reusing a cache.
        """
        dev = self.latents_mean.device
        z = latents.to(dev, torch.float32) * self.latents_std + self.latents_mean
        return self.decoder(z, cache)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """One-shot decode of a whole latent video (a fresh stream)."""
        return self.decode_chunk(latents, None)[0]
