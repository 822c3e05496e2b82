"""Scaled-down copies of the published Yume-5B files: same names, same layout, small widths, few layers.

The published folder is ~30 GB; tests (ours and the pipeline's) and the CPU smoke benchmark need
files with exactly its parameter names that fit in memory. `scale_layout` shrinks a layout (name ->
shape, as in `fixtures/checkpoint_layouts/*.json`) by mapping each published width to a small one
and keeping only the first blocks; `write_scaled_folder` writes a whole folder that
`load_published_folder` opens unchanged.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Mapping

import torch

# Published width -> scaled width, per file. Kernel sizes (1, 2, 3, 4, ...) and the fixed channel
# counts (48 latent, 12 patchified pixels, 96 = 2 x 48, 32 buckets, 256 freq) stay as published.
VAE_WIDTHS = {160: 16, 320: 32, 640: 64, 1920: 192, 1024: 64, 2048: 128, 3072: 192, 512: 32, 256: 16}
UMT5_WIDTHS = {256384: 384, 4096: 64, 10240: 96, 64: 4}
DIT_WIDTHS = {3072: 128, 18432: 768, 14336: 256, 4096: 64}
# Config overrides that build models of the scaled widths.
SCALED_DIT_CONFIG = dict(dim=128, ffn_dim=256, num_layers=2, num_heads=4, text_dim=64)
SCALED_VAE_CONFIG = dict(base_dim=16, decoder_base_dim=16)
SCALED_UMT5_CONFIG = dict(vocab_size=384, d_model=64, d_kv=16, d_ff=96, num_layers=2, num_heads=4)

_LAYER = re.compile(r"^blocks\.(\d+)\.")


def scale_layout(
    layout: Mapping[str, list[int]], widths: Mapping[int, int], num_blocks: int | None = None
) -> dict[str, tuple[int, ...]]:
    """Name -> scaled shape; `blocks.N.*` entries with N >= num_blocks are dropped."""
    out = {}
    for name, shape in layout.items():
        m = _LAYER.match(name)
        if m and num_blocks is not None and int(m.group(1)) >= num_blocks:
            continue
        out[name] = tuple(int(widths.get(int(d), d)) for d in shape)
    return out


def random_state(shapes: Mapping[str, tuple[int, ...]], seed: int = 0, dtype=torch.float32) -> dict[str, torch.Tensor]:
    """Random tensors of the given shapes (std 0.05: activations stay finite through deep stacks)."""
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.randn(s, generator=g) * 0.05).to(dtype) for k, s in shapes.items()}


def read_layout(path: str | Path) -> dict[str, list[int]]:
    """The `parameters` table of a checkpoint-layout JSON file."""
    return json.loads(Path(path).read_text())["parameters"]


def write_tiny_tokenizer(folder: str | Path, vocab_size: int = 384) -> Path:
    """A small word-level tokenizer (`tokenizer.json` + config) that `AutoTokenizer` opens offline,
    standing in for google/umt5-xxl in scaled folders (same special tokens: <pad>=0, </s>=1, <unk>=2)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    words = ["<pad>", "</s>", "<unk>"] + [f"w{i}" for i in range(vocab_size - 3)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "pad_token": "<pad>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "model_max_length": 512,
            }
        )
    )
    return folder


def write_scaled_folder(folder: str | Path, layouts: str | Path, seed: int = 0) -> Path:
    """A scaled-down Yume-5B folder with the published file names and parameter names.

    `layouts` is the folder of checkpoint-layout JSONs (`yume-5b-dit.json`, `wan2.2-vae.json`,
    `umt5-xxl-encoder-wan-format.json`). The DiT keeps 2 blocks at width 128, the VAE its full
    layout at 1/10 width, the umT5 encoder 2 blocks at width 64.
    """
    from safetensors.torch import save_file

    folder, layouts = Path(folder), Path(layouts)
    folder.mkdir(parents=True, exist_ok=True)
    dit = scale_layout(read_layout(layouts / "yume-5b-dit.json"), DIT_WIDTHS, SCALED_DIT_CONFIG["num_layers"])
    save_file(random_state(dit, seed, torch.bfloat16), str(folder / "diffusion_pytorch_model.safetensors"))
    config = {
        "_class_name": "WanModel",
        "_diffusers_version": "0.33.0",
        "model_type": "ti2v",
        "in_dim": 48,
        "out_dim": 48,
        "freq_dim": 256,
        "eps": 1e-6,
        "text_len": 512,
        **{k: v for k, v in SCALED_DIT_CONFIG.items()},
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    vae = scale_layout(read_layout(layouts / "wan2.2-vae.json"), VAE_WIDTHS)
    torch.save(random_state(vae, seed + 1), folder / "Wan2.2_VAE.pth")
    umt5 = scale_layout(
        read_layout(layouts / "umt5-xxl-encoder-wan-format.json"), UMT5_WIDTHS, SCALED_UMT5_CONFIG["num_layers"]
    )
    torch.save(random_state(umt5, seed + 2, torch.bfloat16), folder / "models_t5_umt5-xxl-enc-bf16.pth")
    write_tiny_tokenizer(folder / "google" / "umt5-xxl", SCALED_UMT5_CONFIG["vocab_size"])
    return folder
