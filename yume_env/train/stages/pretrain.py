"""Stage `pretrain`: flow matching of the next chunk given a TSCM history, actions and events.

One example = one simulator clip, encoded by the frozen VAE: a random number k of past steps
gives the history (the start latent + k chunks, through the TSCM band schedule, with the channel
stream built from the same latents), and the chunk of step k is the target, conditioned on the
caption of step k's action and the event text active then:

    x_t = (1 - t) x0 + t eps,  target v = eps - x0,  loss = MSE(dit(x_t, t, context, history), v)

on the current chunk's tokens only. t is logit-normal, mixed with the sampler's own few
timesteps (the model is only ever asked at those). The history gets Gaussian noise of a random
level (GameNGen's noise augmentation): at play time the history is the model's own imperfect
output, and a model trained only on clean history drifts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from yume_env.actions import NUM_ACTIONS, NUM_CAMERAS
from yume_env.model import sampler
from yume_env.model.config import WorldModelConfig
from yume_env.train import distributed as D
from yume_env.data.sim_clips import ClipPool, Clips, IndexedStream, SimClipSource, select
from yume_env.model.vae import encode_clips
from yume_env.train.trainer import Trainer, TrainerConfig


@dataclass
class PretrainConfig:
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        lr=4e-4, warmup_steps=200, max_steps=50_000, ema_decay=0.999, weight_decay=0.01))
    batch_size: int = 64
    clip_steps: int = 20  # env steps rendered per clip; history length k is drawn from [0, clip_steps)
    # (the tiny TSCM layout saturates at 20 latents: longer clips show it thinned old frames)
    pool_clips: int = 256  # clips rendered per call of the simulator (see batches.ClipPool)
    pool_reuse: float = 2.0  # times each pooled clip is drawn (on average)
    history_noise_max: float = 0.15  # history += s * eps, s ~ U(0, max) ...
    history_noise_prob: float = 0.7  # ... for this share of the examples
    t_logit_mean: float = 0.0
    t_logit_std: float = 1.0
    sampler_t_fraction: float = 0.3  # share of examples at the sampler's own timesteps
    memory: bool = True  # channel stream on (when the model has one)
    seed: int = 0


class FlowMatchingModule(nn.Module):
    """forward(batch) -> (loss, metrics): the flow-matching loss of `dit` on one batch.

    batch: {"history": list of (C, N_i, h, w), "x0": (B, C, F, h, w), "eps": like x0, "t": (B,),
    "context": (B, L, text_dim)}, optionally "history_latents" (B, C, N, h, w) with
    "history_lengths" (host ints: history[i] = history_latents[i, :, :N_i]) so the channel stream
    is summarised for the whole batch at once. Only the DiT is a submodule (what DDP/FSDP and
    EMA see).
    """

    def __init__(self, dit: nn.Module, memory: bool = True):
        super().__init__()
        self.dit = dit
        self.memory = bool(memory) and bool(dit.config.memory_enabled)

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        history, x0, eps, t, context = batch["history"], batch["x0"], batch["eps"], batch["t"], batch["context"]
        memory = batch_memory(self.dit, batch) if self.memory else None
        hist = self.dit.encode_history(history, memory)
        tt = t.view(-1, 1, 1, 1, 1)
        x_t = (1.0 - tt) * x0 + tt * eps
        v = self.dit(x_t, t * 1000.0, context, hist, memory, **action_kwargs(self.dit, batch.get("action"))).float()
        loss = F.mse_loss(v, eps - x0)
        with torch.no_grad():  # the x0 the model implies, a scale-free quality signal
            x0_err = F.mse_loss(x_t - tt * v, x0)
        return loss, {"x0_mse": x0_err}


def batch_memory(dit: nn.Module, batch: dict[str, Any]) -> list:
    """Channel-stream states of a batch's histories: one batched summary (`memory_summaries`) when
    the batch carries them padded, or when all histories have one shape; else world by world."""
    inner = dit.module if hasattr(dit, "module") and not hasattr(dit, "memory_summaries") else dit
    history = batch["history"]
    if "history_latents" in batch and hasattr(inner, "memory_summaries"):
        return inner.memory_summaries(batch["history_latents"], batch["history_lengths"])
    if history and hasattr(inner, "memory_summaries") and all(h.shape == history[0].shape for h in history):
        return inner.memory_summaries(torch.stack(list(history)), [h.shape[1] for h in history])
    return [inner.update_memory(None, h) for h in history]


def action_kwargs(dit: nn.Module, action: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """`{"action": flat action (B,)}` for a DiT whose forward takes a learned action embedding,
    else nothing (the action then conditions only through its caption in the context)."""
    import inspect

    if action is None:
        return {}
    forward = dit.forward if not hasattr(dit, "module") else dit.module.forward
    return {"action": action} if "action" in inspect.signature(forward).parameters else {}


def sample_t(n: int, cfg: PretrainConfig, config: WorldModelConfig, gen: torch.Generator, device) -> torch.Tensor:
    """Logit-normal t, with `sampler_t_fraction` of the draws at the sampler's own timesteps."""
    t = torch.sigmoid(cfg.t_logit_mean + cfg.t_logit_std * torch.randn(n, generator=gen, device=gen.device))
    own = _sampler_ts(config.sample_steps, config.shift, gen.device)
    pick = own[torch.randint(len(own), (n,), generator=gen, device=gen.device)]
    use = torch.rand(n, generator=gen, device=gen.device) < cfg.sampler_t_fraction
    return torch.where(use, pick, t).clamp(1e-3, 1.0).to(device)


_SAMPLER_TS: dict[tuple, torch.Tensor] = {}


def _sampler_ts(steps: int, shift: float, device) -> torch.Tensor:
    """The sampler's own timesteps on `device`, copied there once (a host copy per batch syncs)."""
    key = (int(steps), float(shift), str(device))
    if key not in _SAMPLER_TS:
        _SAMPLER_TS[key] = sampler.sigma_schedule(steps, shift)[:-1].float().to(device)
    return _SAMPLER_TS[key]


class ContextTable:
    """Contexts by tensor indexing: the 81 action captions as one (81, length, dim) table and each
    event text once as a row of an event table, both kept on the device. Equal to
    `text.context(flat, events, length)`: [action tokens, event tokens], cut to `length`, zero-padded."""

    def __init__(self, text, length: int, device):
        self.text, self.length, self.device = text, int(length), torch.device(device)
        acts = [text.action_tokens(a).float()[:self.length] for a in range(NUM_ACTIONS)]
        self.dim = int(text.dim)
        self.actions = torch.stack([F.pad(a, (0, 0, 0, self.length - a.shape[0])) for a in acts]).to(self.device)
        self.action_len = torch.tensor([a.shape[0] for a in acts]).to(self.device)
        self.rows: dict[str, int] = {}
        self.events = torch.zeros(0, self.length, self.dim, device=self.device)
        self.event_len = torch.zeros(0, dtype=torch.long, device=self.device)

    def event_rows(self, events: list[str]) -> list[int]:
        new = [e for e in dict.fromkeys(events) if e not in self.rows]
        if new:  # rare: each event text is added once
            toks = [self.text.event_tokens(e).float()[:self.length] for e in new]
            pad = torch.stack([F.pad(x, (0, 0, 0, self.length - x.shape[0])) for x in toks]).to(self.device)
            self.events = torch.cat([self.events, pad])
            self.event_len = torch.cat([self.event_len, torch.tensor([x.shape[0] for x in toks]).to(self.device)])
            for e in new:
                self.rows[e] = len(self.rows)
        return [self.rows[e] for e in events]

    def __call__(self, flat: torch.Tensor, events: list[str]) -> torch.Tensor:
        """flat (B,) long on the device, events: B texts -> (B, length, dim) float32."""
        from yume_env.model.dit import host_tensor

        flat = flat.to(self.device)
        rows = host_tensor(self.event_rows(events), self.device)
        ctx = self.actions[flat]  # (B, length, dim)
        pos = torch.arange(self.length, device=self.device)[None, :] - self.action_len[flat][:, None]  # event token index
        ok = (pos >= 0) & (pos < self.event_len[rows][:, None])
        ev = self.events[rows[:, None], pos.clamp(0, self.length - 1)]  # (B, length, dim)
        return torch.where(ok[..., None], ev, ctx)


_TABLES: dict[tuple, ContextTable] = {}


def context_table(text, length: int, device) -> ContextTable:
    key = (id(text), int(length), str(torch.device(device)))
    table = _TABLES.get(key)
    if table is None or table.text is not text:
        table = _TABLES[key] = ContextTable(text, length, device)
    return table


def contexts(text, clips: Clips, steps: torch.Tensor | list[int], length: int, device) -> torch.Tensor:
    """(B, length, dim) [action, event] context for step `steps[i]` of clip i."""
    steps = [int(s) for s in steps]
    from yume_env.model.dit import host_tensor

    acts = clips.actions[torch.arange(len(steps), device=clips.actions.device), host_tensor(steps, clips.actions.device)]
    flat = acts[:, 0] * NUM_CAMERAS + acts[:, 1]
    events = [clips.events[i][s] for i, s in enumerate(steps)]
    return context_table(text, length, device)(flat.to(device), events)


def history_noise_levels(n: int, cfg: PretrainConfig, gen: torch.Generator) -> torch.Tensor:
    """(n,) GameNGen noise levels: U(0, max) for `history_noise_prob` of the examples, else 0."""
    use = torch.rand(n, generator=gen, device=gen.device) < cfg.history_noise_prob
    level = torch.rand(n, generator=gen, device=gen.device) * cfg.history_noise_max
    return torch.where(use, level, torch.zeros_like(level))


def noisy_history(history: torch.Tensor, cfg: PretrainConfig, gen: torch.Generator) -> torch.Tensor:
    """GameNGen-style augmentation of one history (C, N, h, w)."""
    if cfg.history_noise_max <= 0 or history.shape[1] == 0:
        return history
    level = history_noise_levels(1, cfg, gen)[0]
    noise = torch.randn(history.shape, generator=gen, device=gen.device).to(history.device)
    return history + level.to(history.device) * noise


def flow_batch(latents: torch.Tensor, clips: Clips, k: list[int], text, config: WorldModelConfig,
               cfg: PretrainConfig, gen: torch.Generator, history: list[torch.Tensor] | torch.Tensor | None = None
               ) -> dict[str, Any]:
    """The batch for targets at step k[i] of each clip; `history` overrides the ground-truth one
    (the self-forcing stage passes histories the model generated itself, (B, C, N, h, w) or a list).

    All examples at once: the histories are one padded tensor (B, C, N_max, h, w) noised with
    per-example levels (`history_noise_levels`), each example's history a view of its first N_i
    frames; the targets are gathered with one index. No per-example device work or host sync."""
    from yume_env.model.dit import host_tensor

    Fc = config.latent_frames_per_chunk
    device = latents.device
    k = [int(x) for x in k]
    B = len(k)
    if history is None:
        lengths = [1 + Fc * ki for ki in k]
        padded = latents[:, :, :max(lengths)]
    elif torch.is_tensor(history) or all(h.shape == history[0].shape for h in history):
        padded = history if torch.is_tensor(history) else torch.stack(list(history))
        lengths = [padded.shape[2]] * B
    else:
        lengths = [h.shape[1] for h in history]
        padded = torch.stack([F.pad(h, (0, 0, 0, 0, 0, max(lengths) - h.shape[1])) for h in history])
    if cfg.history_noise_max > 0 and padded.shape[2] > 0:
        level = history_noise_levels(B, cfg, gen).to(device)
        noise = torch.randn(padded.shape, generator=gen, device=gen.device).to(device)
        padded = padded + level.view(B, 1, 1, 1, 1) * noise
    hist = [padded[i, :, :n] for i, n in enumerate(lengths)]
    start = host_tensor([1 + Fc * ki for ki in k], device)  # targets: the chunk after step k's history
    frames = start[:, None] + torch.arange(Fc, device=device)[None, :]  # (B, Fc)
    x0 = latents[torch.arange(B, device=device)[:, None], :, frames].permute(0, 2, 1, 3, 4)  # (B, C, Fc, h, w)
    eps = torch.randn(x0.shape, generator=gen, device=gen.device).to(device)
    t = sample_t(B, cfg, config, gen, device)
    kk = host_tensor(k, clips.actions.device)
    acts = clips.actions[torch.arange(B, device=clips.actions.device), kk]
    flat = (acts[:, 0] * NUM_CAMERAS + acts[:, 1]).to(device)
    events = [clips.events[i][s] for i, s in enumerate(k)]
    return {"history": hist, "history_latents": padded, "history_lengths": lengths, "x0": x0, "eps": eps, "t": t,
            "context": context_table(text, config.text_tokens, device)(flat, events), "action": flat}


class PretrainStream(IndexedStream):
    """Batch i: `batch_size` clips drawn from a pool of rendered, encoded clips; k drawn per clip."""

    def __init__(self, source: SimClipSource, vae: nn.Module, text, config: WorldModelConfig, cfg: PretrainConfig,
                 rank: int = 0):
        self.text, self.config, self.cfg = text, config, cfg
        self.pool = ClipPool(source, max(cfg.pool_clips, cfg.batch_size), cfg.clip_steps, cfg.batch_size,
                             cfg.pool_reuse, cfg.seed, rank, encode=lambda clips: encode_clips(vae, clips.frames))
        super().__init__(self.make)  # batch i = make(i); the stream's state is i

    def make(self, i: int) -> dict[str, Any]:
        clips, latents, pick, gen = self.pool.draw(i)
        k = torch.randint(self.cfg.clip_steps, (self.cfg.batch_size,), generator=gen, device=gen.device).tolist()
        return flow_batch(latents[pick], select(clips, pick), k, self.text, self.config, self.cfg, gen)


def dit_state(module_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The DiT's own weights from a FlowMatchingModule state (or EMA shadow): names without 'dit.'."""
    return {k[len("dit."):]: v for k, v in module_state.items() if k.startswith("dit.")}


def dit_ema_state(trainer: Trainer) -> dict[str, torch.Tensor] | None:
    """The EMA weights of the DiT inside a FlowMatchingModule trainer (names without 'dit.')."""
    if trainer.ema is None:
        return None
    return dit_state(trainer.ema.state_dict()["shadow"])


def train_pretrain(model_config: WorldModelConfig, dit: nn.Module, vae: nn.Module, text, cfg: PretrainConfig,
                   out: str | Path, *, source: SimClipSource, info: D.DistInfo,
                   deadline: float | None = None) -> Trainer:
    """Trains (or resumes from `out/`) `dit` in place; returns the trainer (EMA, curves, step)."""
    vae = vae.to(info.device).eval().requires_grad_(False)
    stream = PretrainStream(source, vae, text, model_config, cfg, info.rank)
    trainer = Trainer(FlowMatchingModule(dit, cfg.memory), cfg.trainer, Path(out), info=info, name="pretrain")
    trainer.resume(stream)
    trainer.fit(stream, deadline=deadline)
    return trainer
