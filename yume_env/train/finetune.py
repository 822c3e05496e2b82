"""Stage `finetune`: LoRA (peft) or full fine-tuning of any world model on Sekai-layout folders.

    yume-env train finetune --model preset:tiny | MODEL_FOLDER --data DATA [DATA ...] --out RUN \
        [--mode lora|full] [--lora-rank 16] [--merge] [--steps N] [--batch-size B]

Read top to bottom:

1. the model: one of our folders, the published Yume-5B folder (`WorldModel.from_pretrained`) or a
   preset with random weights (`preset:NAME`);
2. the data: every clip of the Sekai-layout folders (`yume_env.data.SekaiClipDataset`: video,
   poses, captions, actions re-derived from poses for real Sekai folders), resized and centre-cropped
   to the model's frame size and encoded by the model's frozen VAE once; the latents are cached in
   `<cache>/<key>.safetensors` (written atomically) where the key hashes the video file's bytes, the
   VAE weights and the frame size, so a second run (or a resumed one) skips the VAE entirely;
3. examples: a chunk k (one per batch) of clips that have it; the history is the clip's latents
   before chunk k (through the TSCM layout, noised and labelled as in `pretrain`), the target is
   chunk k, the context is the caption of the action held during the chunk (the most frequent
   frame-to-frame action) and the clip's event text once the event shows;
4. the loss: the `pretrain` stage's denoising loss (`DenoiseModule`), trained by the shared
   `Trainer` (bf16 autocast on CUDA, accumulation, clipping, resumable atomic checkpoints);
5. LoRA: `peft` adapters on the attention and FFN Linears of every block; only they train, only
   they are checkpointed (a checkpoint of a 5B LoRA run holds megabytes, not the 5B weights), and
   the result is `RUN/lora.safetensors` (adapters + their config in the metadata), loadable into a
   fresh model with `load_lora`, or merged into the weights (`--merge`, `merge_lora`);
   full fine-tuning writes `RUN/model/` (a model folder).

Under torchrun, `--parallel ddp` replicates the model; `--parallel fsdp` shards it with
`shard_world_model` (FSDP2 per block, with the DiT's non-forward block methods registered, see there).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from yume_env.actions import NUM_CAMERAS
from yume_env.train import distributed as D
from yume_env.data.sim_clips import IndexedStream, batch_seed
from yume_env.train.checkpointing import atomic_save_safetensors, atomic_write_text
from yume_env.motion import clip_poses
from yume_env.train.stages.pretrain import DenoiseModule, history_noise_levels, sample_t
from yume_env.train.trainer import Trainer, TrainerConfig

LORA_FILE = "lora.safetensors"
ADAPTER = "default"
DEFAULT_TARGETS = ("q", "k", "v", "o", "ffn.0", "ffn.2")  # every attention and FFN Linear of a block
CACHE_FORMAT = "yume-env-latents/1"


@dataclass
class FinetuneConfig:
    """Hyper-parameters of the finetune stage (the loop's are in `trainer`)."""

    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        lr=1e-4, warmup_steps=20, max_steps=1000, ema_decay=0.0, weight_decay=0.0, log_every=5))
    mode: str = "lora"  # "lora" | "full"
    lora_rank: int = 16
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = DEFAULT_TARGETS
    merge: bool = False  # LoRA: also write the merged weights as RUN/model/
    batch_size: int = 4
    max_history_chunks: int = 0  # > 0: draw the target chunk among the first N+1 of each clip
    # the pretrain stage's noise levels (read by `sample_t` and `history_noise_levels`)
    history_noise_max: float = 0.1
    history_noise_prob: float = 0.5
    t_logit_mean: float = 0.0
    t_logit_std: float = 1.0
    sampler_t_fraction: float = 0.3
    t_min: float = 0.05
    seed: int = 0

    def validate(self) -> None:
        if self.mode not in ("lora", "full"):
            raise ValueError(f"finetune mode must be 'lora' or 'full', got {self.mode!r}")
        if self.mode == "lora" and self.lora_rank < 1:
            raise ValueError(f"lora_rank must be >= 1, got {self.lora_rank}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["trainer"] = self.trainer.to_dict()
        d["lora_targets"] = list(self.lora_targets)
        return d


# =============================================================================== LoRA

def add_lora(dit: nn.Module, rank: int = 16, alpha: float = 16.0, dropout: float = 0.0,
             targets: Sequence[str] = DEFAULT_TARGETS) -> nn.Module:
    """Injects peft LoRA adapters into `dit` in place and freezes everything else; returns `dit`.

    The adapters' B matrices start at zero, so the model's outputs are unchanged until training.
    """
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=int(rank), lora_alpha=float(alpha), lora_dropout=float(dropout),
                        target_modules=list(targets), bias="none")
    inject_adapter_in_model(config, dit, adapter_name=ADAPTER)
    for name, p in dit.named_parameters():
        p.requires_grad_("lora_" in name)
    if not any(p.requires_grad for p in dit.parameters()):
        raise ValueError(f"LoRA targets {list(targets)} matched no Linear of the model; name Linear modules "
                         f"(their last name parts, e.g. q, k, v, o, ffn.0)")
    return dit


def has_lora(module: nn.Module) -> bool:
    return any("lora_" in name for name, _ in module.named_parameters())


def lora_state_dict(dit: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights only (peft's names, without the adapter name)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(dit, adapter_name=ADAPTER).items()}


def save_lora(dit: nn.Module, path: str | os.PathLike, rank: int, alpha: float,
              targets: Sequence[str], extra: dict[str, Any] | None = None) -> Path:
    """Writes the adapters and their config (in the safetensors metadata) atomically."""
    meta = {"format": "yume-env-lora/1", "rank": str(int(rank)), "alpha": str(float(alpha)),
            "targets": json.dumps(list(targets)), "extra": json.dumps(extra or {})}
    atomic_save_safetensors(lora_state_dict(dit), path, metadata=meta)
    return Path(path)


def read_lora(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, config) of an adapter file written by `save_lora`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LoRA file {path} does not exist (the finetune stage writes RUN/{LORA_FILE})")
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if meta.get("format") != "yume-env-lora/1":
        raise ValueError(f"{path} is not a yume-env LoRA file (metadata format {meta.get('format')!r}); "
                         "write it with yume_env.train.finetune.save_lora")
    config = {"rank": int(meta["rank"]), "alpha": float(meta["alpha"]), "targets": json.loads(meta["targets"]),
              "extra": json.loads(meta.get("extra", "{}"))}
    return load_file(str(path)), config


def load_lora(dit: nn.Module, path: str | os.PathLike, merge: bool = False) -> nn.Module:
    """Injects the adapters of `path` into `dit` (a model without LoRA) and loads their weights;
    with `merge` folds them into the base weights and removes the adapter layers."""
    from peft import set_peft_model_state_dict

    tensors, config = read_lora(path)
    add_lora(dit, config["rank"], config["alpha"], 0.0, config["targets"])
    result = set_peft_model_state_dict(dit, tensors, adapter_name=ADAPTER)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    expected = set(lora_state_dict(dit))
    missing = sorted(expected - set(tensors))
    if unexpected or missing:
        raise ValueError(f"LoRA file {path} does not fit this model: {len(missing)} missing adapter tensors "
                         f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}); "
                         "was it trained on another preset?")
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


# =============================================================================== FSDP2 for the DiT

# block parts whose methods the DiT calls outside the block's forward (text keys/values once per
# chunk; channel-stream summaries one world or a batch at a time)
_OUTSIDE_FORWARD = {"cross_attn": ("context_kv",), "memory": ("summarize", "summarize_batch")}


def shard_world_model(module: nn.Module, bf16_params: bool = False, activation_checkpointing: bool = False) -> nn.Module:
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
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16_params else MixedPrecisionPolicy()
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


# =============================================================================== latents on disk

def vae_fingerprint(vae: nn.Module) -> str:
    """A hash of the VAE's weights (names, shapes, dtypes, bytes): cached latents are reused only
    when the VAE that made them is the same."""
    h = hashlib.sha1()
    for name, t in sorted(vae.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:20]


def file_digest(path: str | os.PathLike) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:20]


def fit_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (T, H0, W0, 3) -> (T, height, width, 3): scaled to cover, then centre-cropped
    (real Sekai videos are 720p/1080p; the model has one frame size)."""
    T, H0, W0 = frames.shape[:3]
    if (H0, W0) == (height, width):
        return frames
    scale = max(height / H0, width / W0)
    h, w = max(height, round(H0 * scale)), max(width, round(W0 * scale))
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (h - height) // 2, (w - width) // 2
    x = x[:, :, top:top + height, left:left + width]
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def encode_frames(vae: nn.Module, frames: np.ndarray, temporal_compression: int, device, per_call: int = 64) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> latents (C, N, h, w) float32: N = T for a 1x temporal VAE (encoded
    in groups of frames), else 1 + (T - 1) // tc (the causal Wan VAE, the clip cut to 1 + tc*k frames)."""
    from yume_env.model.vae import frames_to_tensor

    tc = int(temporal_compression)
    if tc == 1:
        parts = [vae.encode(frames_to_tensor(frames[i:i + per_call][:, None], device=device))[:, :, 0]
                 for i in range(0, len(frames), per_call)]
        return torch.cat(parts).float().transpose(0, 1).contiguous().cpu()
    n = 1 + (len(frames) - 1) // tc * tc
    return vae.encode(frames_to_tensor(frames[None, :n], device=device))[0].float().contiguous().cpu()


@dataclass
class ClipLatents:
    """One clip as the stage sees it: its cached latents' file and per-chunk conditioning."""

    path: Path  # the latent file
    source: str  # the .mp4
    chunks: int  # number of target chunks (latents after the first, in chunks of F)
    actions: list[int]  # flat action of each chunk
    events: list[str]  # event text active during each chunk ("" for none)


def chunk_conditioning(actions: np.ndarray, event: str, event_start: int, chunks: int, frames_per_chunk: int
                       ) -> tuple[list[int], list[str]]:
    """Per chunk k (pixel frames 1 + P*k .. P*(k+1), P = frames_per_chunk): the most frequent
    action of the transitions into those frames, and the event once its start frame is reached."""
    flat, events = [], []
    P = frames_per_chunk
    for k in range(chunks):
        moves = [int(a) * NUM_CAMERAS + int(c) for a, c in actions[P * k:P * (k + 1)]]
        flat.append(Counter(moves).most_common(1)[0][0])
        events.append(event if event and 0 <= event_start <= P * (k + 1) else "")
    return flat, events


class LatentLibrary:
    """Encodes (or finds in the cache) every clip of the folders; serves latents with an LRU."""

    def __init__(self, roots: Sequence[str | os.PathLike], vae: nn.Module, model_config, cache_dir: str | os.PathLike,
                 info: D.DistInfo, progress: bool = True, keep: int = 256):
        from tqdm.auto import tqdm

        from yume_env.data import SekaiClipDataset

        c = model_config
        self.frames_per_chunk = c.latent_frames_per_chunk * c.temporal_compression
        self.cache_dir = Path(cache_dir)
        self.keep = int(keep)
        self._lru: OrderedDict[int, torch.Tensor] = OrderedDict()
        self.encoded = 0  # clips encoded by this process (0 when all came from the cache)
        fingerprint = vae_fingerprint(vae)
        datasets = []
        for root in roots:
            if not Path(root).is_dir():
                raise FileNotFoundError(f"data folder {root} does not exist; make one with `yume-env data generate --out {root}`")
            datasets.append(SekaiClipDataset(root, window=None, verify=False, cache=0))
        todo = [(ds, ci) for ds in datasets for ci in range(len(ds.clips))]
        if not todo:
            raise ValueError(f"no clips found under {list(map(str, roots))} (Sekai layout: <root>/<class>/<stem>.mp4 + .npy + .txt)")
        self.clips: list[ClipLatents] = []
        plan = []
        for ds, ci in todo:
            clip = ds.clips[ci]
            key = hashlib.sha1(f"{file_digest(clip.path)}|{fingerprint}|{c.height}x{c.width}".encode()).hexdigest()[:24]
            plan.append((ds, ci, self.cache_dir / key[:2] / f"{key}.safetensors"))
        # each rank encodes its share of the missing clips, then everyone reads the cache
        mine = [p for i, p in enumerate(plan) if i % info.world_size == info.rank and not p[2].is_file()]
        for ds, ci, path in tqdm(mine, desc="encode clips", disable=not (progress and info.is_main), leave=False):
            frames = fit_frames(ds.clip_frames(ci), c.height, c.width)
            z = encode_frames(vae, frames, c.temporal_compression, next(vae.parameters()).device)
            atomic_save_safetensors({"latents": z}, path, metadata={
                "format": CACHE_FORMAT, "source": str(ds.clips[ci].path), "vae": fingerprint, "frames": str(len(frames))})
            self.encoded += 1
        D.barrier()
        Fc = c.latent_frames_per_chunk
        for ds, ci, path in plan:
            clip = ds.clips[ci]
            n_lat = 1 + (clip.meta.duration - 1) // c.temporal_compression
            chunks = (n_lat - 1) // Fc
            if chunks < 1:
                continue  # too short for one target chunk after the first frame
            acts, evs = chunk_conditioning(clip.actions, clip.meta.event, clip.meta.event_start, chunks, self.frames_per_chunk)
            self.clips.append(ClipLatents(path, str(clip.path), chunks, acts, evs))
        if not self.clips:
            raise ValueError(f"every clip is shorter than 1 + {self.frames_per_chunk} frames (one chunk after the first frame)")

    def events(self) -> list[str]:
        return sorted({e for clip in self.clips for e in clip.events if e})

    def latents(self, i: int) -> torch.Tensor:
        if i in self._lru:
            self._lru.move_to_end(i)
            return self._lru[i]
        from safetensors.torch import load_file

        z = load_file(str(self.clips[i].path))["latents"]
        self._lru[i] = z
        while len(self._lru) > self.keep:
            self._lru.popitem(last=False)
        return z


class FinetuneStream(IndexedStream):
    """Batch i is a pure function of (seed, i, rank): one chunk index k, then `batch_size` clips
    drawn among those that have chunk k; noise, t and history noise as in `pretrain`."""

    def __init__(self, library: LatentLibrary, text, model_config, cfg: FinetuneConfig, device, rank: int = 0):
        self.lib, self.text, self.mc, self.cfg, self.device, self.rank = library, text, model_config, cfg, device, rank
        most = max(clip.chunks for clip in library.clips)
        self.max_k = min(most, cfg.max_history_chunks + 1) if cfg.max_history_chunks > 0 else most
        super().__init__(self.make)  # batch i = make(i); the stream's state is i

    def make(self, index: int) -> dict[str, Any]:
        cfg, Fc, dev = self.cfg, self.mc.latent_frames_per_chunk, self.device
        gen = torch.Generator().manual_seed(batch_seed(cfg.seed, index, self.rank))
        k = int(torch.randint(self.max_k, (), generator=gen))
        having = [i for i, clip in enumerate(self.lib.clips) if clip.chunks > k]
        picks = [having[j] for j in torch.randint(len(having), (cfg.batch_size,), generator=gen).tolist()]
        n = 1 + Fc * k
        z = torch.stack([self.lib.latents(ci)[:, :n + Fc] for ci in picks])  # (B, C, n + Fc, h, w)
        level = history_noise_levels(len(picks), cfg, gen)
        noise = torch.randn(z[:, :, :n].shape, generator=gen)
        history = (1 - level.view(-1, 1, 1, 1, 1)) * z[:, :, :n] + level.view(-1, 1, 1, 1, 1) * noise
        x0 = z[:, :, n:]
        actions = [self.lib.clips[ci].actions for ci in picks]
        flat = [a[k] for a in actions]
        batch = {"history": history.to(dev), "history_noise": level.to(dev), "x0": x0.to(dev),
                 "eps": torch.randn(x0.shape, generator=gen).to(dev), "t": sample_t(len(picks), cfg, self.mc, gen, dev),
                 "context": self.text.context(flat, [self.lib.clips[ci].events[k] for ci in picks],
                                              self.mc.text_tokens).to(dev),
                 "action": torch.tensor(flat, device=dev)}
        if self.mc.pose_memory:  # dead-reckoned from each chunk's action, as the env does
            steps = torch.tensor([[(a // NUM_CAMERAS, a % NUM_CAMERAS) for a in acts[:k + 1]] for acts in actions])
            poses = clip_poses(steps, Fc).to(dev)
            batch["history_poses"], batch["target_pose"] = poses[:, :n], poses[:, -1]
        return batch


# =============================================================================== the trainer

class FinetuneTrainer(Trainer):
    """The shared `Trainer`; with LoRA its checkpoints hold the trainable (adapter) weights only.

    (The base class saves the full model state: for a 5B model with a few MB of adapters that is
    10+ GB per checkpoint; the frozen base weights are rebuilt from the model folder instead.)
    """

    def __init__(self, *args, trainable_only: bool = False, **kw):
        super().__init__(*args, **kw)
        self.trainable_only = trainable_only
        self._trainable = {n for n, p in self.module.named_parameters() if p.requires_grad}

    def model_state(self):
        return self._trainable_state() if self.trainable_only else super().model_state()

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        module = D.unwrap(self.module)
        if D.is_sharded(module):
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            return get_model_state_dict(module, options=StateDictOptions(
                full_state_dict=True, cpu_offload=True, ignore_frozen_params=True))
        return {k: v.detach().cpu() for k, v in module.state_dict().items() if k in self._trainable}

    def load_model_state(self, state):
        if not self.trainable_only:
            return super().load_model_state(state)
        module = D.unwrap(self.module)
        missing = sorted(self._trainable - set(state))
        if missing:
            raise ValueError(f"checkpoint lacks {len(missing)} trainable tensors (e.g. {missing[:3]}); "
                             "it was written by another LoRA configuration: use another --out")
        if D.is_sharded(module):
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

            set_model_state_dict(module, state, options=StateDictOptions(full_state_dict=True, strict=False))
        else:
            module.load_state_dict(state, strict=False)


@dataclass
class FinetuneResult:
    trainer: FinetuneTrainer
    finished: bool
    outputs: dict[str, str]  # name -> path of what was written
    metrics: dict[str, Any]


def load_world_model(spec: str, device, dtype: torch.dtype | None = None, seed: int = 0):
    """`preset:NAME` (random weights from `seed`) or a model folder (ours or the published Yume-5B)."""
    from yume_env.model import WorldModel, WorldModelConfig

    if spec.startswith("preset:"):
        return WorldModel.from_config(WorldModelConfig.preset(spec.split(":", 1)[1]), seed=seed, device=device)
    if not Path(spec).is_dir():
        raise FileNotFoundError(f"--model {spec}: no such folder; give a model folder or preset:NAME (e.g. preset:tiny)")
    return WorldModel.from_pretrained(spec, device=device, dtype=dtype)


def finetune(model, data: Sequence[str | os.PathLike], out: str | os.PathLike, cfg: FinetuneConfig,
             info: D.DistInfo | None = None, deadline: float | None = None, cache_dir: str | os.PathLike | None = None,
             progress: bool = True, until_step: int | None = None) -> FinetuneResult:
    """Fine-tunes `model` (a `WorldModel`, modified in place) on the clips of `data`; checkpoints in
    `out/ckpt/`, resumes from there; when finished writes `out/lora.safetensors` (LoRA) and/or
    `out/model/` (full, or LoRA with `cfg.merge`), `out/curves.{json,png}`, `out/metrics.json`.
    `until_step` stops this call early at that step (resumable, like `deadline`)."""
    cfg.validate()
    info = info or D.DistInfo(device=D.pick_device("auto"))
    out = Path(out)
    mc = model.config
    model.vae.to(info.device).eval().requires_grad_(False)
    library = LatentLibrary(data, model.vae, mc, cache_dir or out / "latents", info, progress=progress)
    tcfg = dataclasses.replace(cfg.trainer, progress=cfg.trainer.progress and progress)
    text = model.text
    text.add_events(library.events())  # encode every event once, before training
    dit = model.dit
    dit.to(info.device).train()
    if cfg.mode == "lora":
        if not has_lora(dit):
            with torch.random.fork_rng(devices=[]):  # the same adapters on every rank and every run
                torch.manual_seed(cfg.seed)
                add_lora(dit, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets)
    else:
        dit.requires_grad_(True)
    module = DenoiseModule(dit, mc, cfg.t_min)
    if tcfg.parallel == "fsdp" and info.distributed:
        # the shared wrap_model would shard blocks whose methods the DiT calls outside forward
        shard_world_model(module, bf16_params=tcfg.bf16 and info.device.type == "cuda",
                          activation_checkpointing=tcfg.activation_checkpointing)
        tcfg = dataclasses.replace(tcfg, parallel="none", activation_checkpointing=False)
    trainer = FinetuneTrainer(module, tcfg, out / "ckpt", info=info, name="finetune",
                              trainable_only=cfg.mode == "lora")
    stream = FinetuneStream(library, text, mc, cfg, info.device, info.rank)
    resumed = trainer.resume(stream)
    t0 = time.monotonic()
    result = trainer.fit(stream, deadline=deadline, until_step=until_step)
    losses = [v for _, v in trainer.curves.state_dict().get("loss", [])]
    metrics = {"clips": len(library.clips), "chunks": sum(c.chunks for c in library.clips), "clips_encoded": library.encoded,
               "step": trainer.step, "resumed": bool(resumed), "call_s": round(time.monotonic() - t0, 2),
               "trainable_parameters": sum(p.numel() for p in dit.parameters() if p.requires_grad),
               "first_loss": losses[0] if losses else None, "last_loss": trainer.curves.last("loss")}
    outputs: dict[str, str] = {}
    if result.finished:
        trainer.averaged_module()
        if D.is_sharded(module):  # every rank takes part in gathering; rank 0 exports plain weights
            model.dit = _unsharded_copy(module, mc, cfg)
    if info.is_main:
        trainer.curves.save(out / "curves.json", out / "curves.png", title="finetune")
        outputs["curves"] = str(out / "curves.json")
        if result.finished:
            outputs.update(_export(model, cfg, out))
            atomic_write_text(out / "metrics.json", json.dumps({**metrics, "config": cfg.to_dict()}, indent=1))
    D.barrier()
    return FinetuneResult(trainer, result.finished, outputs, metrics)


def _unsharded_copy(module: nn.Module, model_config, cfg: FinetuneConfig) -> nn.Module | None:
    """The trained DiT of an FSDP-sharded train module as a plain module on rank 0's CPU
    (collective: call on every rank; None on the others)."""
    from yume_env.model.dit import build_dit

    state = D.full_model_state(module)
    if not state:
        return None
    dit = build_dit(model_config, device="meta")
    if cfg.mode == "lora":
        add_lora(dit, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets)
    dit.load_state_dict({k[len("dit."):]: v for k, v in state.items() if k.startswith("dit.")}, assign=True)
    return dit


def _export(model, cfg: FinetuneConfig, out: Path) -> dict[str, str]:
    written = {}
    dit = model.dit
    if cfg.mode == "lora":
        written["lora"] = str(save_lora(dit, out / LORA_FILE, cfg.lora_rank, cfg.lora_alpha, cfg.lora_targets,
                                        extra={"model_config": model.config.to_dict()}))
        if not cfg.merge:
            return written
        merge_lora(dit)
    dit.requires_grad_(False).eval()
    written["model"] = str(model.save_pretrained(out / "model"))
    return written


# =============================================================================== command line

def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    """The stage's config from `yume-env train finetune`'s options (`yume_env/cli/train.py`)."""
    lr = args.lr if args.lr is not None else (1e-4 if args.mode == "lora" else 2e-5)
    trainer = dataclasses.replace(
        FinetuneConfig().trainer, lr=lr, max_steps=args.steps, budget_s=(args.minutes or 0.0) * 60.0,
        parallel=args.parallel, seed=args.seed, warmup_steps=min(20, max(1, args.steps // 10)),
        activation_checkpointing=args.activation_checkpointing)
    return FinetuneConfig(trainer=trainer, mode=args.mode, lora_rank=args.lora_rank, lora_alpha=float(args.lora_rank),
                          merge=args.merge, batch_size=args.batch_size, seed=args.seed)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    info = D.init_distributed(args.device)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    model = load_world_model(args.model, info.device, dtype, seed=args.seed)
    deadline = time.monotonic() + args.call_minutes * 60.0 if args.call_minutes > 0 else None
    result = finetune(model, args.data, args.out, cfg, info=info, deadline=deadline)
    if info.is_main:
        print(json.dumps({"stage": "finetune", "finished": result.finished, "outputs": result.outputs,
                          "metrics": result.metrics}, indent=1))
    D.shutdown()
    return 0
