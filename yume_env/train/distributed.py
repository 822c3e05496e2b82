"""Process groups and model wrapping: single process, torchrun DDP, FSDP2 `fully_shard`.

`torchrun --nproc_per_node N -m yume_env.cli train ...` sets RANK / WORLD_SIZE / LOCAL_RANK;
`init_distributed()` reads them (NCCL on GPUs, gloo on CPU) and a plain `python` call stays a
single process. `wrap_model` puts the train module under DDP (replicated weights, the default
world) or FSDP2 (each transformer block sharded, then the root: for the 5B, whose weights and
Adam moments do not fit one GPU). Activation checkpointing recomputes each block's activations
in the backward pass instead of storing them (less memory, about 30% more compute).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

PARALLEL_MODES = ("none", "ddp", "fsdp")


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def init_distributed(device: str = "auto") -> DistInfo:
    """Joins the torchrun process group when launched by torchrun; a no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(device=pick_device(device))
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def shutdown() -> None:
    """Leave the process group together: the barrier keeps a rank that finished first (e.g. while
    rank 0 still exports) from closing its connections under another rank still using them."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def rank() -> int:
    """This process's rank (0 outside torchrun)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean over ranks (identity in a single process)."""
    if dist.is_available() and dist.is_initialized():
        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist.get_world_size()
    return value


def broadcast_object(obj):
    """Rank 0's Python object on every rank."""
    if dist.is_available() and dist.is_initialized():
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return obj


def find_blocks(module: nn.Module) -> list[nn.Module]:
    """The repeated transformer blocks: every entry of every `nn.ModuleList` named `blocks`."""
    found: list[nn.Module] = []
    for name, child in module.named_modules():
        if isinstance(child, nn.ModuleList) and name.split(".")[-1] == "blocks":
            found.extend(child)
    return found


def enable_activation_checkpointing(module: nn.Module) -> int:
    """Recompute each block's activations in the backward pass; returns how many blocks.

    Uses the composable `checkpoint` API, which keeps parameter names unchanged (state dicts and
    FSDP2 sharding see the same module tree as without it).
    """
    from torch.distributed._composable import checkpoint

    blocks = find_blocks(module)
    for block in blocks:
        checkpoint(block)
    return len(blocks)


def wrap_model(
    module: nn.Module, mode: str, info: DistInfo, *, activation_checkpointing: bool = False, bf16_params: bool = False
) -> nn.Module:
    """Returns the module to call in the training loop (the same object when `mode` is "none").

    - "ddp": `DistributedDataParallel`; gradients all-reduced in buckets during backward.
    - "fsdp": FSDP2: `fully_shard` on each block, then on the root. With `bf16_params` the
      all-gathered weights and the gradient reduce-scatter run in bf16 (fp32 master weights).
    """
    if mode not in PARALLEL_MODES:
        raise ValueError(f"parallel mode must be one of {PARALLEL_MODES}, got {mode!r}")
    if activation_checkpointing:
        enable_activation_checkpointing(module)
    if mode == "none" or not info.distributed:
        return module
    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [info.device.index] if info.device.type == "cuda" else None
        # some parameters sit out some batches (coarse TSCM embedders when every history is short)
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if bf16_params
        else MixedPrecisionPolicy()
    )
    for block in find_blocks(module):
        fully_shard(block, mp_policy=mp)
    fully_shard(module, mp_policy=mp)
    return module


def unwrap(module: nn.Module) -> nn.Module:
    """The user module under a DDP wrapper (FSDP2 shards in place, so it is the module itself)."""
    return (
        module.module
        if hasattr(module, "module") and isinstance(module, nn.parallel.DistributedDataParallel)
        else module
    )


def is_sharded(module: nn.Module) -> bool:
    return any(hasattr(p, "device_mesh") for p in module.parameters())


def full_model_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A full, unsharded CPU state dict (the same on every parallel layout)."""
    module = unwrap(module)
    if is_sharded(module):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def load_full_model_state(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    module = unwrap(module)
    if is_sharded(module):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(module, state, options=StateDictOptions(full_state_dict=True))
        return
    module.load_state_dict(state)


def full_optimizer_state(module: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    module = unwrap(module)
    if is_sharded(module):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(
            module, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
    return optimizer.state_dict()


def load_full_optimizer_state(module: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    module = unwrap(module)
    if is_sharded(module):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(module, optimizer, state, options=StateDictOptions(full_state_dict=True))
        return
    optimizer.load_state_dict(state)
