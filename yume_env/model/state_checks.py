"""What a saved world (one dict of `WorldState.to_dict()`) must be for a model to step it.

`check_world_dict(config, world, where)` refuses, before anything is built from it, a world that
another model made (its `config_fingerprint` differs: `config_checks.config_fingerprint`), or whose
fields do not fit this model: the kept history latents (C, K, h, w) with C and (h, w) the model's
latent channels and size and K the frames the TSCM layout keeps at `n_history`
(`tscm.frames_to_keep`); the channel-stream sums, kept poses and recall bank where the model has
them; the VAE stream cache; the pose and origin (4,); the event text and the counts. Every tensor
must be finite. Errors are TypeError (wrong kind of value) or ValueError (wrong shape, value or
model), and name `where` and the field.
"""

from __future__ import annotations

import numbers
import weakref
from typing import Any, Callable

import torch

from yume_env.model import tscm
from yume_env.model.config import WorldModelConfig
from yume_env.model.config_checks import config_fingerprint
from yume_env.model.recall import BANK_SIZE
from yume_env.model.text_cache import check_event_text

STATE_FORMAT = 3  # 3: worlds record their model's config fingerprint
REQUIRED = ("history", "n_history", "vae_cache", "pose", "origin", "event", "step_count")  # besides the two below
_DAMAGED = "the saved world is damaged; save it again from a healthy world"
ANY_CACHE = object()  # `cache_layout` when the VAE stream cache is not compared with the model's
_LAYOUTS: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def stream_layout(vae: Any, prime: Callable[[], Any]) -> Any:
    """What one world's VAE stream cache looks like for `vae`: {key: shape} for a dict cache, None
    for a VAE that keeps none, else the VAE's own cache type. `prime()` returns the cache of a
    freshly primed world; it runs once per VAE (the layout is remembered)."""
    if vae not in _LAYOUTS:
        with torch.no_grad():
            cache = prime()
        _LAYOUTS[vae] = (
            {k: tuple(v.shape) for k, v in cache.items()}
            if isinstance(cache, dict)
            else None
            if cache is None
            else type(cache)
        )
    return _LAYOUTS[vae]


def check_world_dict(config: WorldModelConfig, world: Any, where: str, cache_layout: Any = ANY_CACHE) -> None:
    """Raises TypeError / ValueError naming `where` and the field if `world` is not a world that
    the model of `config` can step (see the module docstring); returns None if it is. With
    `cache_layout` (`stream_layout` of the model's VAE) the VAE stream cache must have that layout."""
    if not isinstance(world, dict):
        raise TypeError(f"{where} must be a dict from WorldState.to_dict(), got {type(world).__name__}")
    missing = sorted(k for k in REQUIRED if k not in world)
    if missing:
        raise ValueError(f"{where} lacks {missing}; pass one dict of what WorldState.to_dict() returned")
    if world.get("format") != STATE_FORMAT:
        raise ValueError(
            f"{where}: format {world.get('format')!r} is not supported (this version reads "
            f"{STATE_FORMAT}); save the world again with this version"
        )
    _check_identity(config, world.get("config_fingerprint"), where)
    n = _count(world["n_history"], "n_history", where, minimum=1)
    _count(world["step_count"], "step_count", where)
    if "chunks_since_event" in world:  # absent: settled (worlds saved before it was kept)
        _count(world["chunks_since_event"], "chunks_since_event", where)
    kept = _check_history(config, world["history"], n, where)
    if config.memory_enabled:
        _check_memory(config, world.get("memory"), n, where)
    if config.pose_memory:
        _tensor(world.get("poses"), "poses", where, (kept, 4), f"one (x, z, yaw, pitch) per kept latent: {kept}")
    if config.recall_frames:
        _check_recall(config, world.get("recall"), where)
    _check_vae_cache(world["vae_cache"], where, cache_layout)
    for name in ("pose", "origin"):
        _tensor(world[name], name, where, (4,), "(x, z, yaw, pitch)")
    check_event_text(world["event"], f"{where}: field 'event'")


def _check_identity(config: WorldModelConfig, saved: Any, where: str) -> None:
    mine = config_fingerprint(config)
    if saved is None:
        raise ValueError(
            f"{where} lacks 'config_fingerprint' (which model made it); pass one dict of what "
            "WorldState.to_dict() returned"
        )
    if saved != mine:
        raise ValueError(
            f"{where} was made by another model: its config_fingerprint is {saved!r}, this model's is {mine!r} "
            "(they differ in sizes, TSCM schedule, memory, pose or text settings); resume it with the model "
            "that saved it"
        )


def _count(value: Any, field: str, where: str, minimum: int = 0) -> int:
    """An integer field (not a bool) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: field {field!r} must be an integer, got {type(value).__name__}")
    if int(value) < minimum:
        raise ValueError(f"{where}: field {field!r} must be >= {minimum}, got {int(value)}")
    return int(value)


def _tensor(value: Any, field: str, where: str, shape: tuple, meaning: str, integer: bool = False) -> torch.Tensor:
    """`value` checked as a torch.Tensor of `shape` (None: any size) holding floats (or, with
    `integer`, integers); float tensors must be finite. `meaning` says what the shape is."""
    want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{where}: field {field!r} must be a torch.Tensor {want}, got {type(value).__name__}")
    floating = value.is_floating_point()
    if integer == floating or value.dtype == torch.bool or value.is_complex():
        kind = "an integer" if integer else "a floating point"
        raise TypeError(f"{where}: field {field!r} must be {kind} tensor, got {value.dtype}")
    if value.ndim != len(shape) or any(s is not None and s != v for s, v in zip(shape, value.shape)):
        raise ValueError(
            f"{where}: field {field!r} has shape {tuple(value.shape)}; this model's worlds have {want} ({meaning})"
        )
    if floating and not bool(torch.isfinite(value).all()):
        raise ValueError(f"{where}: field {field!r} holds NaN or infinite values; {_DAMAGED}")
    return value


def _check_history(config: WorldModelConfig, history: Any, n_history: int, where: str) -> int:
    """The kept latents (C, K, h, w); returns K."""
    kept = len(tscm.frames_to_keep(config.tscm_schedule, n_history))
    h, w = config.latent_hw
    _tensor(
        history,
        "history",
        where,
        (config.latent_channels, kept, h, w),
        f"{config.latent_channels} latent channels, the {kept} latents the {config.tscm_schedule!r} TSCM layout "
        f"keeps of n_history={n_history}, {h}x{w} latents",
    )
    return kept


def _check_memory(config: WorldModelConfig, memory: Any, n_history: int, where: str) -> None:
    """The channel stream's sums: kv (L, H, d, d), k_sum (L, H, d), n_latents = n_history."""
    if not isinstance(memory, dict):
        raise TypeError(
            f"{where}: field 'memory' must be a dict (kv, k_sum, n_latents, n_tokens) for this model's "
            f"channel-stream memory, got {type(memory).__name__}"
        )
    L, H, d = config.num_layers, config.memory_heads, config.memory_head_dim
    meaning = f"{L} blocks x {H} memory heads x head dim {d}"
    _tensor(memory.get("kv"), "memory.kv", where, (L, H, d, d), meaning)
    _tensor(memory.get("k_sum"), "memory.k_sum", where, (L, H, d), meaning)
    if _count(memory.get("n_latents", 0), "memory.n_latents", where) != n_history:
        raise ValueError(
            f"{where}: field 'memory.n_latents' is {memory.get('n_latents')}, but n_history is "
            f"{n_history}: the memory sums hold every latent of the history; {_DAMAGED}"
        )
    _count(memory.get("n_tokens", 0), "memory.n_tokens", where)


def _check_recall(config: WorldModelConfig, bank: Any, where: str) -> None:
    """One world's recall bank: latents (1, C, K, h, w), poses (1, K, 4), stamp (1, K), inserted (1,)."""
    if not isinstance(bank, dict):
        raise TypeError(
            f"{where}: field 'recall' must be a dict (latents, poses, stamp, inserted) for this model's "
            f"recall bank, got {type(bank).__name__}"
        )
    C, (h, w), K = config.latent_channels, config.latent_hw, BANK_SIZE
    _tensor(bank.get("latents"), "recall.latents", where, (1, C, K, h, w), f"one world's bank of {K} views")
    _tensor(bank.get("poses"), "recall.poses", where, (1, K, 4), f"one pose per bank entry, {K}")
    stamp = _tensor(bank.get("stamp"), "recall.stamp", where, (1, K), f"one stamp per bank entry, {K}", integer=True)
    inserted = _tensor(bank.get("inserted"), "recall.inserted", where, (1,), "frames offered to the bank", integer=True)
    if bool((stamp < -1).any()) or bool((inserted < 0).any()):
        raise ValueError(f"{where}: fields 'recall.stamp' (>= -1) or 'recall.inserted' (>= 0) are negative; {_DAMAGED}")


def _check_vae_cache(cache: Any, where: str, layout: Any) -> None:
    """A dict of one world's finite float tensors, None (a VAE that keeps no cache) or a VAE's own
    cache type; with a `layout` (not ANY_CACHE), exactly the model's keys and shapes, or kind."""
    if layout is ANY_CACHE:
        layout = (
            {k: (1, *getattr(v, "shape", (None,))[1:]) for k, v in cache.items()}
            if isinstance(cache, dict)
            else type(cache)
        )
    if isinstance(layout, dict):
        if not isinstance(cache, dict) or set(cache) != set(layout):
            got = sorted(cache) if isinstance(cache, dict) else type(cache).__name__
            raise ValueError(
                f"{where}: field 'vae_cache' must be a dict with the keys {sorted(layout)} of this "
                f"model's VAE stream, got {got}"
            )
        for key, shape in layout.items():
            _tensor(
                cache[key], f"vae_cache.{key}", where, (1, *shape[1:]), "one world's stream cache of this model's VAE"
            )
    elif layout is None or layout is type(None):
        if cache is not None:
            raise ValueError(f"{where}: field 'vae_cache' must be None: this model's VAE keeps no stream cache")
    elif not isinstance(cache, layout):
        raise TypeError(
            f"{where}: field 'vae_cache' must be a {layout.__name__} (this model's VAE stream cache), "
            f"got {type(cache).__name__}"
        )
