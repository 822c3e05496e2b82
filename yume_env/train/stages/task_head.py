"""Stage `reward`: the task head that gives the learned world its task's reward and episode end.

The head (`yume_env.model.task_head.TaskHead`) reads one chunk's latents. On the simulator
("beacon") it predicts the beacon distance after the step (smooth L1, metres) and whether the
beacon is reached (BCE, positives up-weighted: they are rare); a share of cameras seek the beacon
so that reaching it is in the data, and the env derives reward = previous distance - distance
(+ bonus). On recorded episodes ("reward") it predicts the recorded reward (smooth L1) and whether
the episode ended (BCE, up-weighted). Latents get a little noise, since at play time the head reads
the DiT's generated latents. Reports MAE, accuracy and recall on held-out clips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from yume_env.data.recorded_clips import RecordedClipSource
from yume_env.data.sim_clips import ActionPolicy, ClipPool, Clips, IndexedStream, SimClipSource, batch_seed, select
from yume_env.model.config import WorldModelConfig
from yume_env.model.task_head import TaskHead
from yume_env.model.vae import encode_clips
from yume_env.train import distributed as D
from yume_env.train.trainer import Trainer, TrainerConfig


@dataclass
class RewardConfig:
    trainer: TrainerConfig = field(
        default_factory=lambda: TrainerConfig(
            lr=1e-3, warmup_steps=20, max_steps=5000, ema_decay=0.99, weight_decay=1e-4
        )
    )
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


# per kind: (the regressed signal, the flag) as the head names them and as the examples carry them
SIGNALS = {
    "beacon": (("distance", "distance"), ("reached_logit", "reached")),
    "reward": (("reward", "reward"), ("terminated_logit", "terminated")),
}


class TaskHeadModule(nn.Module):
    """forward({"latents": (N, C, F, h, w), <value>: (N,), <flag>: (N,)}) -> (loss, metrics), the
    value and flag of the head's kind (`SIGNALS`)."""

    def __init__(self, head: TaskHead, cfg: RewardConfig):
        super().__init__()
        self.head, self.cfg = head, cfg

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.cfg
        (value_out, value_in), (flag_out, flag_in) = SIGNALS[self.head.kind]
        pred = self.head(batch["latents"])
        value, flag = batch[value_in].float(), batch[flag_in].float()
        v_loss = F.smooth_l1_loss(pred[value_out].float(), value)
        f_loss = F.binary_cross_entropy_with_logits(
            pred[flag_out].float(), flag, pos_weight=torch.tensor(c.reached_pos_weight, device=value.device)
        )
        with torch.no_grad():
            mae = (pred[value_out].float() - value).abs().mean()
            acc = ((pred[flag_out] > 0).float() == flag).float().mean()
        return c.distance_weight * v_loss + f_loss, {f"{value_in}_mae": mae, f"{flag_in}_acc": acc}


def reward_source(base, cfg: RewardConfig):
    """The simulator with `seek_fraction` of beacon seekers; recorded clips as they are."""
    if not isinstance(base, SimClipSource):
        return base
    policy = ActionPolicy(**{**base.policy.__dict__, "seek_fraction": cfg.seek_fraction})
    return base.replace(policy=policy)


def head_kind(source) -> str:
    """ "reward" for recorded episodes (they carry the env's rewards), "beacon" for the simulator."""
    return "reward" if isinstance(source, RecordedClipSource) else "beacon"


def task_examples(clips: Clips, z: torch.Tensor, noise: float, seed: int) -> dict[str, torch.Tensor]:
    """Every step of the clips as (chunk latents, value, flag) examples; z (n, C, 1 + S*F, h, w)."""
    n, C, _, h, w = z.shape
    Fc, S = clips.sub_frames, clips.steps
    chunks = z[:, :, 1:].reshape(n, C, S, Fc, h, w).permute(0, 2, 1, 3, 4, 5).reshape(n * S, C, Fc, h, w)
    if noise > 0:
        gen = torch.Generator(device=z.device).manual_seed(seed)
        chunks = chunks + noise * torch.randn(chunks.shape, generator=gen, device=z.device)
    if clips.rewards is not None:
        return {"latents": chunks, "reward": clips.rewards.reshape(-1), "terminated": clips.terminated.reshape(-1)}
    return {"latents": chunks, "distance": clips.distance.reshape(-1), "reached": clips.reached.reshape(-1)}


def task_batch(
    vae: nn.Module, source: SimClipSource, cfg: RewardConfig, seed: int, noise: float
) -> dict[str, torch.Tensor]:
    """Freshly rendered clips (held-out evaluation)."""
    clips = source.render(cfg.batch_size, cfg.clip_steps, seed)
    return task_examples(clips, encode_clips(vae, clips.frames), noise, seed)


@torch.no_grad()
def evaluate(head: TaskHead, vae: nn.Module, source, cfg: RewardConfig, batches: int = 4) -> dict[str, float]:
    """The head on fresh clips (for recorded data: held-out episodes): value MAE, flag accuracy and recall."""
    head.eval()
    (value_out, value_in), (flag_out, flag_in) = SIGNALS[head.kind]
    if isinstance(source, RecordedClipSource):  # recorded episodes: the held-out ones
        source = RecordedClipSource(source.root, source.device, split="heldout", workers=0)
    mae, correct, n, tp, pos = 0.0, 0.0, 0, 0.0, 0.0
    for i in range(batches):
        b = task_batch(vae, source, cfg, batch_seed(cfg.seed + 15485863, i), noise=0.0)
        pred = head(b["latents"])
        hit, flag = pred[flag_out] > 0, b[flag_in].bool()
        mae += float((pred[value_out] - b[value_in]).abs().sum())
        correct += float((hit == flag).sum())
        tp += float((hit & flag).sum())
        pos += float(flag.sum())
        n += len(b[value_in])
    return {
        f"task_{value_in}_mae": mae / n,
        f"task_{flag_in}_accuracy": correct / n,
        f"task_{flag_in}_recall": tp / pos if pos else float("nan"),
        "task_eval_examples": n,
    }


def train_task_head(
    model_config: WorldModelConfig,
    vae: nn.Module,
    cfg: RewardConfig,
    out: str | Path,
    *,
    source: SimClipSource,
    info: D.DistInfo,
    deadline: float | None = None,
) -> tuple[TaskHead, Trainer, dict[str, Any]]:
    """Trains (or resumes from `out/`) a task head; returns (head with EMA weights, trainer, metrics when finished)."""
    torch.manual_seed(cfg.seed)
    vae = vae.to(info.device).eval().requires_grad_(False)
    head = TaskHead(model_config.latent_channels, model_config.latent_hw, cfg.width, cfg.hidden, head_kind(source))
    src = reward_source(source, cfg)
    pool = ClipPool(
        src,
        max(cfg.pool_clips, cfg.batch_size),
        cfg.clip_steps,
        cfg.batch_size,
        cfg.pool_reuse,
        cfg.seed,
        info.rank,
        encode=lambda clips: encode_clips(vae, clips.frames),
    )

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
