"""Stage `reward`: the task head that gives the learned world the simulator task's reward.

The head (`yume_env.model.task_head.TaskHead`) reads one chunk's latents and predicts the beacon
distance after the step (smooth L1, metres) and whether the beacon is reached (BCE, positives
up-weighted: they are rare). Labels come from the simulator; a share of cameras seek the beacon
so that reaching it is in the data. Latents get a little noise, since at play time the head
reads the DiT's generated latents, not the VAE's. Reports distance MAE and reached accuracy
(and recall) on held-out clips. The env derives reward = previous distance - distance (+ bonus).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from yume_env.model.config import WorldModelConfig
from yume_env.model.task_head import TaskHead
from yume_env.train import distributed as D
from yume_env.data.sim_clips import ActionPolicy, ClipPool, Clips, IndexedStream, SimClipSource, batch_seed, select
from yume_env.model.vae import encode_clips
from yume_env.train.trainer import Trainer, TrainerConfig


@dataclass
class RewardConfig:
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        lr=1e-3, warmup_steps=20, max_steps=5000, ema_decay=0.99, weight_decay=1e-4))
    batch_size: int = 16  # clips per batch; every step of every clip is an example
    clip_steps: int = 28  # long enough for the seekers to reach the beacon
    seek_fraction: float = 0.6
    pool_clips: int = 128  # see batches.ClipPool
    pool_reuse: float = 2.0
    latent_noise: float = 0.1
    reached_pos_weight: float = 4.0
    distance_weight: float = 1.0
    width: int = 32
    hidden: int = 64
    seed: int = 2


class TaskHeadModule(nn.Module):
    """forward({"latents": (N, C, F, h, w), "distance": (N,), "reached": (N,)}) -> (loss, metrics)."""

    def __init__(self, head: TaskHead, cfg: RewardConfig):
        super().__init__()
        self.head, self.cfg = head, cfg

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.cfg
        pred = self.head(batch["latents"])
        dist, reached = batch["distance"].float(), batch["reached"].float()
        d_loss = F.smooth_l1_loss(pred["distance"].float(), dist)
        r_loss = F.binary_cross_entropy_with_logits(
            pred["reached_logit"].float(), reached, pos_weight=torch.tensor(c.reached_pos_weight, device=dist.device))
        with torch.no_grad():
            mae = (pred["distance"].float() - dist).abs().mean()
            acc = ((pred["reached_logit"] > 0).float() == reached).float().mean()
        return c.distance_weight * d_loss + r_loss, {"distance_mae": mae, "reached_acc": acc}


def reward_source(base: SimClipSource, cfg: RewardConfig) -> SimClipSource:
    policy = ActionPolicy(**{**base.policy.__dict__, "seek_fraction": cfg.seek_fraction})
    return base.replace(policy=policy)


def task_examples(clips: Clips, z: torch.Tensor, noise: float, seed: int) -> dict[str, torch.Tensor]:
    """Every step of the clips as (chunk latents, distance, reached) examples; z (n, C, 1 + S*F, h, w)."""
    n, C, _, h, w = z.shape
    Fc, S = clips.sub_frames, clips.steps
    chunks = z[:, :, 1:].reshape(n, C, S, Fc, h, w).permute(0, 2, 1, 3, 4, 5).reshape(n * S, C, Fc, h, w)
    if noise > 0:
        gen = torch.Generator(device=z.device).manual_seed(seed)
        chunks = chunks + noise * torch.randn(chunks.shape, generator=gen, device=z.device)
    return {"latents": chunks, "distance": clips.distance.reshape(-1), "reached": clips.reached.reshape(-1)}


def task_batch(vae: nn.Module, source: SimClipSource, cfg: RewardConfig, seed: int, noise: float) -> dict[str, torch.Tensor]:
    """Freshly rendered clips (held-out evaluation)."""
    clips = source.render(cfg.batch_size, cfg.clip_steps, seed)
    return task_examples(clips, encode_clips(vae, clips.frames), noise, seed)


@torch.no_grad()
def evaluate(head: TaskHead, vae: nn.Module, source: SimClipSource, cfg: RewardConfig, batches: int = 4) -> dict[str, float]:
    head.eval()
    mae, correct, n, tp, pos = 0.0, 0.0, 0, 0.0, 0.0
    for i in range(batches):
        b = task_batch(vae, source, cfg, batch_seed(cfg.seed + 15485863, i), noise=0.0)
        pred = head(b["latents"])
        hit = pred["reached_logit"] > 0
        mae += float((pred["distance"] - b["distance"]).abs().sum())
        correct += float((hit == b["reached"]).sum())
        tp += float((hit & b["reached"]).sum())
        pos += float(b["reached"].sum())
        n += len(b["distance"])
    return {"task_distance_mae_m": mae / n, "task_reached_accuracy": correct / n,
            "task_reached_recall": tp / pos if pos else float("nan"), "task_eval_examples": n}


def train_task_head(model_config: WorldModelConfig, vae: nn.Module, cfg: RewardConfig, out: str | Path, *,
                    source: SimClipSource, info: D.DistInfo,
                    deadline: float | None = None) -> tuple[TaskHead, Trainer, dict[str, Any]]:
    """Trains (or resumes from `out/`) a task head; returns (head with EMA weights, trainer, metrics when finished)."""
    torch.manual_seed(cfg.seed)
    vae = vae.to(info.device).eval().requires_grad_(False)
    head = TaskHead(model_config.latent_channels, model_config.latent_hw, cfg.width, cfg.hidden)
    src = reward_source(source, cfg)
    pool = ClipPool(src, max(cfg.pool_clips, cfg.batch_size), cfg.clip_steps, cfg.batch_size, cfg.pool_reuse, cfg.seed,
                    info.rank, encode=lambda clips: encode_clips(vae, clips.frames))

    def make(i: int) -> dict[str, torch.Tensor]:
        clips, z, pick, _ = pool.draw(i)
        return task_examples(select(clips, pick), z[pick], cfg.latent_noise, batch_seed(cfg.seed, i, info.rank))

    stream = IndexedStream(make)
    trainer = Trainer(TaskHeadModule(head, cfg), cfg.trainer, Path(out), info=info, name="reward")
    trainer.resume(stream)
    result = trainer.fit(stream, deadline=deadline)
    metrics: dict[str, Any] = {}
    if result.finished:
        trainer.averaged_module()
        metrics = evaluate(head, vae, src, cfg)
        metrics["task_steps"] = result.step
    return head, trainer, metrics
