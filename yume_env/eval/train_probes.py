"""`yume-env eval train-probes`: trains the inverse-dynamics model and the event classifier on
simulator frames, measures them on held-out episodes and saves them as safetensors.

Presets are data (`PROBE_PRESETS`): "full" is a few minutes on 2 CPU cores, "gpu" (more data, a
wider network) a few minutes on one GPU, "quick" a small run for tests. What ships in
`yume_env/assets/eval_models/` says which in its `probes.json` record.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from yume_env.eval.probe_data import ProbeData, collect_probe_data
from yume_env.eval.probes import Probes, prepare


@dataclass
class ProbeTrainConfig:
    """Data: `episodes` x `steps` simulator steps at `size`x`size`, `sub_frames` per step, seeds from
    `seed` (the evaluation draws its own seeds from 1,000,000 up, so never trains on them), rendered
    `sim_batch` worlds at a time on `device`.
    Training: `iterations` Adam steps of `batch` samples, cosine decay from `lr`; blur and noise
    augmentation with probability `augment` (generated frames are softer than rendered ones).
    `budget_minutes` (optional) caps the whole run: after `FIT_AFTER` steps the step count is cut to
    what fits in the time left, and the cosine schedule is stretched over that count, so a run that
    must end early still ends with a decayed learning rate and saved probes."""

    episodes: int = 200
    steps: int = 48
    size: int = 64
    sub_frames: int = 2
    seed: int = 0
    holdout: float = 0.15
    iterations: int = 2000
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    augment: float = 0.5
    width: int = 16
    hidden: int = 256
    sim_batch: int = 32
    device: str = "cpu"
    data_cache: str | None = None
    init: str | None = None
    budget_minutes: float | None = None

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "ProbeTrainConfig":
        if name not in PROBE_PRESETS:
            raise ValueError(f"unknown probe preset {name!r}; expected one of {sorted(PROBE_PRESETS)}")
        return dataclasses.replace(cls(), **{**PROBE_PRESETS[name], **overrides})


PROBE_PRESETS: dict[str, dict[str, Any]] = {
    "full": {},
    # on a GPU (`--device cuda`): 6x the data, a wider network, bigger batches
    "gpu": {
        "episodes": 6000,
        "iterations": 15000,
        "batch": 256,
        "width": 48,
        "hidden": 512,
        "sim_batch": 500,
        "lr": 1e-3,
    },
    "quick": {"episodes": 24, "steps": 16, "iterations": 150, "batch": 32, "hidden": 128},
}


FIT_AFTER = 200  # steps timed before a budget-limited run fits its step count


def fit_iterations(planned: int, done: int, seconds_per_step: float, seconds_left: float, margin: float = 0.9) -> int:
    """Steps to run in total so the rest fits in `margin` of `seconds_left` (never more than planned)."""
    affordable = int(margin * max(0.0, seconds_left) / max(seconds_per_step, 1e-9))
    return max(done, min(planned, done + affordable))


def _augment(x: torch.Tensor, gen: torch.Generator, p: float) -> torch.Tensor:
    """Random gaussian blur (sigma up to 1.2 px) and noise on a batch of stacked frames
    (N, K, 3, H, W), the same blur for the K frames of one sample. Runs where `x` and `gen` are
    (on a GPU, this host-side work was what bounded the training loop)."""
    n, dev = x.shape[0], x.device
    pick = torch.rand(n, generator=gen, device=gen.device).to(dev) < p
    sigma = 0.3 + 0.9 * torch.rand(n, generator=gen, device=gen.device).to(dev)
    coords = torch.arange(5, dtype=torch.float32, device=dev) - 2
    g = torch.exp(-(coords[None] ** 2) / (2 * sigma[:, None] ** 2))
    g = g / g.sum(1, keepdim=True)  # (N, 5)
    k, c, h, w = x.shape[1:]
    planes = x.reshape(1, n * k * c, h, w)
    gk = g.repeat_interleave(k * c, dim=0)
    blurred = F.conv2d(F.pad(planes, (2, 2, 0, 0), mode="replicate"), gk.view(-1, 1, 1, 5), groups=n * k * c)
    blurred = F.conv2d(F.pad(blurred, (0, 0, 2, 2), mode="replicate"), gk.view(-1, 1, 5, 1), groups=n * k * c)
    blurred = blurred.view_as(x) + 0.03 * torch.randn(x.shape, generator=gen, device=gen.device).to(dev)
    return torch.where(pick.view(n, 1, 1, 1, 1), blurred, x)


def _prepare_stack(frames: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, K, H, W, 3) -> float (N, K, 3, 64, 64) in [-1, 1] on `device`."""
    n, k = frames.shape[:2]
    flat = prepare(frames.reshape(n * k, *frames.shape[2:]), device)
    return flat.reshape(n, k, *flat.shape[1:])


def _batches(n: int, batch: int, gen: torch.Generator):
    while True:
        order = torch.randperm(n, generator=gen)
        for i in range(0, n - batch + 1 if n >= batch else 1, batch):
            yield order[i : i + batch]


@torch.no_grad()
def probe_accuracy(probes: Probes, data: ProbeData) -> dict[str, float]:
    """Accuracy of both probes on `data`: keys, camera moves, both, events."""
    probes.eval()
    pred = probes.predict_actions(data.before, data.after)
    out = {
        "key_accuracy": float((pred[:, 0] == data.actions[:, 0]).mean()) if len(pred) else float("nan"),
        "camera_accuracy": float((pred[:, 1] == data.actions[:, 1]).mean()) if len(pred) else float("nan"),
        "action_accuracy": float((pred == data.actions).all(1).mean()) if len(pred) else float("nan"),
        "transitions": int(len(pred)),
    }
    if len(data.event_frames):
        ev = probes.event_log_probs(data.event_frames).argmax(1)
        out["event_accuracy"] = float((ev == data.event_labels).mean())
    else:
        out["event_accuracy"] = float("nan")
    out["event_frames"] = int(len(data.event_frames))
    return out


def train_probes(
    config: ProbeTrainConfig,
    out: str | Path | None = None,
    progress: bool = True,
    save_dtype: torch.dtype = torch.float32,
) -> Probes:
    """Collect simulator data, train both probes, measure on held-out episodes; save to `out`
    (weights as `save_dtype`)."""
    t0 = time.perf_counter()
    cache = Path(config.data_cache) if config.data_cache else None
    if cache is not None and cache.is_file():
        data = ProbeData.load(cache)
    else:
        data = collect_probe_data(
            config.episodes,
            config.steps,
            config.seed,
            config.size,
            config.sub_frames,
            batch=config.sim_batch,
            device=config.device,
            progress=progress,
        )
        if cache is not None:
            data.save(cache)
    train, held = data.split(config.holdout)
    t_data = time.perf_counter() - t0
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)  # batch order (host indices)
    device = torch.device(config.device)
    aug_gen = torch.Generator(device=device).manual_seed(config.seed)  # augmentation, where the frames are
    if config.init:
        probes = Probes.load(config.init, device=device)
        if probes.event_classes != data.classes:
            raise ValueError(
                f"probes in {config.init} know events {probes.event_classes}, the simulator has {data.classes}"
            )
    else:
        probes = Probes.create(data.classes, config.width, config.hidden, seed=config.seed).to(device)
    params = list(probes.inverse_dynamics.parameters()) + list(probes.event_classifier.parameters())
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    horizon = [config.iterations]  # the cosine's length; a time budget may shorten it once
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, horizon[0]) / horizon[0]))
    )
    # Frames stay uint8 (a quarter of float32's memory); each batch is converted on its own. On a
    # GPU they live there, so a batch is gathered without a host copy.
    pairs = torch.stack([torch.as_tensor(train.before), torch.as_tensor(train.after)], dim=1).to(
        device
    )  # (N, 2, H, W, 3)
    targets = torch.as_tensor(train.actions).to(device)
    ev_x = torch.as_tensor(train.event_frames)[:, None].to(device)  # (M, 1, H, W, 3)
    ev_y = torch.as_tensor(train.event_labels).to(device)
    pair_batches = _batches(len(pairs), config.batch, gen)
    ev_batches = _batches(len(ev_x), config.batch, gen)
    probes.inverse_dynamics.train()
    probes.event_classifier.train()
    losses: list[torch.Tensor] = []  # kept on the device; read back every few steps, not every step
    t_train = time.perf_counter()
    bar = tqdm(total=config.iterations, desc="training probes", disable=not progress)
    step = 0
    while step < horizon[0]:
        i, j = next(pair_batches).to(device), next(ev_batches).to(device)
        x = _augment(_prepare_stack(pairs[i], device), aug_gen, config.augment)
        k_logits, c_logits = probes.inverse_dynamics(x[:, 0], x[:, 1])
        t = targets[i]
        idm_loss = F.cross_entropy(k_logits, t[:, 0]) + F.cross_entropy(c_logits, t[:, 1])
        ev = _augment(_prepare_stack(ev_x[j], device), aug_gen, config.augment)[:, 0]
        ev_loss = F.cross_entropy(probes.event_classifier(ev), ev_y[j])
        loss = idm_loss + ev_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(torch.stack([idm_loss.detach(), ev_loss.detach()]))
        step += 1
        bar.update(1)
        if step % 50 == 0:
            recent = torch.stack(losses[-50:]).mean(0).tolist()
            bar.set_postfix(idm=f"{recent[0]:.3f}", event=f"{recent[1]:.3f}")
        if config.budget_minutes is not None and step == FIT_AFTER:
            elapsed = time.perf_counter() - t0
            per_step = (time.perf_counter() - t_train) / step
            horizon[0] = fit_iterations(config.iterations, step, per_step, 60 * config.budget_minutes - elapsed)
            if horizon[0] < config.iterations:
                bar.total = horizon[0]
                bar.write(f"time budget: {horizon[0]} of {config.iterations} steps fit; the schedule now ends there")
    bar.close()
    losses_np = torch.stack(losses).cpu().numpy() if losses else np.zeros((0, 2))
    probes.eval()
    record = {
        # The cache's file name only: a record never carries one machine's paths.
        "config": {
            **dataclasses.asdict(config),
            "data_cache": cache.name if cache is not None else None,
            "init": Path(config.init).name if config.init else None,
        },
        "train_transitions": int(len(pairs)),
        "train_event_frames": int(len(ev_x)),
        "held_out": probe_accuracy(probes, held),
        "train": probe_accuracy(probes, _head(train, 2000)),
        "iterations_run": int(step),
        "final_losses": {
            "inverse_dynamics": float(losses_np[-50:, 0].mean()),
            "event": float(losses_np[-50:, 1].mean()),
        },
        "data_seconds": round(t_data, 1),
        "train_seconds": round(time.perf_counter() - t0 - t_data, 1),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    probes.record = record
    if out is not None:
        probes.save(out, dtype=save_dtype)
    return probes


def _head(data: ProbeData, n: int) -> ProbeData:
    a = np.arange(len(data.before)) < n
    e = np.arange(len(data.event_frames)) < n
    return data._subset(a, e)
