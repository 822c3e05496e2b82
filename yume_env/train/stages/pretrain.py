"""Stage `pretrain`: denoise the next chunk given a (noised) history, actions and events.

One batch = simulator clips (or recorded clips) encoded by the world's codec. A history of k steps
(the start frame and k chunks, the same k for the batch) becomes a `History` exactly as the env
builds one (TSCM bands, channel-stream sums, dead-reckoned poses, recalled views); the chunk of
step k is the target, conditioned on that step's action and event:

    x_t = (1 - t) x0 + t eps
    velocity worlds: loss = MSE(dit(x_t, t), eps - x0)
    sample worlds:   loss = mean(w(t) * (dit(x_t, t) - x0)^2),  w = 1 / max(t, t_min)^2

(the second is the velocity loss written for a DiT that predicts the clean chunk). t is
logit-normal, mixed with the sampler's own noise levels. The history is noised too, to a level
drawn per example and told to the DiT (GameNGen's noise augmentation): at play time the history is
the world's own imperfect output, and a world trained only on clean history drifts. A share of
the clips ends by coming back to a view (a loop, a turn away and back), and a share of batches
targets that return, so the world learns to read its memory (`History` recalls the old view).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from yume_env.data.sim_clips import ClipPool, Clips, IndexedStream, SimClipSource, select
from yume_env.model import sampler
from yume_env.model.config import WorldModelConfig
from yume_env.model.history import History
from yume_env.model.vae import encode_clips
from yume_env.motion import clip_poses
from yume_env.train import distributed as D
from yume_env.train.clip_batches import contexts, flat_actions
from yume_env.train.trainer import Trainer, TrainerConfig


@dataclass
class PretrainConfig:
    trainer: TrainerConfig = field(
        default_factory=lambda: TrainerConfig(
            lr=4e-4, warmup_steps=200, max_steps=50_000, ema_decay=0.999, weight_decay=0.01
        )
    )
    batch_size: int = 64
    clip_steps: int = 20  # env steps per clip; the history length k is drawn from [0, clip_steps)
    pool_clips: int = 256  # clips rendered per call of the simulator (see sim_clips.ClipPool)
    pool_reuse: float = 2.0  # times each pooled clip is drawn (on average)
    history_noise_max: float = 0.3  # the history's flow noise level: U(0, max) ...
    history_noise_prob: float = 0.7  # ... for this share of the examples, else clean
    t_logit_mean: float = 0.0
    t_logit_std: float = 1.0
    sampler_t_fraction: float = 0.3  # share of examples at the sampler's own noise levels
    t_min: float = 0.05  # sample worlds: the loss weight 1 / max(t, t_min)^2 stops growing here
    revisit_fraction: float = 0.0  # share of clips that end by coming back to a view they saw
    return_batches: float = 0.0  # share of batches whose target is the clips' last chunk (the return)
    seed: int = 0


def flow_loss(
    out: torch.Tensor,
    x_t: torch.Tensor,
    x0: torch.Tensor,
    eps: torch.Tensor,
    t: torch.Tensor,
    prediction: str,
    t_min: float,
) -> torch.Tensor:
    """The denoising loss of a DiT output (see the module docstring)."""
    if prediction == "velocity":
        return (out.float() - (eps - x0)).square().mean()
    w = 1.0 / t.float().clamp_min(t_min).square()
    return (w.view(-1, 1, 1, 1, 1) * (out.float() - x0).square()).mean()


class DenoiseModule(nn.Module):
    """forward(batch) -> (loss, metrics): the denoising loss of `dit` on one batch (`PretrainStream`).

    Only the DiT is a submodule (what DDP/FSDP and EMA see)."""

    def __init__(self, dit: nn.Module, config: WorldModelConfig, t_min: float = 0.05):
        super().__init__()
        self.dit, self.config, self.t_min = dit, config, float(t_min)

    def predict(self, batch: dict[str, Any], x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The DiT's output for the batch's target chunk noised to x_t at levels t (B,), given its
        history, action and event, as the env's world step reads them."""
        c = self.config
        history = History.empty(c, x_t[0, :, 0], batch=x_t.shape[0])
        history.append(self.dit, batch["history"], batch.get("history_poses"))
        tokens = history.read(self.dit, target=batch.get("target_pose"), noise_level=batch["history_noise"])
        kw = {"action": batch["action"]} if self.dit.action_embedding is not None else {}
        if c.frame_conditioning:  # the newest history frame, noised like the rest of the history
            kw["frame"] = batch["history"][:, :, -1:]
        return self.dit(x_t, t * 1000.0, batch["context"], tokens, history.memory, **kw)

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.config
        x0, eps, t = batch["x0"], batch["eps"], batch["t"]
        tt = t.view(-1, 1, 1, 1, 1)
        x_t = (1.0 - tt) * x0 + tt * eps
        out = self.predict(batch, x_t, t)
        loss = flow_loss(out, x_t, x0, eps, t, c.prediction, self.t_min)
        with torch.no_grad():  # the clean chunk the output implies: a scale-free quality signal
            x0_err = (sampler.clean_sample(out.float(), x_t, t, c.prediction) - x0).square().mean()
        return loss, {"x0_mse": x0_err}


def sample_t(n: int, cfg: PretrainConfig, config: WorldModelConfig, gen: torch.Generator, device) -> torch.Tensor:
    """Logit-normal t, with `sampler_t_fraction` of the draws at the sampler's own noise levels."""
    t = torch.sigmoid(cfg.t_logit_mean + cfg.t_logit_std * torch.randn(n, generator=gen, device=gen.device))
    own = sampler.sigma_schedule(config.sample_steps, config.shift)[:-1].float().to(gen.device)
    pick = own[torch.randint(len(own), (n,), generator=gen, device=gen.device)]
    use = torch.rand(n, generator=gen, device=gen.device) < cfg.sampler_t_fraction
    return torch.where(use, pick, t).clamp(1e-3, 1.0).to(device)


def history_noise_levels(n: int, cfg: PretrainConfig, gen: torch.Generator) -> torch.Tensor:
    """(n,) noise levels of the examples' histories: U(0, max) for `history_noise_prob` of them, else 0."""
    use = torch.rand(n, generator=gen, device=gen.device) < cfg.history_noise_prob
    level = torch.rand(n, generator=gen, device=gen.device) * cfg.history_noise_max
    return torch.where(use, level, torch.zeros_like(level))


def denoise_batch(
    latents: torch.Tensor,
    clips: Clips,
    k: int,
    text,
    config: WorldModelConfig,
    cfg: PretrainConfig,
    gen: torch.Generator,
    poses: torch.Tensor | None = None,
) -> dict[str, Any]:
    """The batch whose targets are the chunks of step k of the clips (latents (B, C, T, h, w)).
    `poses`: the clips' frame poses (`motion.clip_poses` of at least k + 1 steps) when the caller
    has them, else they are dead-reckoned here."""
    Fc, device, B = config.latent_frames_per_chunk, latents.device, latents.shape[0]
    n = 1 + Fc * k
    history = latents[:, :, :n]
    level = history_noise_levels(B, cfg, gen).to(device)
    if n and cfg.history_noise_max > 0:
        noise = torch.randn(history.shape, generator=gen, device=gen.device).to(device)
        lv = level.view(B, 1, 1, 1, 1)
        history = (1.0 - lv) * history + lv * noise
    x0 = latents[:, :, n : n + Fc]
    batch = {
        "history": history,
        "history_noise": level,
        "x0": x0,
        "eps": torch.randn(x0.shape, generator=gen, device=gen.device).to(device),
        "t": sample_t(B, cfg, config, gen, device),
        "action": flat_actions(clips, [k] * B, config.vocabulary).to(device),
        "context": contexts(text, clips, [k] * B, config.text_tokens, device, config.vocabulary),
    }
    if config.pose_memory:  # dead-reckoned from the actions, as the env does (no walls)
        if poses is None:
            poses = clip_poses(clips.actions[:, : k + 1].to(device), Fc)
        poses = poses[:, : n + Fc].to(device)
        batch["history_poses"], batch["target_pose"] = poses[:, :n], poses[:, -1]
    return batch


class PretrainStream(IndexedStream):
    """Batch i: `batch_size` clips drawn from a pool of rendered, encoded clips; one history length
    k per batch (the clips' last step for a `return_batches` share of them)."""

    def __init__(
        self, source: SimClipSource, vae: nn.Module, text, config: WorldModelConfig, cfg: PretrainConfig, rank: int = 0
    ):
        if cfg.revisit_fraction > 0:
            if not isinstance(source, SimClipSource):
                raise ValueError("revisit_fraction scripts the clips' actions: train on simulator clips")
            from dataclasses import replace

            source = source.replace(policy=replace(source.policy, revisit_fraction=cfg.revisit_fraction))
        self.text, self.config, self.cfg, self.vae = text, config, cfg, vae
        # the pool keeps frames; each batch encodes its own clips (a pixel codec only reshapes them,
        # and a pool of encoded clips would hold four times its frames' bytes). The clips' poses are
        # dead-reckoned once per pool (a loop over the steps), not once per batch.
        Fc = config.latent_frames_per_chunk
        poses = (lambda c: clip_poses(c.actions, Fc)) if config.pose_memory else None
        self.pool = ClipPool(
            source,
            max(cfg.pool_clips, cfg.batch_size),
            cfg.clip_steps,
            cfg.batch_size,
            cfg.pool_reuse,
            cfg.seed,
            rank,
            encode=poses,
        )
        super().__init__(self.make)  # batch i = make(i); the stream's state is i

    def make(self, i: int) -> dict[str, Any]:
        pool, poses, pick, gen = self.pool.draw(i)
        steps = self.cfg.clip_steps
        k = int(torch.randint(steps, (), generator=gen, device=gen.device))
        if float(torch.rand((), generator=gen, device=gen.device)) < self.cfg.return_batches:
            k = steps - 1
        clips = select(pool, pick)
        frames = clips.frames[:, : 1 + clips.sub_frames * (k + 1)]  # the history and the target chunk
        poses = None if poses is None else poses[pick]
        return denoise_batch(encode_clips(self.vae, frames), clips, k, self.text, self.config, self.cfg, gen, poses)


def dit_state(module_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The DiT's own weights from a DenoiseModule state (or EMA shadow): names without 'dit.'."""
    return {k[len("dit.") :]: v for k, v in module_state.items() if k.startswith("dit.")}


def train_pretrain(
    model_config: WorldModelConfig,
    dit: nn.Module,
    vae: nn.Module,
    text,
    cfg: PretrainConfig,
    out: str | Path,
    *,
    source: SimClipSource,
    info: D.DistInfo,
    deadline: float | None = None,
) -> Trainer:
    """Trains (or resumes from `out/`) `dit` in place; returns the trainer (EMA, curves, step)."""
    vae = vae.to(info.device).eval().requires_grad_(False)
    stream = PretrainStream(source, vae, text, model_config, cfg, info.rank)
    trainer = Trainer(DenoiseModule(dit, model_config, cfg.t_min), cfg.trainer, Path(out), info=info, name="pretrain")
    trainer.resume(stream)
    trainer.fit(stream, deadline=deadline)
    return trainer
