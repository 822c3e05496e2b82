"""Stage `self-forcing`: train on histories the model generated itself (Yume1.5's recipe, simplified).

Per batch: `burn_in` chunks of simulator history, then the model (current weights, few-step
sampler, no grad) generates the next `m` chunks itself under the clips' actions and events; the
model is then trained with the pretrain flow-matching loss to produce the simulator's chunk
m+1 given that self-made history. Where the published recipe matches distributions (DMD), our
simulator gives the true next chunk for the same actions, so the target is simply the truth: the
model learns to pull a drifted history back to the world. A share of batches keeps the clean
history (pretrain examples) so the stage does not forget it.

Drift is measured before and after: PSNR of an autoregressive rollout against the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from yume_env.actions import NUM_CAMERAS
from yume_env.model.config import WorldModelConfig
from yume_env.train import distributed as D
from yume_env.data.sim_clips import ClipPool, IndexedStream, SimClipSource, select
from yume_env.model.vae import encode_clips
from yume_env.train.rollout import sample_chunk
from yume_env.train.stages.pretrain import FlowMatchingModule, PretrainConfig, contexts, flow_batch
from yume_env.train.trainer import Trainer, TrainerConfig


@dataclass
class SelfForcingConfig:
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        lr=1e-4, warmup_steps=20, max_steps=20_000, ema_decay=0.999, weight_decay=0.01))
    flow: PretrainConfig = field(default_factory=lambda: PretrainConfig(history_noise_max=0.05, history_noise_prob=0.5))
    batch_size: int = 32
    max_burn_in: int = 4  # simulator chunks before the self-generated ones: [0, max_burn_in]
    max_generated: int = 6  # self-generated chunks: [1, max_generated]
    clean_fraction: float = 0.25  # batches with the simulator's own history
    pool_clips: int = 128  # see batches.ClipPool (clips of max_burn_in + max_generated + 1 steps)
    pool_reuse: float = 2.0
    seed: int = 1


class SelfForcingStream(IndexedStream):
    """Batch i: clips (seed i), the model's own continuation of them, the true next chunk as target."""

    def __init__(self, dit: nn.Module, source: SimClipSource, vae: nn.Module, text, config: WorldModelConfig,
                 cfg: SelfForcingConfig, rank: int = 0):
        self.dit, self.source, self.vae, self.text, self.config, self.cfg, self.rank = dit, source, vae, text, config, cfg, rank
        self.pool = ClipPool(source, max(cfg.pool_clips, cfg.batch_size), cfg.max_burn_in + cfg.max_generated + 1,
                             cfg.batch_size, cfg.pool_reuse, cfg.seed, rank, encode=lambda clips: encode_clips(vae, clips.frames))
        super().__init__(self.make)  # batch i = make(i); the stream's state is i

    def make(self, i: int) -> dict[str, Any]:
        c, Fc = self.cfg, self.config.latent_frames_per_chunk
        pool_clips, pool_latents, pick, gen = self.pool.draw(i)
        clips, latents = select(pool_clips, pick), pool_latents[pick]
        draw = lambda lo, hi: int(torch.randint(lo, hi + 1, (), generator=gen, device=gen.device))  # noqa: E731
        burn, m = draw(0, c.max_burn_in), draw(1, c.max_generated)
        clean = float(torch.rand((), generator=gen, device=gen.device)) < c.clean_fraction
        target = burn + m
        if clean:
            return flow_batch(latents, clips, [target] * c.batch_size, self.text, self.config, c.flow, gen)
        history = latents[:, :, : 1 + Fc * burn]
        was_training = self.dit.training
        self.dit.eval()
        cuda = latents.device.type == "cuda"
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            for s in range(burn, target):  # the model continues the clips under their own actions and events
                ctx = contexts(self.text, clips, [s] * c.batch_size, self.config.text_tokens, latents.device)
                act = clips.actions[:, s, 0] * NUM_CAMERAS + clips.actions[:, s, 1]
                chunk = sample_chunk(self.dit, self.config, list(history), ctx, gen, memory_on=c.flow.memory, action=act)
                history = torch.cat([history, chunk.float()], dim=2)
        self.dit.train(was_training)
        return flow_batch(latents, clips, [target] * c.batch_size, self.text, self.config, c.flow, gen,
                          history=list(history))


def train_self_forcing(model_config: WorldModelConfig, dit: nn.Module, vae: nn.Module, text, cfg: SelfForcingConfig,
                       out: str | Path, *, source: SimClipSource, info: D.DistInfo,
                       deadline: float | None = None) -> Trainer:
    """Trains (or resumes from `out/`) `dit` in place on its own rollouts; returns the trainer."""
    vae = vae.to(info.device).eval().requires_grad_(False)
    module = FlowMatchingModule(dit, cfg.flow.memory)
    trainer = Trainer(module, cfg.trainer, Path(out), info=info, name="self_forcing")
    # the stream generates with the local weights (identical on every rank under DDP)
    stream = SelfForcingStream(module.dit, source, vae, text, model_config, cfg, info.rank)
    trainer.resume(stream)
    trainer.fit(stream, deadline=deadline)
    return trainer
