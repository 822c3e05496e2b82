"""FSDP2 sharding of a train module that holds a world's DiT (`shard_world_model`), for fine-tuning
a model too large for one GPU under `torchrun`."""

from __future__ import annotations

import torch
from torch import nn

from yume_env.train import distributed as D

# block parts whose methods the DiT calls outside the block's forward (text keys/values once per
# chunk; channel-stream summaries one world or a batch at a time)
_OUTSIDE_FORWARD = {"cross_attn": ("context_kv",), "memory": ("summarize", "summarize_batch")}


def shard_world_model(
    module: nn.Module, bf16_params: bool = False, activation_checkpointing: bool = False
) -> nn.Module:
    """FSDP2 `fully_shard` of a train module holding a `WanDiT`, in place.

    Each block is one unit; its cross-attention and channel-stream read are units of their own
    whose non-forward methods (`context_kv`, called once per chunk for every block's text
    keys/values, and `summarize`, the memory update; and the block's `history_kv` in causal history
    mode) are registered as FSDP forward methods, so
    their weights are all-gathered when the DiT calls them outside the block's forward. The root
    (embeddings, TSCM embedders, head) is the last unit. With `bf16_params` the gathered weights
    and the reduce-scatter run in bf16 (the sharded master weights keep their dtype).
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method

    if activation_checkpointing:
        D.enable_activation_checkpointing(module)
    mp = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if bf16_params
        else MixedPrecisionPolicy()
    )
    for block in D.find_blocks(module):
        for child, methods in _OUTSIDE_FORWARD.items():
            sub = getattr(block, child, None)
            if sub is not None and any(True for _ in sub.parameters()):
                fully_shard(sub, mp_policy=mp)
                for method in methods:
                    if hasattr(sub, method):
                        register_fsdp_forward_method(sub, method)
        fully_shard(block, mp_policy=mp)
        if hasattr(block, "history_kv"):  # causal history mode: the last block's history keys/values
            register_fsdp_forward_method(block, "history_kv")
    fully_shard(module, mp_policy=mp)
    return module
