"""Distil a model folder into a one-step model folder (the `distill` stage around folders).

    yume-env train distill --teacher yume_env/assets/default_world --out RUN \\
        --text-cache text_cache.safetensors --budget-minutes 20 --call-minutes 8.5   # call again to continue
    torchrun --standalone --nproc_per_node 2 -m yume_env train distill ...          # data parallel

The student starts as a copy of the teacher's DiT and trains against the teacher's own samples
(`stages/distill.py`), checkpointing into RUN/ckpt/ so the run spans several short commands.
When the budget is spent, rank 0 measures teacher and student on the same simulator clips
(`export.measure`) and writes:
- RUN/model/: the teacher's folder with the student's DiT (EMA) and `sample_steps` 1, and the
  teacher's MODEL_CARD.md with a "One-step distillation" section appended;
- RUN/distill.json: the run (calls, steps, minutes) and both worlds' metrics;
- RUN/curves.json|png: the distillation loss.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch

from yume_env.train import distributed as D
from yume_env.train.checkpointing import atomic_write_text
from yume_env.train.recipes.default_world import RecipeConfig, default_recipe, smoke_recipe
from yume_env.train.stages.distill import DistillConfig, train_distill
from yume_env.train.stages.pretrain import PretrainConfig
from yume_env.train.trainer import TrainerConfig


def default_distill() -> DistillConfig:
    """For the default world (21 minutes of two H200s shipped it): pretraining's batch and data."""
    recipe = default_recipe()
    data = copy.deepcopy(recipe.pretrain)
    return DistillConfig(trainer=TrainerConfig(lr=2e-4, warmup_steps=100, max_steps=50_000, ema_decay=0.999,
                                               weight_decay=0.0, budget_s=21 * 60.0), data=data)


def smoke_distill() -> DistillConfig:
    """A few CPU steps on a tiny teacher: for the tests."""
    return DistillConfig(
        trainer=TrainerConfig(lr=2e-3, warmup_steps=1, max_steps=6, ema_decay=0.9, checkpoint_every_s=0,
                              checkpoint_every_steps=3, log_every=1, progress=False),
        data=PretrainConfig(batch_size=2, clip_steps=3, pool_clips=2))


PRESETS = {"default": (default_distill, default_recipe), "smoke": (smoke_distill, smoke_recipe)}


def run_distill(teacher: str | Path, out: str | Path, *, preset: str = "default", text_cache: str | Path | None = None,
                budget_minutes: float | None = None, call_minutes: float = 0.0, device: str = "auto",
                trainer_changes: dict[str, Any] | None = None, batch_size: int | None = None,
                log=print) -> dict[str, Any]:
    """Advances the distillation in `out`; returns RUN/distill.json's state (`"exported"` once RUN/model/ is written).

    `budget_minutes`: training time over all calls (None: the preset's; 0: none, until max_steps)."""
    from yume_env.model.pipeline import WorldModel
    from yume_env.train.batches import SimClipSource

    t_start = time.monotonic()
    info = D.init_distributed(device)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    state_path = root / "distill.json"
    state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.is_file() else {
        "teacher": str(teacher), "calls": [], "exported": False}
    call = {"device": torch.cuda.get_device_name(info.device) if info.device.type == "cuda" else "cpu",
            "world_size": info.world_size, "torch": torch.__version__, "seconds": 0.0}
    state["calls"].append(call)

    def save() -> None:
        call["seconds"] = time.monotonic() - t_start
        if info.is_main:
            atomic_write_text(state_path, json.dumps(state, indent=1))

    if state["exported"]:  # a finished run: nothing to train or write again
        log(f"{root / 'model'} is already exported")
        save()
        D.shutdown()
        return state
    make_cfg, make_recipe = PRESETS[preset]
    cfg = make_cfg()
    changes = dict(trainer_changes or {})
    if budget_minutes is not None:
        changes["budget_s"] = budget_minutes * 60.0
    if info.distributed and cfg.trainer.parallel == "none":
        changes.setdefault("parallel", "ddp")
    cfg.trainer = dataclasses.replace(cfg.trainer, **changes)
    state["budget_minutes"] = cfg.trainer.budget_s / 60.0
    if batch_size is not None:
        cfg.data.batch_size = int(batch_size)

    world = WorldModel.from_pretrained(teacher, device=info.device)
    if text_cache is not None:  # where the teacher folder's encoder is not installed: a cache file
        from yume_env.train.text_cache import load_text_cache

        text = load_text_cache(text_cache)
    else:
        text = world.text
    mc = world.config
    teacher_steps = int(cfg.teacher_steps) or int(mc.sample_steps)
    source = SimClipSource(mc.height, mc.width, sub_frames=mc.latent_frames_per_chunk * mc.temporal_compression,
                           device=info.device)
    student = copy.deepcopy(world.dit).requires_grad_(True)
    deadline = t_start + call_minutes * 60.0 - 20.0 if call_minutes > 0 else None  # time for the last checkpoint
    trainer = train_distill(mc, student, world.dit, world.vae, text, cfg, root / "ckpt", source=source,
                            info=info, deadline=deadline)
    if info.is_main:
        trainer.curves.save(root / "curves.json", root / "curves.png", title="distill: one-step student vs teacher")
    log(f"distill: step {trainer.step}, {trainer.elapsed_s / 60:.1f} min, loss {trainer.curves.mean_last('loss', 10)}")
    state.update(steps=trainer.step, elapsed_s=trainer.elapsed_s, teacher_steps=teacher_steps,
                 final_loss=trainer.curves.mean_last("loss", 20))
    if trainer.done() and info.is_main:
        trainer.averaged_module()  # the EMA weights, into `student` (the module's `dit`)
        state["metrics"] = _export(world, student, text, source, make_recipe(), root, state)
        state["exported"] = True
        log(f"exported {root / 'model'}")
    save()
    D.shutdown()
    return state


def _export(teacher, student: torch.nn.Module, text, source, recipe: RecipeConfig, root: Path,
            state: dict[str, Any]) -> dict[str, Any]:
    from yume_env.model.pipeline import WorldModel
    from yume_env.train.recipes.export import measure

    student = student.eval().requires_grad_(False)
    one = WorldModel(teacher.config.replace(sample_steps=1), student, teacher.vae, text, teacher.task_head,
                     teacher.start_frames)
    metrics = {"teacher": measure(teacher, recipe, source), "student": measure(one, recipe, source)}
    model_dir = one.save_pretrained(root / "model")
    card_in = Path(state["teacher"]) / "MODEL_CARD.md"
    card = card_in.read_text(encoding="utf-8") if card_in.is_file() else "# model card\n"
    atomic_write_text(model_dir / "MODEL_CARD.md", student_card(card, state, metrics))
    return metrics


def student_card(teacher_card: str, state: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The teacher's card under a note saying what changed, with the distillation section at the end."""
    note = (f"> **One-step student.** This folder's DiT was distilled from the {state.get('teacher_steps')}-step "
            "model this card describes: it samples each chunk in one Euler step (`config.json`: `sample_steps` 1). "
            "Everything else is the teacher's; see *One-step distillation* at the end.\n\n")
    return note + teacher_card.rstrip() + "\n\n" + distill_card(state, metrics)


def distill_card(state: dict[str, Any], metrics: dict[str, Any]) -> str:
    gpu_s = sum(c["seconds"] * c.get("world_size", 1) for c in state["calls"] if c["device"] != "cpu")
    calls = "\n".join(f"| {i + 1} | {c.get('world_size', 1)} x {c['device']} | {c['seconds'] / 60:.1f} |"
                      for i, c in enumerate(state["calls"]))
    t, s = metrics["teacher"], metrics["student"]
    rows = "\n".join(f"| {k} | {t[k]:.2f} | {s[k]:.2f} |" for k in t if isinstance(t[k], float))
    notes = "".join(f"\n{n}\n" for n in state.get("notes", []))  # free text a run's owner adds to distill.json
    return f"""## One-step distillation
The DiT above was distilled into this folder's DiT, which samples each chunk in **one** Euler
step instead of {state.get("teacher_steps")} (`yume_env/train/stages/distill.py`: the student
matches the teacher's own sample for the same noise, history, actions and event). The VAE, the
task head, the text cache and the start views are the teacher's.

{state.get("steps")} steps, {state.get("elapsed_s", 0) / 60:.1f} minutes of training, final loss
{state.get("final_loss", float("nan")):.4f}; {gpu_s / 60:.1f} GPU-minutes over these calls:

| call | processes x device | minutes |
|---|---|---|
{calls}

Teacher ({state.get("teacher_steps")} steps) and student (1 step) on the same simulator clips, PSNR in dB:

| metric | teacher | student |
|---|---|---|
{rows}
{notes}
Reproduce: `yume-env train distill --teacher TEACHER_FOLDER --out RUN --budget-minutes
{state.get("budget_minutes", "B")} --call-minutes 8.5` (under `torchrun` for several GPUs), repeated until it
prints `"exported": true`.
"""
