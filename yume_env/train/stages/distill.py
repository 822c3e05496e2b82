"""Stage `distill`: a one-step student that does in one Euler step what the teacher does in its
few (progressive distillation, Salimans & Ho 2022, from the teacher's `sample_steps` to 1).

Per example: the same (history, actions, event, noise eps) as pretraining; the frozen teacher
integrates eps to x0_T with its own schedule; the student, initialised from the teacher, takes
one step from sigma = 1 (x0_S = eps - v_S) and is trained on

    loss = MSE(x0_S, x0_T)

A deterministic target (the teacher's sample for *this* eps) is what lets one step be sharp: a
one-step model trained on the data instead regresses to the mean of all possible next chunks
and blurs. The student also learns its own history pass (the blocks' history keys/values),
since the student is what runs at play time. Cost at play time: one DiT forward per chunk
instead of `sample_steps`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from yume_env.model import sampler
from yume_env.model.config import WorldModelConfig
from yume_env.train import distributed as D
from yume_env.data.sim_clips import SimClipSource
from yume_env.train.stages.frozen_aside import DiTWithFrozen
from yume_env.train.stages.pretrain import PretrainConfig, PretrainStream, action_kwargs, batch_memory
from yume_env.train.trainer import Trainer, TrainerConfig


@dataclass
class DistillConfig:
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        lr=1e-4, warmup_steps=100, max_steps=50_000, ema_decay=0.999, weight_decay=0.0))
    # the examples: pretraining's batches (history lengths, GameNGen history noise, actions, events)
    data: PretrainConfig = field(default_factory=lambda: PretrainConfig(batch_size=64))
    teacher_steps: int = 0  # the teacher's Euler steps; 0: the teacher's own config.sample_steps
    memory: bool = True  # channel stream on (when the model has one)


class DistillModule(DiTWithFrozen):
    """forward(batch) -> (loss, metrics). Only the student is a submodule (what DDP and EMA see);
    the teacher is held outside the module tree, frozen."""

    def __init__(self, student: nn.Module, teacher: nn.Module, teacher_steps: int, shift: float, memory: bool = True):
        super().__init__(student, teacher=teacher)
        self.teacher_sigmas = sampler.sigma_schedule(teacher_steps, shift)
        self.memory = bool(memory) and bool(student.config.memory_enabled)

    @property
    def teacher(self) -> nn.Module:
        return self.frozen("teacher")

    @torch.no_grad()
    def teacher_sample(self, batch: dict[str, Any]) -> torch.Tensor:
        teacher, context = self.teacher, batch["context"]
        extra = action_kwargs(teacher, batch.get("action"))
        memory = batch_memory(teacher, batch) if self.memory else None
        hist = teacher.encode_history(batch["history"], memory)
        return sampler.sample(lambda x, t: teacher(x, t, context, hist, memory, **extra).float(), batch["eps"],
                              self.teacher_sigmas)

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        target = self.teacher_sample(batch)
        eps, context = batch["eps"], batch["context"]
        memory = batch_memory(self.dit, batch) if self.memory else None
        hist = self.dit.encode_history(batch["history"], memory)
        t = torch.full((eps.shape[0],), 1000.0, device=eps.device)  # sigma 1: the one step starts from noise
        v = self.dit(eps, t, context, hist, memory, **action_kwargs(self.dit, batch.get("action"))).float()
        x0 = eps - v  # one Euler step from sigma 1 to 0
        loss = F.mse_loss(x0, target)
        with torch.no_grad():  # how far the teacher's own sample is from the simulator's chunk
            teacher_vs_data = F.mse_loss(target, batch["x0"])
        return loss, {"teacher_vs_data_mse": teacher_vs_data}


def train_distill(model_config: WorldModelConfig, student: nn.Module, teacher: nn.Module, vae: nn.Module, text,
                  cfg: DistillConfig, out: str | Path, *, source: SimClipSource, info: D.DistInfo,
                  deadline: float | None = None) -> Trainer:
    """Trains (or resumes from `out/`) `student` in place to match `teacher`; returns the trainer."""
    steps = int(cfg.teacher_steps) or int(model_config.sample_steps)
    if steps < 2:
        raise ValueError(f"distilling needs a teacher with >= 2 sampling steps, got {steps}; "
                         "pass teacher_steps (e.g. 2) or a teacher whose config.sample_steps is >= 2")
    vae = vae.to(info.device).eval().requires_grad_(False)
    stream = PretrainStream(source, vae, text, model_config, cfg.data, info.rank)
    module = DistillModule(student, teacher, steps, model_config.shift, cfg.memory)
    trainer = Trainer(module, cfg.trainer, Path(out), info=info, name="distill")
    trainer.resume(stream)
    trainer.fit(stream, deadline=deadline)
    return trainer
