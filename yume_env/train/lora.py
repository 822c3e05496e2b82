"""LoRA adapters (peft) on a world's DiT: inject, save as a PEFT adapter folder, load, merge.

    add_lora(dit, rank=16)                      # adapters on every attention and FFN Linear; the rest frozen
    save_lora(dit, "RUN/lora", rank, alpha, targets)   # adapter_config.json + adapter_model.safetensors
    load_lora(fresh_dit, "RUN/lora", merge=True)       # the same adapters on a fresh model, folded in

A saved folder is a standard PEFT adapter folder: `peft.LoraConfig.from_pretrained(folder)` reads its
config and `peft.set_peft_model_state_dict` its weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from yume_env.atomic import atomic_write_text
from yume_env.model.checkpoint import save_safetensors

LORA_DIR = "lora"
ADAPTER = "default"
DEFAULT_TARGETS = ("q", "k", "v", "o", "ffn.0", "ffn.2")  # every attention and FFN Linear of a block
CONFIG_FILE, WEIGHTS_FILE, EXTRA_FILE = "adapter_config.json", "adapter_model.safetensors", "yume_env.json"


def add_lora(
    dit: nn.Module, rank: int = 16, alpha: float = 16.0, dropout: float = 0.0, targets: Sequence[str] = DEFAULT_TARGETS
) -> nn.Module:
    """Injects peft LoRA adapters into `dit` in place and freezes everything else; returns `dit`.

    The adapters' B matrices start at zero, so the model's outputs are unchanged until training.
    """
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(
        r=int(rank), lora_alpha=float(alpha), lora_dropout=float(dropout), target_modules=list(targets), bias="none"
    )
    inject_adapter_in_model(config, dit, adapter_name=ADAPTER)
    for name, p in dit.named_parameters():
        p.requires_grad_("lora_" in name)
    if not any(p.requires_grad for p in dit.parameters()):
        raise ValueError(
            f"LoRA targets {list(targets)} matched no Linear of the model; name Linear modules "
            f"(their last name parts, e.g. q, k, v, o, ffn.0)"
        )
    return dit


def has_lora(module: nn.Module) -> bool:
    return any("lora_" in name for name, _ in module.named_parameters())


def lora_state_dict(dit: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights only (peft's names, without the adapter name)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(dit, adapter_name=ADAPTER).items()}


def save_lora(
    dit: nn.Module,
    folder: str | os.PathLike,
    rank: int,
    alpha: float,
    targets: Sequence[str],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Writes the adapters as a PEFT adapter folder (config, weights) plus `yume_env.json` (`extra`:
    e.g. the model config they were trained on), each file atomically."""
    from peft import LoraConfig

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = LoraConfig(r=int(rank), lora_alpha=float(alpha), target_modules=list(targets), bias="none")
    atomic_write_text(folder / CONFIG_FILE, json.dumps(config.to_dict(), indent=1, default=list), durable=True)
    save_safetensors(folder / WEIGHTS_FILE, lora_state_dict(dit), {"format": "pt"}, durable=True)
    atomic_write_text(folder / EXTRA_FILE, json.dumps(extra or {}, indent=1), durable=True)
    return folder


def read_lora(folder: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, {"rank", "alpha", "targets", "extra"}) of an adapter folder written by `save_lora`."""
    from peft import LoraConfig
    from safetensors.torch import load_file

    folder = Path(folder)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name} does not exist: a LoRA adapter folder (written by "
                f"`yume-env train finetune --preset lora`, RUN/{LORA_DIR}) holds {CONFIG_FILE} and {WEIGHTS_FILE}"
            )
    try:
        config = LoraConfig.from_pretrained(str(folder))
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{folder / CONFIG_FILE} is not a PEFT LoRA config ({exc})") from exc
    extra_file = folder / EXTRA_FILE
    extra = json.loads(extra_file.read_text()) if extra_file.is_file() else {}
    return load_file(str(folder / WEIGHTS_FILE)), {
        "rank": int(config.r),
        "alpha": float(config.lora_alpha),
        "targets": sorted(config.target_modules),
        "extra": extra,
    }


def load_lora(dit: nn.Module, path: str | os.PathLike, merge: bool = False) -> nn.Module:
    """Injects the adapters of the folder `path` into `dit` (a model without LoRA) and loads their weights;
    with `merge` folds them into the base weights and removes the adapter layers."""
    from peft import set_peft_model_state_dict

    tensors, config = read_lora(path)
    add_lora(dit, config["rank"], config["alpha"], 0.0, config["targets"])
    result = set_peft_model_state_dict(dit, tensors, adapter_name=ADAPTER)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    expected = set(lora_state_dict(dit))
    missing = sorted(expected - set(tensors))
    if unexpected or missing:
        raise ValueError(
            f"LoRA adapters {path} do not fit this model: {len(missing)} missing adapter tensors "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}); "
            "was it trained on another preset?"
        )
    dit.requires_grad_(False)
    return merge_lora(dit) if merge else dit


def merge_lora(dit: nn.Module) -> nn.Module:
    """Folds every LoRA adapter into its base Linear (W += B A * alpha / r) and puts the plain
    Linear back, so the model has its original structure and state-dict names again."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(dit.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge(safe_merge=True)
            parent = dit.get_submodule(name.rsplit(".", 1)[0]) if "." in name else dit
            setattr(parent, name.rsplit(".", 1)[-1], module.get_base_layer())
    return dit
