"""Stage `finetune`: LoRA (peft) or full fine-tuning of any world model on Sekai-layout folders.

    yume-env train finetune --model preset:tiny | MODEL_FOLDER --data DATA [DATA ...] --out RUN \
        [--preset lora|full] [--set lora_rank=16] [--set merge=true] [--steps N] [--set batch_size=4]

Read top to bottom:

1. the model: one of our folders, the published Yume-5B folder (`WorldModel.from_pretrained`) or a
   preset with random weights (`preset:NAME`);
2. the data: every clip of the Sekai-layout folders, encoded once by the model's frozen VAE and
   cached on disk (`yume_env.data.latent_cache.LatentLibrary`), so a second run skips the VAE;
3. examples: a chunk k (one per batch) of clips that have it; the history is the clip's latents
   before chunk k (through the TSCM layout, noised and labelled as in `pretrain`), the target is
   chunk k, the context is the caption of the action held during the chunk (the most frequent
   frame-to-frame action) and the clip's event text once the event shows;
4. the loss: the `pretrain` stage's denoising loss (`DenoiseModule`), trained by the shared
   `Trainer` (bf16 autocast on CUDA, accumulation, clipping, resumable atomic checkpoints);
5. LoRA (`yume_env.train.lora`): `peft` adapters on the attention and FFN Linears of every block;
   only they train, only they are checkpointed (megabytes for a 5B model), and the result is the
   PEFT adapter folder `RUN/lora/`, loadable into a fresh model with `load_lora` or merged into the
   weights (`--set merge=true`); full fine-tuning writes `RUN/model/` (a model folder).

Under torchrun, `--parallel ddp` replicates the model; `--parallel fsdp` shards it
(`yume_env.train.sharding.shard_world_model`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from yume_env.actions import NUM_CAMERAS
from yume_env.atomic import atomic_write_text
from yume_env.data.latent_cache import LatentLibrary
from yume_env.data.sim_clips import IndexedStream, batch_seed
from yume_env.motion import clip_poses
from yume_env.train import distributed as D
from yume_env.train.lora import DEFAULT_TARGETS, LORA_DIR, add_lora, has_lora, merge_lora, save_lora
from yume_env.train.overrides import apply_changes
from yume_env.train.presets import read_preset
from yume_env.train.sharding import shard_world_model
from yume_env.train.stages.pretrain import DenoiseModule, history_noise_levels, sample_t
from yume_env.train.trainer import Trainer, TrainerConfig


@dataclass
class FinetuneConfig:
    """Hyper-parameters of the finetune stage (the loop's are in `trainer`)."""

    trainer: TrainerConfig = field(
        default_factory=lambda: TrainerConfig(
            lr=1e-4, warmup_steps=20, max_steps=1000, ema_decay=0.0, weight_decay=0.0, log_every=5
        )
    )
    mode: str = "lora"  # "lora" | "full"
    lora_rank: int = 16
    lora_alpha: float | None = None  # None: the rank (adapter scale 1)
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

    def validate(self) -> None:
        if self.mode not in ("lora", "full"):
            raise ValueError(f"finetune mode must be 'lora' or 'full', got {self.mode!r}")
        if self.mode == "lora" and self.lora_rank < 1:
            raise ValueError(f"lora_rank must be >= 1, got {self.lora_rank}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    @property
    def alpha(self) -> float:
        """The LoRA scale numerator: `lora_alpha`, or the rank."""
        return float(self.lora_rank if self.lora_alpha is None else self.lora_alpha)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["trainer"] = self.trainer.to_dict()
        d["lora_targets"] = list(self.lora_targets)
        return d


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
        gen = torch.Generator().manual_seed(batch_seed(cfg.trainer.seed, index, self.rank))
        k = int(torch.randint(self.max_k, (), generator=gen))
        having = [i for i, clip in enumerate(self.lib.clips) if clip.chunks > k]
        picks = [having[j] for j in torch.randint(len(having), (cfg.batch_size,), generator=gen).tolist()]
        n = 1 + Fc * k
        z = torch.stack([self.lib.latents(ci)[:, : n + Fc] for ci in picks])  # (B, C, n + Fc, h, w)
        level = history_noise_levels(len(picks), cfg, gen)
        noise = torch.randn(z[:, :, :n].shape, generator=gen)
        history = (1 - level.view(-1, 1, 1, 1, 1)) * z[:, :, :n] + level.view(-1, 1, 1, 1, 1) * noise
        x0 = z[:, :, n:]
        actions = [self.lib.clips[ci].actions for ci in picks]
        flat = [a[k] for a in actions]
        batch = {
            "history": history.to(dev),
            "history_noise": level.to(dev),
            "x0": x0.to(dev),
            "eps": torch.randn(x0.shape, generator=gen).to(dev),
            "t": sample_t(len(picks), cfg, self.mc, gen, dev),
            "context": self.text.context(flat, [self.lib.clips[ci].events[k] for ci in picks], self.mc.text_tokens).to(
                dev
            ),
            "action": torch.tensor(flat, device=dev),
        }
        if self.mc.pose_memory:  # dead-reckoned from each chunk's action, as the env does
            steps = torch.tensor([[(a // NUM_CAMERAS, a % NUM_CAMERAS) for a in acts[: k + 1]] for acts in actions])
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

            return get_model_state_dict(
                module, options=StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
            )
        return {k: v.detach().cpu() for k, v in module.state_dict().items() if k in self._trainable}

    def load_model_state(self, state):
        if not self.trainable_only:
            return super().load_model_state(state)
        module = D.unwrap(self.module)
        missing = sorted(self._trainable - set(state))
        if missing:
            raise ValueError(
                f"checkpoint lacks {len(missing)} trainable tensors (e.g. {missing[:3]}); "
                "it was written by another LoRA configuration: use another --out"
            )
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
        raise FileNotFoundError(
            f"--model {spec}: no such folder; give a model folder or preset:NAME (e.g. preset:tiny)"
        )
    return WorldModel.from_pretrained(spec, device=device, dtype=dtype)


def finetune(
    model,
    data: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    cfg: FinetuneConfig,
    info: D.DistInfo | None = None,
    deadline: float | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    until_step: int | None = None,
) -> FinetuneResult:
    """Fine-tunes `model` (a `WorldModel`, modified in place) on the clips of `data`; checkpoints in
    `out/ckpt/`, resumes from there; when finished writes the adapter folder `out/lora/` (LoRA) and/or
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
                torch.manual_seed(cfg.trainer.seed)
                add_lora(dit, cfg.lora_rank, cfg.alpha, cfg.lora_dropout, cfg.lora_targets)
    else:
        dit.requires_grad_(True)
    module = DenoiseModule(dit, mc, cfg.t_min)
    if tcfg.parallel == "fsdp" and info.distributed:
        # the shared wrap_model would shard blocks whose methods the DiT calls outside forward
        shard_world_model(
            module,
            bf16_params=tcfg.bf16 and info.device.type == "cuda",
            activation_checkpointing=tcfg.activation_checkpointing,
        )
        tcfg = dataclasses.replace(tcfg, parallel="none", activation_checkpointing=False)
    trainer = FinetuneTrainer(module, tcfg, out / "ckpt", info=info, name="finetune", trainable_only=cfg.mode == "lora")
    stream = FinetuneStream(library, text, mc, cfg, info.device, info.rank)
    resumed = trainer.resume(stream)
    t0 = time.monotonic()
    result = trainer.fit(stream, deadline=deadline, until_step=until_step)
    losses = [v for _, v in trainer.curves.state_dict().get("loss", [])]
    metrics = {
        "clips": len(library.clips),
        "chunks": sum(c.chunks for c in library.clips),
        "clips_encoded": library.encoded,
        "step": trainer.step,
        "resumed": bool(resumed),
        "call_s": round(time.monotonic() - t0, 2),
        "trainable_parameters": sum(p.numel() for p in dit.parameters() if p.requires_grad),
        "first_loss": losses[0] if losses else None,
        "last_loss": trainer.curves.last("loss"),
    }
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
        add_lora(dit, cfg.lora_rank, cfg.alpha, cfg.lora_dropout, cfg.lora_targets)
    dit.load_state_dict({k[len("dit.") :]: v for k, v in state.items() if k.startswith("dit.")}, assign=True)
    return dit


def _export(model, cfg: FinetuneConfig, out: Path) -> dict[str, str]:
    written = {}
    dit = model.dit
    if cfg.mode == "lora":
        written["lora"] = str(
            save_lora(
                dit,
                out / LORA_DIR,
                cfg.lora_rank,
                cfg.alpha,
                cfg.lora_targets,
                extra={"model_config": model.config.to_dict()},
            )
        )
        if not cfg.merge:
            return written
        merge_lora(dit)
    dit.requires_grad_(False).eval()
    written["model"] = str(model.save_pretrained(out / "model"))
    return written


# =============================================================================== command line


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    """The stage's config from `yume-env train finetune`'s options (`yume_env/cli/train.py`): the
    preset, the `--set` overrides, then `--steps`, `--minutes` and `--parallel`."""
    cfg = apply_changes(FinetuneConfig(), read_preset("finetune", args.preset), args.overrides, f"preset {args.preset}")
    trainer = dataclasses.replace(cfg.trainer, parallel=args.parallel)
    if args.steps is not None:
        warmup = min(trainer.warmup_steps, max(1, args.steps // 10))
        trainer = dataclasses.replace(trainer, max_steps=args.steps, warmup_steps=warmup)
    if args.minutes:
        trainer = dataclasses.replace(trainer, budget_s=args.minutes * 60.0)
    return dataclasses.replace(cfg, trainer=trainer)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    info = D.init_distributed(args.device)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    model = load_world_model(args.model, info.device, dtype, seed=cfg.trainer.seed)
    deadline = time.monotonic() + args.call_minutes * 60.0 if args.call_minutes > 0 else None
    result = finetune(model, args.data, args.out, cfg, info=info, deadline=deadline)
    if info.is_main:
        print(
            json.dumps(
                {
                    "stage": "finetune",
                    "finished": result.finished,
                    "outputs": result.outputs,
                    "metrics": result.metrics,
                },
                indent=1,
            )
        )
    D.shutdown()
    return 0
