"""umT5-XXL encoder: the transformers `UMT5Config` and the map from Wan's parameter names to transformers'.

Wan ships the encoder as `models_t5_umt5-xxl-enc-bf16.pth` with the names of Wan-Video/Wan2.2
`wan/modules/t5.py` (`blocks.3.attn.q.weight`, `blocks.3.ffn.gate.0.weight`); transformers'
`UMT5EncoderModel` holds the same tensors as `encoder.block.3.layer.0.SelfAttention.q.weight`,
`encoder.block.3.layer.1.DenseReluDense.wi_0.weight`. The math matches: RMS norms with eps 1e-6,
unscaled attention with a relative-position bias per block (32 buckets, max distance 128), and a
gated tanh-GELU FFN where Wan's `gate` (GELU branch) is `wi_0` and `fc1` (linear branch) is `wi_1`.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

# umT5-XXL as Wan uses it (only the encoder).
UMT5_XXL_CONFIG: dict[str, Any] = dict(
    vocab_size=256384,
    d_model=4096,
    d_kv=64,
    d_ff=10240,
    num_layers=24,
    num_heads=64,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    dropout_rate=0.0,
    layer_norm_epsilon=1e-6,
    feed_forward_proj="gated-gelu",
    is_encoder_decoder=False,
    use_cache=False,
    tie_word_embeddings=False,
)

_BLOCK = {
    "norm1.weight": "layer.0.layer_norm.weight",
    "attn.q.weight": "layer.0.SelfAttention.q.weight",
    "attn.k.weight": "layer.0.SelfAttention.k.weight",
    "attn.v.weight": "layer.0.SelfAttention.v.weight",
    "attn.o.weight": "layer.0.SelfAttention.o.weight",
    "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
    "norm2.weight": "layer.1.layer_norm.weight",
    "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",
    "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",
    "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
}
_TOP = {"token_embedding.weight": "shared.weight", "norm.weight": "encoder.final_layer_norm.weight"}
# `encoder.embed_tokens.weight` is the same Parameter as `shared.weight` in UMT5EncoderModel.
TIED_KEYS = {"encoder.embed_tokens.weight": "shared.weight"}


def wan_umt5_key_to_hf(key: str) -> str:
    """One Wan umT5 parameter name -> the `UMT5EncoderModel` name; KeyError for unknown names."""
    if key in _TOP:
        return _TOP[key]
    m = re.fullmatch(r"blocks\.(\d+)\.(.+)", key)
    if m and m.group(2) in _BLOCK:
        return f"encoder.block.{int(m.group(1))}.{_BLOCK[m.group(2)]}"
    raise KeyError(f"umT5 key {key!r} is not a parameter name of Wan's umT5 encoder")


def convert_wan_umt5_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    """Renames a whole Wan umT5 state dict to transformers names (values untouched)."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        new = wan_umt5_key_to_hf(key)
        if new in out:
            raise ValueError(f"two umT5 keys map to {new!r} (second: {key!r})")
        out[new] = value
    return out
