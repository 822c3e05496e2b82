"""Opens the published Yume-5B folder unchanged: DiT, Wan2.2 VAE, umT5-XXL encoder and its tokenizer.

    Yume-5B-720P/
      config.json                          DiT sizes (Wan's diffusers-style config)
      diffusion_pytorch_model.safetensors  DiT (published names = ours)
      Wan2.2_VAE.pth                       VAE (Wan names -> diffusers AutoencoderKLWan)
      models_t5_umt5-xxl-enc-bf16.pth      umT5-XXL encoder (Wan names -> transformers UMT5EncoderModel)
      google/umt5-xxl/                     tokenizer (transformers AutoTokenizer)

The umT5 encoder (11 GB) is checked at load time but built only when a text is first encoded
(`text_encoder` is a factory): with the action captions cached on disk it may never load.
`WorldModel.from_pretrained(path)` calls `load_published_folder` when it sees
`diffusion_pytorch_model.safetensors` and `Wan2.2_VAE.pth`. `.pth` files are read with
`torch.load(weights_only=True, mmap=True)`: nothing is unpickled. A missing file or a file with
other names or shapes raises an error that names it.

Memory modes: `offload=False` puts everything on `device`; `offload=True` keeps the text encoder
on the CPU (it runs once per new event text) and streams the DiT blocks to the GPU one at a time
(`offload.BlockStreamer`), and the VAE decodes one latent frame per call, which keeps 544x960
generation under 16 GB of GPU memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from yume_env.model.checkpoint import require_file
from yume_env.model.config import WorldModelConfig
from yume_env.model.wan.dit_loader import DIT_CONFIG_FILE, DIT_WEIGHTS_FILE, config_from_published, load_published_dit

VAE_FILE = "Wan2.2_VAE.pth"
UMT5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
TOKENIZER_DIR = "google/umt5-xxl"
PUBLISHED_FILES = (DIT_CONFIG_FILE, DIT_WEIGHTS_FILE, VAE_FILE, UMT5_FILE)
_FIX = (
    "download the complete Yume-5B-720P folder (it holds " + ", ".join(PUBLISHED_FILES + (TOKENIZER_DIR + "/",)) + ")"
)


def is_published_folder(path: str | Path) -> bool:
    """True if `path` looks like the published Yume-5B folder (DiT safetensors + Wan2.2_VAE.pth)."""
    path = Path(path)
    return (path / DIT_WEIGHTS_FILE).is_file() and (path / VAE_FILE).is_file()


@dataclass
class PublishedModel:
    """The parts of a published Yume-5B folder, ready for the pipeline."""

    config: WorldModelConfig
    dit: torch.nn.Module  # yume_env.model.dit.WanDiT
    vae: torch.nn.Module  # yume_env.model.wan.vae.WanVAE (implements model.vae.VideoVAE)
    text_encoder: Any  # zero-argument callable -> yume_env.model.text.UMT5TextEncoder (loads on first use)
    offload: Any = None  # offload.BlockStreamer when offload=True


def check_folder(path: str | Path) -> Path:
    """The folder, after checking every published file is there (FileNotFoundError naming the first missing)."""
    path = Path(path)
    for name in PUBLISHED_FILES:
        require_file(path, name, _FIX)
    tok = path / TOKENIZER_DIR
    if not (
        (tok / "tokenizer_config.json").is_file()
        or (tok / "tokenizer.json").is_file()
        or (tok / "spiece.model").is_file()
    ):
        raise FileNotFoundError(f"{tok}/ with the umT5 tokenizer files is missing; {_FIX}")
    return path


def load_published_folder(
    path: str | Path,
    device: str | torch.device = "cuda",
    dtype: torch.dtype | None = torch.bfloat16,
    offload: bool = False,
) -> PublishedModel:
    """Loads a published Yume-5B folder (see the module docstring for files and memory modes)."""
    from yume_env.model.text import UMT5TextEncoder
    from yume_env.model.wan.umt5 import check_wan_umt5
    from yume_env.model.wan.vae import load_wan_vae

    path = check_folder(path)
    dtype = dtype or torch.bfloat16
    device = torch.device(device)
    config = config_from_published(path / DIT_CONFIG_FILE)
    streamer = None
    if offload:
        from yume_env.model.wan.offload import BlockStreamer

        dit = load_published_dit(path, device="cpu", dtype=dtype, config=config)
        streamer = BlockStreamer(dit, device)
    else:
        dit = load_published_dit(path, device=device, dtype=dtype, config=config)
    vae = load_wan_vae(path / VAE_FILE, device=device, dtype=dtype)
    if offload:
        vae.frames_per_call = 1
    check_wan_umt5(path / UMT5_FILE)  # names and shapes now (mmap, cheap); the 11 GB load waits for a new text
    text_device = "cpu" if offload else device

    def text_encoder() -> UMT5TextEncoder:
        return UMT5TextEncoder.from_folder(path, device=text_device, dtype=dtype, max_length=config.text_tokens)

    return PublishedModel(config=config, dit=dit, vae=vae, text_encoder=text_encoder, offload=streamer)
