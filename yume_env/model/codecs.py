"""`build_vae`: the frame codec a world's config names (`config.vae["type"]`).

"pixel": frames as they are (`vae_pixel.PixelCodec`, no weights); "tiny": a small learned VAE
(`vae_tiny.TinyVAE`); "wan2.2": the published Yume-5B VAE (opened with the Yume-5B folder).
"""

from __future__ import annotations

from yume_env.model.vae import VideoVAE
from yume_env.model.vae_pixel import PixelCodec
from yume_env.model.vae_tiny import TinyVAE


def build_vae(vae_config: dict, latent_channels: int) -> VideoVAE:
    """A randomly initialised VAE of the config's type (weights come from `vae.safetensors`).

    The Wan2.2 VAE comes only with its published weights: `WorldModel.from_pretrained(<Yume-5B folder>)`.
    """
    kind = vae_config.get("type")
    if kind == "tiny":
        return TinyVAE.from_config(vae_config, latent_channels)
    if kind == "pixel":
        return PixelCodec.from_config(vae_config, latent_channels)
    if kind == "wan2.2":
        raise ValueError(
            "the wan2.2 VAE is built from its published weights only: open the Yume-5B folder with "
            "WorldModel.from_pretrained(path) (it reads Wan2.2_VAE.pth)"
        )
    raise ValueError(f"unknown VAE type {kind!r} in config.vae; expected 'pixel', 'tiny' or 'wan2.2'")
