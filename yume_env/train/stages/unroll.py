"""Stage `unroll`: a one-step world trained on its own rollouts against the simulator.

Self-forcing for a one-step model (Yume1.5 fine-tunes on self-generated history; a one-step
model makes that history cheap, one forward per chunk). Per batch: `b` simulator chunks of
history, then the model unrolls `m` chunks under the clips' actions and events, each from its
own previous outputs, and every unrolled chunk is scored against the simulator's:

    x0_j = eps_j - dit(eps_j, sigma=1 | history_j)      # the one Euler step the env takes
    loss = mean_j  latent_weight * MSE(x0_j, z_j) + pixel_weight * MSE(decode(x0_j), frames_j)
    history_{j+1} = history_j + [x0_j.detach()]

Gradients flow through each chunk's own forward, not through the history (as Self-Forcing
does, and so memory stays bounded). The target is the simulator's chunk for the same actions,
so the model learns to pull a drifted history back to the world instead of compounding it. A
one-step model scored on the truth predicts the mean of the futures it cannot tell apart:
where the simulator is deterministic (what was seen, the effect of a key) that is sharp, where
it is not (what a turn reveals) it blurs. The pixel term scores what PSNR measures: the decoded
frames.

That mean is also why pure regression damps motion (measured: the inverse-dynamics probe read
"no key" for most unrolled steps). The optional motion term (`motion_weight`, `probes`)
scores motion directly: a frozen inverse-dynamics network, trained on simulator frames
(`yume-env eval train-probes`), reads the key and camera move of each unrolled step, from the
previous step's last frame to this one's, and the world is trained so that reading matches what
the same network reads from the simulator's step (KL of the two distributions, keys + camera).
The target is the network's reading of the truth, not the commanded action, so a walk into a
wall is asked to stay still as the simulator does.

The optional event term (`event_weight`) does the same for text events with the folder's event
classifier: KL(its reading of the simulator's last frame of the chunk || of the generated one).
A one-step regression blurs a thin event (rain, a ghost) into the mean of the clips with and
without it; the classifier asks for the event to be legible. With the term on, the clips get
events more often and mostly mid-clip (`EVENT_TERM_PLAN`), so the unrolled chunks see onsets.
`event_balanced` averages the KL per class the simulator's frames show, so a rare, small event (a
ghost) weighs as much as the frames without any; `event_mix` (e.g. ghost 4) draws that event more
often, so more of its onsets fall inside the unrolled chunks.

The ghost is the one event a classifier KL could not teach (the world learnt to fool the
classifier in the loop instead). It is a thin sprite of about 1-2 % of the frame, so plain
pixel MSE barely sees it. `ghost_weight` w weighs the pixels the ghost covers in the simulator's
frames (which the simulator knows exactly: `Clips.ghost`) 1 + w times in the pixel term, a
signal tied to the truth's pixels that cannot be met by fooling a network.

The optional adversarial term (`adversarial_weight`) asks for steps that look like the
simulator's instead of the mean of the possible ones: a critic (`critic.py`), trained beside the
world on the same steps, scores (frame before, the step's frames, action) real or generated, and
the world is trained to be scored real. Its weight ramps up over `adversarial_warmup` steps, so
the critic has learnt something before the world follows it.

`spread_in_loop` unrolls a world whose config keeps its chunks' spread (`spread_gain_max` > 1,
`yume_env.model.spread`) the way the env runs it: each unrolled chunk is rescaled as the env would
(not within `EVENT_SETTLE_CHUNKS` of a clip's event change) before it is fed back as history; the
losses still score the raw prediction. It is off by default because it was measured to undo the
guard's gain (docs/training.md): regression adapts the world to the rescaled histories by
flattening its predictions further (keys read back fell from 0.69 to 0.34 in an 8-minute run;
scoring the rescaled chunk itself took them to 0.24).

The optional spread term (`spread_weight`, `band_spread.py`) asks each unrolled chunk for the
truth's per-channel spread in each spatial band: a statistic, not a place, so unlike MSE it does
not pull an uncertain chunk toward the mean of its futures. It trains into the world what the
env's guard (`spread_gain_max`) does after the fact.

Recall (`revisit_fraction`): a share of the clips end with a move that comes back to a view they
saw, a loop or a turn away and back (`batches.revisit_script`, the evaluation's memory measures),
and `revisit_batches` of the batches unroll the clips' last chunks, so the unrolled return is
scored against the view the history holds. Random walks rarely come back, so a world trained on
them alone has no reason to read its old frames (docs/eval.md, *What the memory recalls*). The
clips are `revisit_steps` long (a loop needs 36 steps and more); the other batches still unroll
after 0-`max_burn_in` steps, as without revisits, and mid-clip events start in those first steps
(`clip_steps`, `clip_events`). Every revisit run measured so far lost events (91 % -> 69-77 %),
with `max_burn_in` 40 and with this (docs/training.md, *Training recall*); the event term with the
ghost's pixel weight brought them back (`--revisit-steps 48`, docs/training.md, *Recalled views*).

Pose memory (a world with `pose_memory`, e.g. `--pose-memory`): each history frame's pose, dead-
reckoned from the clip's actions as the env does, is given relative to the unrolled chunk's, so
the return of a revisit can find the frame that looked the same way (`model/pose_memory.py`).
A world that recalls views (`recall_frames`) fills the env's bank of old views as it unrolls
(`model/recall.py`). `recall_weight` w weighs 1 + w times, in the latent and pixel terms, the
examples whose bank holds a view of the place the chunk ends at (pose distance < 1): the chunks
where the answer is in the memory, a few in a batch of revisits, which the uniform mean leaves
to the many chunks that see new ground.

Measure such a world with probes trained apart from the ones in the loop (another seed and
data), or the score can be gamed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from yume_env import motion
from yume_env.actions import NUM_CAMERAS
from yume_env.model import pose_memory, spread
from yume_env.model.config import WorldModelConfig
from yume_env.model.recall import RecallBank, fill_bank, has_entries, sharp_frames
from yume_env.model.vae import frames_to_tensor
from yume_env.train import distributed as D
from yume_env.data.sim_clips import ClipPool, EventPlan, IndexedStream, SimClipSource, select
from yume_env.eval.probes import Probes, to_probe_size
from yume_env.model.vae import encode_clips
from yume_env.train.stages import band_spread, critic as critic_mod
from yume_env.train.stages.frozen_aside import DiTWithFrozen
from yume_env.train.stages.pretrain import action_kwargs, contexts
from yume_env.train.trainer import Trainer, TrainerConfig


@dataclass
class UnrollConfig:
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        lr=5e-5, warmup_steps=50, max_steps=50_000, ema_decay=0.999, weight_decay=0.0))
    batch_size: int = 64
    max_burn_in: int = 4  # simulator chunks before the unrolled ones: b in [0, max_burn_in]
    min_unrolled: int = 2  # unrolled chunks: m in [min_unrolled, max_unrolled]
    max_unrolled: int = 8
    latent_weight: float = 1.0
    pixel_weight: float = 10.0  # pixels in [-1, 1]: MSE 0.04 is 20 dB; x10 puts both terms on one scale
    pool_clips: int = 256  # see batches.ClipPool (clips of max_burn_in + max_unrolled steps)
    pool_reuse: float = 2.0
    memory: bool = True  # channel stream on (when the model has one)
    probes: str | None = None  # a probe folder (yume-env eval train-probes --out DIR), for the two terms below
    motion_weight: float = 0.0  # the motion term (module docstring); needs probes
    event_weight: float = 0.0  # the event term (module docstring); needs probes
    event_balanced: bool = False  # the event KL averaged per class the simulator's frames show (rare events count as much as none)
    events: EventPlan | None = None  # the clips' events (None: the source's, or EVENT_TERM_PLAN with the event term)
    event_mix: tuple[tuple[str, float], ...] = ()  # relative weights of the clips' events, e.g. (("ghost", 4.0),)
    ghost_weight: float = 0.0  # the ghost's pixels weigh 1 + ghost_weight in the pixel term (module docstring)
    recall_weight: float = 0.0  # chunks whose bank holds a view of their place weigh 1 + recall_weight (module docstring)
    adversarial_weight: float = 0.0  # the adversarial term (module docstring; critic.py)
    adversarial_warmup: int = 100  # steps over which the term's weight ramps from 0 (the critic learns first)
    critic_width: int = 32  # the critic's first feature width (then 2x, 4x)
    critic_lr_scale: float = 4.0  # the critic's learning rate, in multiples of the world's
    spread_in_loop: bool = False  # feed back chunks rescaled as the env keeps them (module docstring)
    spread_weight: float = 0.0  # the spread term: each chunk's per-band spread against the truth's (band_spread.py)
    revisit_fraction: float = 0.0  # share of clips that end by coming back to a view (module docstring)
    revisit_batches: float = 0.5  # with revisits: share of batches whose unrolled chunks are the clips' last ones
    revisit_steps: int = 0  # with revisits: clips this long (a loop needs 36+); other batches still read their first steps
    pose_lr_scale: float = 1.0  # the pose embedding's learning rate, in multiples of the world's (it starts at zero)
    seed: int = 2


# With the event term: 60 % of clips get an event, three in four of them starting mid-clip, so
# about a third of the batches' events begin inside the unrolled chunks (the source's default
# plan, 40 % and half from the start, leaves too few onsets to learn from).
EVENT_TERM_PLAN = EventPlan(probability=0.6, from_start=0.25)


def dit_lr_scales(cfg: UnrollConfig) -> dict[str, float]:
    """DiT weight-name prefixes that learn at a scaled rate (`DiTWithFrozen.dit_lr_scales`): the
    pose embedding, which starts at zero inside a trained world."""
    return {"pose_embedding.": cfg.pose_lr_scale}


def _window(cfg: UnrollConfig) -> int:
    """Steps a batch without revisits reads: the burn-in and the unrolled chunks, at most."""
    return cfg.max_burn_in + cfg.max_unrolled


def clip_steps(cfg: UnrollConfig) -> int:
    """Steps per rendered clip: the burn-in and unrolled chunks, or `revisit_steps` with revisits."""
    return max(_window(cfg), cfg.revisit_steps) if cfg.revisit_fraction > 0 else _window(cfg)


def clip_events(cfg: UnrollConfig, source_plan: EventPlan | None = None) -> EventPlan | None:
    """The event plan of the run's clips (None: the source's own, `source_plan`). Clips longer than
    the burn-in and unrolled window start their mid-clip events inside that window."""
    plan = cfg.events or (EVENT_TERM_PLAN if cfg.event_weight > 0 else None)
    if cfg.event_mix:
        plan = dataclasses.replace(plan or source_plan or EventPlan(), mix=cfg.event_mix)
    if clip_steps(cfg) > _window(cfg):
        plan = dataclasses.replace(plan or source_plan or EventPlan(), latest_start=_window(cfg))
    return plan


class UnrollModule(DiTWithFrozen):
    """forward(batch) -> (loss, metrics). Only the DiT is a submodule (what DDP and EMA see); the
    frozen VAE (pixel and probe terms), inverse-dynamics network (motion term) and event
    classifier (event term) are held outside the module tree. The adversarial term's critic is
    trained, so it is a submodule too (`critic.`), in its own optimizer group."""

    def __init__(self, dit: nn.Module, vae: nn.Module, latent_weight: float = 1.0, pixel_weight: float = 0.0,
                 memory: bool = True, idm: nn.Module | None = None, motion_weight: float = 0.0,
                 event_classifier: nn.Module | None = None, event_weight: float = 0.0, event_balanced: bool = False,
                 ghost_weight: float = 0.0, critic: nn.Module | None = None, adversarial_weight: float = 0.0,
                 adversarial_warmup: int = 0, critic_lr_scale: float = 1.0, spread_in_loop: bool = False,
                 spread_weight: float = 0.0, dit_lr_scales: dict[str, float] | None = None,
                 recall_weight: float = 0.0):
        if adversarial_weight > 0 and critic is None:
            raise ValueError("the adversarial term (adversarial_weight > 0) needs a critic (critic.TransitionCritic)")
        if ghost_weight > 0 and pixel_weight <= 0:
            raise ValueError("ghost_weight weighs the ghost's pixels in the pixel term; it needs pixel_weight > 0")
        if motion_weight > 0 and idm is None:
            raise ValueError("the motion term (motion_weight > 0) needs an inverse-dynamics network (probes)")
        if event_weight > 0 and event_classifier is None:
            raise ValueError("the event term (event_weight > 0) needs an event classifier (probes)")
        if recall_weight > 0 and not getattr(dit.config, "recall_frames", 0):
            raise ValueError("recall_weight weighs the chunks whose recall bank holds a view of their place; it needs "
                             "a world that recalls views (recall_frames > 0: --recall-frames N)")
        frozen = {"vae": vae, "idm": idm, "event_classifier": event_classifier}
        super().__init__(dit, critic if adversarial_weight > 0 else None, critic_lr_scale,
                         dit_lr_scales, **{k: m for k, m in frozen.items() if m is not None})
        self.latent_weight, self.pixel_weight = float(latent_weight), float(pixel_weight)
        self.motion_weight, self.event_weight = float(motion_weight), float(event_weight)
        self.event_balanced = bool(event_balanced)
        self.ghost_weight = float(ghost_weight)
        self.recall_weight = float(recall_weight)
        self.memory = bool(memory) and bool(dit.config.memory_enabled)
        self.adversarial_weight, self.adversarial_warmup = float(adversarial_weight), int(adversarial_warmup)
        self.spread_weight = float(spread_weight)
        # the env's guard on the fed-back history (module docstring); 1 = none
        self.spread_gain = float(getattr(dit.config, "spread_gain_max", 1.0)) if spread_in_loop else 1.0

    @property
    def vae(self) -> nn.Module:
        return self.frozen("vae")

    def motion_kl(self, before: torch.Tensor, after: torch.Tensor, sim_before: torch.Tensor,
                  sim_after: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """KL(probe reading of the simulator's step || of the generated step), keys + camera, and
        the fraction of steps whose two most likely (key, camera) readings agree. Frames (B, 3, H, W)."""
        idm = self.frozen("idm")
        with torch.no_grad():
            sim = idm(to_probe_size(sim_before), to_probe_size(sim_after))
        return _reading_kl(idm(to_probe_size(before), to_probe_size(after.clamp(-1, 1))), sim)

    def event_kl(self, frame: torch.Tensor, sim_frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """KL(event classifier's reading of the simulator's frame || of the generated frame), and
        the fraction of frames whose most likely classes agree. Frames (B, 3, H, W)."""
        classify = self.frozen("event_classifier")
        with torch.no_grad():
            sim = classify(to_probe_size(sim_frame))
        weights = _class_balance(sim.argmax(1)) if self.event_balanced else None
        return _reading_kl([classify(to_probe_size(frame.clamp(-1, 1)))], [sim], weights)

    def adversarial(self, before: torch.Tensor, frames: torch.Tensor, sim_before: torch.Tensor,
                    sim_frames: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The critic's hinge loss on this step (generated frames detached) plus the world's term
        (through the critic's detached weights), and the two sides' mean scores. Frames (B, 3, F, H, W)."""
        fake = frames.clamp(-1, 1)
        real_logits = self.critic(sim_before, sim_frames, action)
        fake_logits = self.critic(before.detach(), fake.detach(), action)
        world = critic_mod.generator_loss(critic_mod.generator_logits(self.critic, before.detach(), fake, action))
        ramp = 1.0 if self.adversarial_warmup <= 0 else (  # a tensor: the warm-up costs no device sync
            self.critic.updates.float() / self.adversarial_warmup).clamp(max=1.0)
        critic = critic_mod.critic_loss(real_logits, fake_logits)
        return critic + ramp * self.adversarial_weight * world, {"critic_loss": critic.detach(),
                      "adversarial_loss": world.detach(), "critic_real_score": real_logits.detach().float().mean(),
                      "critic_fake_score": fake_logits.detach().float().mean()}

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        history = batch["history"]  # (B, C, N, h, w): the simulator's burn-in
        B = history.shape[0]
        t = torch.full((B,), 1000.0, device=history.device)  # sigma 1: the one step starts from noise
        total, lat_sum, pix_sum, last_pix = 0.0, 0.0, 0.0, None
        kl_sum, agree_sum, ev_sum, ev_agree_sum, spread_sum, seen_sum = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
        adversarial = self.critic is not None
        decode = self.pixel_weight > 0 or self.motion_weight > 0 or self.event_weight > 0 or adversarial
        adv_sums: dict[str, torch.Tensor] = {}
        before = sim_before = batch.get("before")  # the last frame before the first unrolled step
        m = len(batch["targets"])
        recall_frames = self.dit.config.recall_frames
        # recall: the env's bank, filled with the same frames as they leave the sharp window (recall.py)
        bank = RecallBank.empty(B, history[0, :, 0]) if recall_frames else None
        for j in range(m):
            # the channel stream of the whole history again, in one batched op: cheaper than B per-world updates
            memory = self.dit.memory_summaries(history, [history.shape[2]] * B) if self.memory else None
            poses, n = None, history.shape[2]
            if "frame_poses" in batch:  # pose memory: the history's poses seen from this chunk's last frame
                target = batch["frame_poses"][:, n + batch["targets"][j].shape[2] - 1]
                poses = list(pose_memory.relative_features(batch["frame_poses"][:, :n], target).unbind(0))
            recalled, rows = None, None  # rows: (B, 1, 1, 1, 1) weights of the examples' latent and pixel terms
            if bank is not None:
                fill_bank(bank, history, batch["frame_poses"], max(0, n - sharp_frames(self.dit.config.tscm_schedule)))
                if has_entries(n, self.dit.config.tscm_schedule):  # the worlds share one length
                    lat, feats = bank.recall(target, recall_frames)
                    recalled = list(zip(lat.unbind(0), feats.unbind(0)))
                    if self.recall_weight > 0:
                        seen = (bank.nearest_distance(target) < 1.0).float()
                        rows, seen_sum = (1 + self.recall_weight * seen).view(-1, 1, 1, 1, 1), seen_sum + seen.mean()
            hist = self.dit.encode_history(list(history), memory, poses=poses, recall=recalled)
            eps = batch["eps"][j]
            v = self.dit(eps, t, batch["context"][j], hist, memory, **action_kwargs(self.dit, batch["action"][j])).float()
            x0 = eps - v
            lat_err = (x0 - batch["targets"][j]).square()
            lat = lat_err.mean()  # reported as is; the loss may weigh the recalling examples more
            loss = self.latent_weight * (lat if rows is None else (lat_err * rows).mean())
            if self.spread_weight > 0:
                sp = band_spread.band_spread_loss(x0, batch["targets"][j])
                loss = loss + self.spread_weight * sp
                spread_sum = spread_sum + sp.detach()
            if decode:
                cache = self.vae.start_stream(history[:, :, -1:].detach())  # decode as the env does: after the last latent
                frames = self.vae.decode_chunk(x0, cache)[0].float()
            if self.pixel_weight > 0:
                err = (frames - batch["frames"][j]).square()
                pix = err.mean()  # what PSNR reads; the loss may weigh the ghost's pixels and recalling examples more
                if self.ghost_weight > 0:
                    err = err * (1 + self.ghost_weight * batch["ghost"][j])
                if rows is not None:
                    err = err * rows
                loss = loss + self.pixel_weight * err.mean()
                pix_sum, last_pix = pix_sum + pix.detach(), pix.detach()
            if decode:  # the chunk's last frame, generated and the simulator's: what the probe terms read
                last, sim_last = frames[:, :, -1], batch["frames"][j][:, :, -1]
            if self.motion_weight > 0:
                kl, agree = self.motion_kl(before, last, sim_before, sim_last)
                loss = loss + self.motion_weight * kl
                kl_sum, agree_sum = kl_sum + kl.detach(), agree_sum + agree
            if adversarial:
                adv, parts = self.adversarial(before, frames, sim_before, batch["frames"][j], batch["action"][j])
                loss = loss + adv
                adv_sums = {k: adv_sums.get(k, 0.0) + v for k, v in parts.items()}
            if self.motion_weight > 0 or adversarial:
                before, sim_before = last.detach().clamp(-1, 1), sim_last
            if self.event_weight > 0:
                kl, agree = self.event_kl(last, sim_last)
                loss = loss + self.event_weight * kl
                ev_sum, ev_agree_sum = ev_sum + kl.detach(), ev_agree_sum + agree
            total, lat_sum = total + loss, lat_sum + lat.detach()
            fed = x0.detach()
            if self.spread_gain > 1.0:  # the history the env would keep (module docstring); the losses read x0
                reference = spread.reference_spread(list(history), self.dit.config.latent_frames_per_chunk)
                fed = spread.keep_spread(fed, reference, self.spread_gain, batch["spread_active"][j])
            history = torch.cat([history, fed], dim=2)
        metrics = {"latent_mse": lat_sum / m, "last_chunk_latent_mse": lat.detach()}
        if last_pix is not None:  # PSNR of [-1, 1] pixels: range 2
            metrics["pixel_psnr_db"] = 10 * torch.log10(4.0 / (pix_sum / m).clamp_min(1e-10))
            metrics["last_chunk_psnr_db"] = 10 * torch.log10(4.0 / last_pix.clamp_min(1e-10))
        if self.spread_weight > 0:
            metrics["band_spread_loss"] = spread_sum / m
        if self.recall_weight > 0:  # share of examples whose bank held a view of their place, per unrolled chunk
            metrics["recall_seen_share"] = torch.as_tensor(seen_sum / m)
        if self.motion_weight > 0:
            metrics["motion_kl"], metrics["motion_agreement"] = kl_sum / m, agree_sum / m
        if self.event_weight > 0:
            metrics["event_kl"], metrics["event_agreement"] = ev_sum / m, ev_agree_sum / m
        metrics.update({k: v / m for k, v in adv_sums.items()})
        if adversarial and self.training:
            self.critic.updates += 1
        return total / m, metrics


def _reading_kl(gen_logits, sim_logits, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed KL(sim || gen) over a probe's heads, averaged over rows (with `weights` (B,) summing
    to 1: their weighted sum), and the fraction of rows where every head's top class agrees."""
    gen = [F.log_softmax(x.float(), 1) for x in gen_logits]
    sim = [F.log_softmax(x.float(), 1) for x in sim_logits]
    rows = sum(F.kl_div(g, t, log_target=True, reduction="none").sum(1) for g, t in zip(gen, sim))
    kl = rows.mean() if weights is None else (rows * weights).sum()
    agree = torch.stack([g.argmax(1) == t.argmax(1) for g, t in zip(gen, sim)]).all(0).float().mean()
    return kl, agree


def _class_balance(labels: torch.Tensor) -> torch.Tensor:
    """(B,) weights summing to 1 that give each class present in `labels` the same total."""
    classes, inverse, counts = labels.unique(return_inverse=True, return_counts=True)
    return 1.0 / (counts[inverse].float() * len(classes))


class UnrollStream(IndexedStream):
    """Batch i: clips (seed i) cut into b burn-in chunks and m chunks to unroll, with the noise,
    contexts, actions, target latents and target frames of each unrolled chunk."""

    def __init__(self, source: SimClipSource, vae: nn.Module, text, config: WorldModelConfig, cfg: UnrollConfig,
                 rank: int = 0):
        if cfg.min_unrolled < 1 or cfg.max_unrolled < cfg.min_unrolled:
            raise ValueError(f"unroll needs 1 <= min_unrolled <= max_unrolled, got {cfg.min_unrolled}, {cfg.max_unrolled}")
        self.text, self.config, self.cfg = text, config, cfg
        if not 0.0 <= cfg.revisit_batches <= 1.0:
            raise ValueError(f"revisit_batches is a share of batches in [0, 1], got {cfg.revisit_batches}")
        if cfg.revisit_fraction > 0 and clip_steps(cfg) < 4:
            raise ValueError(f"revisit clips need at least 4 steps, got {clip_steps(cfg)}: raise revisit_steps")
        if cfg.revisit_fraction > 0:
            if not isinstance(source, SimClipSource):
                raise ValueError("revisit_fraction scripts the clips' actions: train on simulator clips")
            source = source.replace(policy=dataclasses.replace(source.policy, revisit_fraction=cfg.revisit_fraction))
        events = clip_events(cfg, getattr(source, "events", None))
        if cfg.ghost_weight > 0 and not isinstance(source, SimClipSource):
            raise ValueError("ghost_weight needs the simulator's ghost masks: train on simulator clips")
        if (events is not None or cfg.ghost_weight > 0) and isinstance(source, SimClipSource):
            # a copy: the caller's source keeps its plan
            source = source.replace(events=events, ghost_masks=True if cfg.ghost_weight > 0 else None)
        self.source = source
        self.pool = ClipPool(source, max(cfg.pool_clips, cfg.batch_size), clip_steps(cfg),
                             cfg.batch_size, cfg.pool_reuse, cfg.seed, rank, encode=lambda clips: encode_clips(vae, clips.frames))
        super().__init__(self.make)  # batch i = make(i); the stream's state is i

    def make(self, i: int) -> dict[str, Any]:
        c, Fc = self.cfg, self.config.latent_frames_per_chunk
        sub = Fc * self.config.temporal_compression  # pixel frames per step
        pool_clips, pool_latents, pick, gen = self.pool.draw(i)
        clips, latents = select(pool_clips, pick), pool_latents[pick]
        draw = lambda lo, hi: int(torch.randint(lo, hi + 1, (), generator=gen, device=gen.device))  # noqa: E731
        b, m = draw(0, c.max_burn_in), draw(c.min_unrolled, c.max_unrolled)
        if c.revisit_fraction > 0 and float(torch.rand((), generator=gen, device=gen.device)) < c.revisit_batches:
            b = clip_steps(c) - m  # the clips' last chunks: where the revisits come back
        device, B = latents.device, c.batch_size
        steps = range(b, b + m)
        batch: dict[str, Any] = {"history": latents[:, :, : 1 + Fc * b], "burn_in": b}
        batch["targets"] = [latents[:, :, 1 + Fc * s: 1 + Fc * (s + 1)] for s in steps]
        pixels = c.pixel_weight > 0 or c.motion_weight > 0 or c.event_weight > 0 or c.adversarial_weight > 0
        batch["frames"] = [frames_to_tensor(clips.frames[:, 1 + sub * s: 1 + sub * (s + 1)], device=device)
                           for s in steps] if pixels else []
        if c.ghost_weight > 0:  # (B, 1, F, H, W) like the frames
            batch["ghost"] = [clips.ghost[:, sub * s: sub * (s + 1), None].transpose(1, 2).float().to(device)
                              for s in steps]
        if c.motion_weight > 0 or c.adversarial_weight > 0:  # the frame the first unrolled step starts from: the end of the burn-in
            batch["before"] = frames_to_tensor(clips.frames[:, sub * b: sub * b + 1], device=device)[:, :, 0]
        batch["context"] = [contexts(self.text, clips, [s] * B, self.config.text_tokens, device) for s in steps]
        batch["action"] = [(clips.actions[:, s, 0] * NUM_CAMERAS + clips.actions[:, s, 1]).to(device) for s in steps]
        batch["eps"] = [torch.randn(x.shape, generator=gen, device=gen.device).to(device) for x in batch["targets"]]
        if self.config.pose_memory:  # dead-reckoned from the actions, as the env does (no collisions)
            batch["frame_poses"] = motion.clip_poses(clips.actions[:, : b + m].to(device), Fc)
        if c.spread_in_loop and self.config.spread_gain_max > 1.0:  # (B,) per unrolled step: would the env keep this chunk's spread?
            batch["spread_active"] = [torch.tensor([event_settled(clips.events[i], s) for i in range(B)], device=device)
                                      for s in steps]
        return batch


def event_settled(events: list[str], step: int) -> bool:
    """Whether the env keeps the spread of chunk `step` of a clip whose chunks have `events`: no event
    change in the `EVENT_SETTLE_CHUNKS` chunks up to it (a clip's first event counts as a change,
    as `init_state` with an event does)."""
    first = max(0, step - spread.EVENT_SETTLE_CHUNKS + 1)
    return all(events[t] == (events[t - 1] if t > 0 else "") for t in range(first, step + 1))


def train_unroll(model_config: WorldModelConfig, dit: nn.Module, vae: nn.Module, text, cfg: UnrollConfig,
                 out: str | Path, *, source: SimClipSource, info: D.DistInfo, deadline: float | None = None) -> Trainer:
    """Trains (or resumes from `out/`) the one-step `dit` in place on its own rollouts; returns the trainer."""
    if int(model_config.sample_steps) != 1:
        raise ValueError(f"unroll trains one-step worlds (config.sample_steps 1), got sample_steps "
                         f"{model_config.sample_steps}; distil the model first (yume-env train distill)")
    if model_config.temporal_compression != 1 and cfg.pixel_weight > 0:
        raise ValueError("unroll's pixel term decodes chunk by chunk with a 1x temporal VAE; "
                         "set pixel_weight 0 for this model")
    terms = [name for name, w in (("motion", cfg.motion_weight), ("event", cfg.event_weight),
                                  ("adversarial", cfg.adversarial_weight)) if w > 0]
    if model_config.temporal_compression != 1 and terms:
        raise ValueError(f"unroll's {' and '.join(terms)} term reads decoded frames chunk by chunk with a 1x "
                         f"temporal VAE; set {' and '.join(t + '_weight' for t in terms)} 0 for this model")
    probes = None
    probe_terms = [t for t in terms if t != "adversarial"]  # the critic is trained here; the probes are read
    if probe_terms:
        if not cfg.probes:
            raise ValueError(f"{' and '.join(t + '_weight' for t in probe_terms)} > 0 needs probes: a folder from "
                             "`yume-env eval train-probes --out DIR`")
        probes = Probes.load(cfg.probes, device=info.device)
    vae = vae.to(info.device).eval().requires_grad_(False)
    stream = UnrollStream(source, vae, text, model_config, cfg, info.rank)
    module = UnrollModule(dit, vae, cfg.latent_weight, cfg.pixel_weight, cfg.memory,
                          probes.inverse_dynamics if cfg.motion_weight > 0 else None, cfg.motion_weight,
                          probes.event_classifier if cfg.event_weight > 0 else None, cfg.event_weight,
                          cfg.event_balanced, cfg.ghost_weight,
                          critic_mod.TransitionCritic(model_config.latent_frames_per_chunk, cfg.critic_width)
                          if cfg.adversarial_weight > 0 else None,
                          cfg.adversarial_weight, cfg.adversarial_warmup, cfg.critic_lr_scale, cfg.spread_in_loop,
                          cfg.spread_weight, dit_lr_scales(cfg), cfg.recall_weight)
    trainer = Trainer(module, cfg.trainer, Path(out), info=info, name="unroll")
    trainer.resume(stream)
    trainer.fit(stream, deadline=deadline)
    return trainer
