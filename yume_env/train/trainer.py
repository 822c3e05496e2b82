"""The training loop every stage shares: optimizer, schedule, bf16, accumulation, EMA, checkpoints.

A stage hands the trainer a *train module* (an `nn.Module` whose `forward(batch)` returns
`(loss, metrics)`) and a *stream* of batches (`next()`, `state_dict()`, `load_state_dict()`).
The trainer owns everything else, read top to bottom in `fit`:

    batch -> autocast forward -> loss / accum -> backward  (x accum, DDP sync on the last)
          -> clip -> AdamW step -> EMA update -> log curves -> checkpoint every ~minute

Time is a first-class budget: `budget_s` bounds the stage across calls (the elapsed time is
saved in checkpoints) and `deadline` (a `time.monotonic()` value) bounds this call, so a stage
can be trained in several short commands. The learning rate follows warm-up then a cosine to
`min_lr_ratio`, driven by progress = max(step / max_steps, elapsed / budget_s).

Randomness: a run that starts at step 0 seeds Python, numpy and torch from `config.seed`
(`seeding.seed_everything`, re-exported here) before its first batch; a resumed run restores the
generator states of its checkpoint instead. Seeding before the model is built is the caller's.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from yume_env.train import distributed as D
from yume_env.train.checkpointing import latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from yume_env.train.curves import Curves
from yume_env.train.ema import EMA
from yume_env.train.seeding import seed_everything

__all__ = ["BatchStream", "FitResult", "Trainer", "TrainerConfig", "seed_everything"]


class BatchStream(Protocol):
    def next(self) -> Any: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class TrainerConfig:
    """Loop hyper-parameters shared by all stages (each stage's config holds one)."""

    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    grad_accum: int = 1
    ema_decay: float = 0.999  # 0 switches EMA off
    max_steps: int = 1000
    budget_s: float = 0.0  # 0: no time limit for the stage
    bf16: bool = True  # autocast to bf16 on CUDA (ignored on CPU)
    parallel: str = "none"  # "none" | "ddp" | "fsdp" (under torchrun)
    activation_checkpointing: bool = False
    checkpoint_every_s: float = 60.0
    checkpoint_every_steps: int = 0  # 0: by time only
    keep_checkpoints: int = 1
    optimizer_state_dtype: str = "float32"  # "bfloat16" halves the optimizer moments on disk
    log_every: int = 10
    seed: int = 0  # seeds random, numpy and torch when a run starts at step 0 (see seeding.py)
    logger: str = "json"  # "json": curves in the checkpoints (and RUN/curves/); "tensorboard": TensorBoard events too
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


@dataclass
class FitResult:
    step: int
    finished: bool  # reached max_steps or budget_s (False: stopped at this call's deadline)
    elapsed_s: float
    curves: Curves
    extra: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """Trains `module` (see the module docstring); checkpoints to `ckpt_dir` and resumes from it."""

    def __init__(
        self,
        module: nn.Module,
        config: TrainerConfig,
        ckpt_dir: str | Path | None = None,
        info: D.DistInfo | None = None,
        name: str = "train",
    ):
        self.config = config
        self.info = info or D.DistInfo(device=D.pick_device("auto"))
        self.name = name
        self.ckpt_dir = Path(ckpt_dir) if ckpt_dir is not None else None
        self.module = module.to(self.info.device)
        self.wrapped = D.wrap_model(
            self.module,
            config.parallel,
            self.info,
            activation_checkpointing=config.activation_checkpointing,
            bf16_params=config.bf16 and self.info.device.type == "cuda",
        )
        params = [p for p in self.module.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"stage {name!r}: the train module has no trainable parameters")
        groups = self.module.param_groups() if hasattr(self.module, "param_groups") else [{"params": params}]
        if sorted(id(p) for g in groups for p in g["params"]) != sorted(id(p) for p in params):
            raise ValueError(f"stage {name!r}: the module's param_groups() must hold each trainable parameter once")
        fused = self.info.device.type == "cuda" and not D.is_sharded(self.module)
        self.optimizer = torch.optim.AdamW(
            groups, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay, fused=fused or None
        )
        self.ema = EMA(self.module, config.ema_decay) if config.ema_decay > 0 else None
        self.curves = Curves()
        self.step = 0
        self.elapsed_s = 0.0
        self.extra: dict[str, Any] = {}  # stage-specific values that must survive a resume
        self.resumed_from: Path | None = None

    # ------------------------------------------------------------------ schedule

    def progress(self) -> float:
        p = self.step / max(1, self.config.max_steps)
        if self.config.budget_s > 0:
            p = max(p, self.elapsed_s / self.config.budget_s)
        return min(1.0, p)

    def lr_now(self) -> float:
        c = self.config
        # warm up from the start, and again after a resume that restarted the optimizer's moments
        since = self.step - int(self.extra.get("optimizer_restarted_at", 0))
        warm = min(1.0, (since + 1) / max(1, c.warmup_steps))
        cosine = 0.5 * (1.0 + math.cos(math.pi * self.progress()))
        return c.lr * warm * (c.min_lr_ratio + (1.0 - c.min_lr_ratio) * cosine)

    def done(self) -> bool:
        c = self.config
        return self.step >= c.max_steps or (c.budget_s > 0 and self.elapsed_s >= c.budget_s)

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self, stream: BatchStream | None) -> dict[str, Any]:
        opt = D.full_optimizer_state(self.module, self.optimizer)
        if self.config.optimizer_state_dtype != "float32":
            dtype = getattr(torch, self.config.optimizer_state_dtype)
            opt = {
                "state": {
                    k: {
                        n: (v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() and v.dim() > 0 else v)
                        for n, v in s.items()
                    }
                    for k, s in opt["state"].items()
                },
                "param_groups": opt["param_groups"],
            }
        return {
            "name": self.name,
            "model": self.model_state(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": opt,
            "schedule": {"step": self.step, "elapsed_s": self.elapsed_s},
            "rng": rng_state(),
            "stream": stream.state_dict() if stream is not None else None,
            "curves": self.curves.state_dict(),
            "extra": self.extra,
            "config": self.config.to_dict(),
        }

    def model_state(self) -> dict[str, torch.Tensor]:
        """The model part of a checkpoint (subclasses may keep less, e.g. LoRA adapters only)."""
        return D.full_model_state(self.module)

    def load_model_state(self, state: dict[str, torch.Tensor]) -> None:
        D.load_full_model_state(self.module, state)

    def load_state_dict(self, state: dict[str, Any], stream: BatchStream | None) -> None:
        """Resumes from a checkpoint. One packed for carrying (`pack_checkpoint`) has only the EMA
        weights: the model starts from them, the optimizer's moments restart, and the learning rate
        warms up again from that step."""
        if state["model"] is not None:
            self.load_model_state(state["model"])
        opt = state["optimizer"]
        if opt is not None:
            D.load_full_optimizer_state(self.module, self.optimizer, opt)
            for group in self.optimizer.state.values():  # moments saved in bf16 come back as fp32
                for n, v in group.items():
                    if torch.is_tensor(v) and v.is_floating_point() and v.dim() > 0 and v.dtype != torch.float32:
                        group[n] = v.float()
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        if state["model"] is None:  # a packed checkpoint: the model continues from the EMA weights
            if self.ema is None:
                raise ValueError(
                    "this checkpoint holds only EMA weights (packed); train with ema_decay > 0 to resume it"
                )
            self.ema.copy_to(self.module)
        self.step = int(state["schedule"]["step"])
        self.elapsed_s = float(state["schedule"]["elapsed_s"])
        set_rng_state(state["rng"])
        if stream is not None and state.get("stream") is not None:
            stream.load_state_dict(state["stream"])
        self.curves = Curves(state["curves"])
        self.extra = dict(state.get("extra") or {})
        if opt is None:
            self.extra["optimizer_restarted_at"] = self.step

    def save(self, stream: BatchStream | None) -> Path | None:
        """Writes a checkpoint (rank 0 writes; all ranks take part in gathering sharded state)."""
        if self.ckpt_dir is None:
            return None
        state = self.state_dict(stream)
        path = None
        if self.info.is_main:
            path = save_checkpoint(self.ckpt_dir, self.step, state, keep=self.config.keep_checkpoints)
        D.barrier()
        return path

    def resume(self, stream: BatchStream | None) -> bool:
        """Loads the latest checkpoint in `ckpt_dir` if there is one; True when it did."""
        if self.ckpt_dir is None:
            return False
        path = latest_checkpoint(self.ckpt_dir)
        if path is None:
            return False
        _, state = load_checkpoint(path)
        if state.get("name") not in (None, self.name):
            raise ValueError(
                f"checkpoint {path} belongs to stage {state.get('name')!r}, not {self.name!r}; use another folder"
            )
        self.load_state_dict(state, stream)
        self.resumed_from = path
        return True

    # ------------------------------------------------------------------ the loop

    def autocast(self):
        if self.config.bf16 and self.info.device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def fit(self, stream: BatchStream, deadline: float | None = None, until_step: int | None = None) -> FitResult:
        """Trains until max_steps / budget_s (finished), or this call's `deadline` (a
        `time.monotonic()` value) or `until_step` (both resumable: a checkpoint is written)."""
        c = self.config
        if self.step == 0 and self.resumed_from is None:  # a fresh run; a resumed one has its saved RNG
            seed_everything(c.seed)
        self.module.train()
        bar = tqdm(
            total=c.max_steps,
            initial=self.step,
            desc=self.name,
            disable=not (c.progress and self.info.is_main),
            mininterval=1.0 if sys.stderr.isatty() else 15.0,
            dynamic_ncols=True,
            leave=False,
        )
        last_ckpt = time.monotonic()
        sums: dict[str, torch.Tensor] = {}
        count = 0
        saved_step = self.step
        while True:
            stop = (
                self.done()
                or (deadline is not None and time.monotonic() >= deadline)
                or (until_step is not None and self.step >= until_step)
            )
            due = self.step != saved_step and (
                (c.checkpoint_every_s > 0 and time.monotonic() - last_ckpt >= c.checkpoint_every_s)
                or (c.checkpoint_every_steps > 0 and self.step % c.checkpoint_every_steps == 0)
            )
            stop, due = self._agree(stop, due)
            if stop:
                break
            if due:
                self.save(stream)
                last_ckpt, saved_step = time.monotonic(), self.step
            t0 = time.monotonic()
            lr = self.lr_now()
            for group in self.optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)  # a group may scale the schedule (a critic's)
            for micro in range(c.grad_accum):
                t_data = time.monotonic()
                batch = stream.next()
                sums["data_s"] = sums.get("data_s", 0.0) + torch.tensor(time.monotonic() - t_data)
                sync = micro == c.grad_accum - 1
                ctx = (
                    self.wrapped.no_sync()
                    if (not sync and hasattr(self.wrapped, "no_sync"))
                    else contextlib.nullcontext()
                )
                with ctx:
                    with self.autocast():
                        loss, metrics = self.wrapped(batch)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(
                            f"stage {self.name!r}: loss became {loss.item()} at step {self.step}; "
                            f"lower the learning rate (now {lr:.2e}) or check the data"
                        )
                    (loss / c.grad_accum).backward()
                for k, v in {"loss": loss, **metrics}.items():
                    v = v.detach().float() if torch.is_tensor(v) else torch.tensor(float(v))
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
            if c.grad_clip > 0:
                gnorm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), c.grad_clip)
                gnorm = gnorm.full_tensor() if hasattr(gnorm, "full_tensor") else gnorm  # FSDP2: a DTensor
                sums["grad_norm"] = sums.get("grad_norm", 0.0) + gnorm.detach().float() * c.grad_accum
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            if self.ema is not None:
                self.ema.update(self.module)
            self.step += 1
            sums["step_s"] = sums.get("step_s", 0.0) + torch.tensor(time.monotonic() - t0) * c.grad_accum
            if self.step % c.log_every == 0:  # the same steps on every rank (all_reduce inside)
                self._log(sums, count, lr, bar)
                sums, count = {}, 0
            self.elapsed_s += time.monotonic() - t0
            bar.update(1)
        if count:
            self._log(sums, count, self.lr_now(), bar)
        bar.close()
        self.save(stream)
        return FitResult(
            step=self.step, finished=self.done(), elapsed_s=self.elapsed_s, curves=self.curves, extra=self.extra
        )

    def _log(self, sums: dict[str, torch.Tensor], count: int, lr: float, bar) -> None:
        values = {
            k: float(D.all_reduce_mean(torch.as_tensor(v / count, device=self.info.device)).item())
            for k, v in sums.items()
        }
        values["lr"] = lr
        self.curves.log(self.step, **values)
        if self.config.logger == "tensorboard" and self.info.is_main:
            self._tensorboard().add_scalars_dict(self.step, values)
        bar.set_postfix(loss=f"{values['loss']:.4g}")

    def _tensorboard(self) -> "_TensorBoard":
        if getattr(self, "_tb", None) is None:
            root = (self.ckpt_dir.parent.parent / "tensorboard") if self.ckpt_dir is not None else Path("runs")
            self._tb = _TensorBoard(root / self.name)
        return self._tb

    def _agree(self, stop: bool, save: bool) -> tuple[bool, bool]:
        """Under torchrun every rank must stop and checkpoint at the same steps (else collectives
        wait forever): rank 0 decides, and its elapsed time drives everyone's schedule."""
        if not self.info.distributed:
            return stop, save
        box = torch.tensor([float(stop), float(save), self.elapsed_s], dtype=torch.float64, device=self.info.device)
        torch.distributed.broadcast(box, src=0)
        self.elapsed_s = float(box[2])
        return bool(box[0]), bool(box[1])

    def averaged_module(self) -> nn.Module:
        """The EMA weights in the train module (in place; call after training, before export)."""
        if self.ema is not None:
            self.ema.copy_to(self.module)
        return self.module


class _TensorBoard:
    """TensorBoard event files of one stage (`logger="tensorboard"`; needs the tensorboard package)."""

    def __init__(self, folder: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # optional: only this logger needs it
            raise ImportError("logger 'tensorboard' needs the tensorboard package: pip install tensorboard") from exc
        self.writer = SummaryWriter(str(folder))

    def add_scalars_dict(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()
