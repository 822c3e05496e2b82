"""Model folder in, one-step model folder out: the `distill` and `unroll` stages around folders.

    yume-env train distill --teacher yume_env/assets/default_world --out RUN \\
        --text-cache text_cache.safetensors --budget-minutes 20 --call-minutes 8.5   # call again to continue
    yume-env train unroll --model RUN/model --out RUN2 --budget-minutes 15 --call-minutes 8.5
    torchrun --standalone --nproc_per_node 2 -m yume_env train distill ...          # data parallel

- `distill` (`stages/distill.py`): a copy of a few-step teacher's DiT learns to produce the
  teacher's samples in one Euler step.
- `unroll` (`stages/unroll.py`): a one-step world learns, on its own rollouts, to produce the
  simulator's chunks.

Both start from the folder's DiT and checkpoint into RUN/ckpt/, so a run spans several short
commands. When the budget is spent, rank 0 measures the input and output worlds on the same
simulator clips (`export.measure`) and writes:
- RUN/model/: the input folder with the trained DiT (EMA) and `sample_steps` 1, and the input's
  MODEL_CARD.md with a section on the stage appended;
- RUN/<stage>.json: the run (calls, steps, minutes) and both worlds' metrics;
- RUN/curves.json|png: the stage's loss.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from yume_env.train import distributed as D
from yume_env.train.checkpointing import atomic_write_text, latest_checkpoint, load_checkpoint
from yume_env.train.recipes.default_world import RecipeConfig, default_recipe, smoke_recipe
from yume_env.train.stages.critic import critic_like
from yume_env.train.stages.distill import DistillConfig, train_distill
from yume_env.train.stages.frozen_aside import DiTWithFrozen
from yume_env.train.stages.pretrain import PretrainConfig
from yume_env.train.stages.unroll import UnrollConfig, clip_events, dit_lr_scales, train_unroll
from yume_env.train.trainer import Trainer, TrainerConfig


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


def default_unroll() -> UnrollConfig:
    """For the default world: 192 clips per process, histories of up to 4 simulator chunks then
    2-8 unrolled ones (the tiny TSCM layout keeps 20 latents, 9 steps' worth)."""
    return UnrollConfig(trainer=TrainerConfig(lr=1e-4, warmup_steps=50, max_steps=50_000, ema_decay=0.999,
                                              weight_decay=0.0, budget_s=15 * 60.0), batch_size=192)


def smoke_unroll() -> UnrollConfig:
    """A few CPU steps on a tiny one-step world: for the tests."""
    return UnrollConfig(
        trainer=TrainerConfig(lr=2e-3, warmup_steps=1, max_steps=6, ema_decay=0.9, checkpoint_every_s=0,
                              checkpoint_every_steps=3, log_every=1, progress=False),
        batch_size=2, max_burn_in=1, min_unrolled=1, max_unrolled=2, pool_clips=2)


@dataclass(frozen=True)
class FolderStage:
    """A stage that turns a model folder into a one-step model folder (see the module docstring)."""

    name: str  # the CLI stage and RUN/<name>.json
    presets: dict[str, Callable[[], Any]]  # preset -> the stage's config
    labels: tuple[str, str]  # names of the input and output worlds in the metrics
    train: Callable[..., Any]  # (config, dit, input world, text, cfg, ckpt dir, source, info, deadline) -> Trainer
    card: Callable[[str, dict[str, Any], dict[str, Any]], str]  # (input card, state, metrics) -> card
    curves_title: str
    describe: Callable[[Any, Any], dict[str, Any]] = lambda cfg, mc: {}  # (cfg, model config) -> state entries
    lr_scales: Callable[[Any], dict[str, float]] = lambda cfg: {}  # cfg -> the trained module's DiT lr scales


def _distill_train(mc, dit, world, text, cfg, ckpt, source, info, deadline):
    return train_distill(mc, dit, world.dit, world.vae, text, cfg, ckpt, source=source, info=info, deadline=deadline)


def _unroll_train(mc, dit, world, text, cfg, ckpt, source, info, deadline):
    return train_unroll(mc, dit, world.vae, text, cfg, ckpt, source=source, info=info, deadline=deadline)


def _remembered(state: dict[str, Any], root: Path, key: str, given: Any, what: str, flag: str) -> Any:
    """A memory-layout setting a run folder remembers: `given`, or the run's own when None; a run
    started with another value refuses it (`what` names both, `flag` the option to drop)."""
    kept = state.get(key)
    if kept is not None and given is not None and given != kept:
        raise ValueError(f"{root} {what.format(kept=kept, given=given)}: drop {flag} or start a new run folder")
    return given if given is not None else kept


def run_folder_stage(stage: FolderStage, model: str | Path, out: str | Path, *, preset: str = "default",
                     text_cache: str | Path | None = None, budget_minutes: float | None = None,
                     call_minutes: float = 0.0, device: str = "auto", trainer_changes: dict[str, Any] | None = None,
                     batch_size: int | None = None, config_changes: dict[str, Any] | None = None,
                     export_now: bool = False, tscm_schedule: str | None = None, pose_memory: bool = False,
                     recall_frames: int | None = None, log=print) -> dict[str, Any]:
    """Advances `stage` on the folder `model` in `out`; returns RUN/<stage>.json's state
    (`"exported"` once RUN/model/ is written).

    `budget_minutes`: training time over all calls (None: the preset's; 0: none, until max_steps).
    `config_changes`: fields of the stage's config to replace (e.g. unroll's motion_weight).
    `export_now`: train nothing; write RUN/model from the last checkpoint's EMA weights, to look
    at a run midway (`"partial_export_step"`; the next call trains on from the checkpoint).
    `tscm_schedule`, `pose_memory`, `recall_frames`: train (and export) the world with this TSCM
    schedule instead of its own, with pose memory turned on, or recalling this many old views by
    pose (which turns pose memory on) (`yume_env.model.retarget`); the run remembers them, so later
    calls need not repeat them."""
    from yume_env.model.pipeline import WorldModel
    from yume_env.data.sim_clips import SimClipSource

    t_start = time.monotonic()
    info = D.init_distributed(device)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    state_path = root / f"{stage.name}.json"
    state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.is_file() else {
        "input": str(model), "calls": [], "exported": False}
    call = {"device": torch.cuda.get_device_name(info.device) if info.device.type == "cuda" else "cpu",
            "world_size": info.world_size, "torch": torch.__version__, "seconds": 0.0}
    if not export_now:  # an export trains nothing: not a call of the run
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
    if export_now and latest_checkpoint(root / "ckpt") is None:
        D.shutdown()
        raise FileNotFoundError(f"--export-now: no checkpoint in {root / 'ckpt'} yet; run a training call first")
    make_cfg, make_recipe = stage.presets[preset], RECIPES[preset]
    cfg = make_cfg()
    changes = dict(trainer_changes or {})
    if budget_minutes is not None:
        changes["budget_s"] = budget_minutes * 60.0
    if info.distributed and cfg.trainer.parallel == "none":
        changes.setdefault("parallel", "ddp")
    cfg.trainer = dataclasses.replace(cfg.trainer, **changes)
    state["budget_minutes"] = cfg.trainer.budget_s / 60.0
    if batch_size is not None:
        _set_batch_size(cfg, int(batch_size))
    if config_changes:
        unknown = set(config_changes) - {f.name for f in dataclasses.fields(cfg)}
        if unknown:
            raise ValueError(f"{stage.name} has no setting(s) {sorted(unknown)}")
        cfg = dataclasses.replace(cfg, **config_changes)

    world = WorldModel.from_pretrained(state.get("input", state.get("teacher")), device=info.device)
    tscm_schedule = _remembered(state, root, "tscm_schedule", tscm_schedule or None,
                                "trains under TSCM schedule {kept!r}, not {given!r}", "--tscm-schedule")
    recall_frames = _remembered(state, root, "recall_frames", recall_frames,
                                "trains with recall_frames {kept}, not {given}", "--recall-frames")
    pose_memory = bool(pose_memory or state.get("pose_memory") or recall_frames)
    layout = {}
    if tscm_schedule and tscm_schedule != world.config.tscm_schedule:
        layout["tscm_schedule"] = state["tscm_schedule"] = tscm_schedule
    if pose_memory and not world.config.pose_memory:
        layout["pose_memory"] = state["pose_memory"] = True
    if recall_frames is not None and recall_frames != world.config.recall_frames:
        layout["recall_frames"] = state["recall_frames"] = int(recall_frames)
    if layout:
        from yume_env.model.retarget import retarget

        world = retarget(world, **layout)
    if text_cache is not None:  # where the folder's encoder is not installed: a cache file
        from yume_env.train.text_cache import load_text_cache

        text = load_text_cache(text_cache)
    else:
        text = world.text
    mc = world.config
    source = SimClipSource(mc.height, mc.width, sub_frames=mc.latent_frames_per_chunk * mc.temporal_compression,
                           device=info.device)
    dit = copy.deepcopy(world.dit).requires_grad_(True)
    if export_now:
        trainer = _at_last_checkpoint(stage.name, dit, cfg.trainer, root / "ckpt", info, stage.lr_scales(cfg))
    else:
        deadline = t_start + call_minutes * 60.0 - 20.0 if call_minutes > 0 else None  # time for the last checkpoint
        trainer = stage.train(mc, dit, world, text, cfg, root / "ckpt", source, info, deadline)
    if info.is_main:
        trainer.curves.save(root / "curves.json", root / "curves.png", title=stage.curves_title)
    log(f"{stage.name}: step {trainer.step}, {trainer.elapsed_s / 60:.1f} min, loss {trainer.curves.mean_last('loss', 10)}")
    state.update(steps=trainer.step, elapsed_s=trainer.elapsed_s, final_loss=trainer.curves.mean_last("loss", 20))
    state.update(stage.describe(cfg, mc))
    if (trainer.done() or export_now) and info.is_main:
        call["seconds"] = time.monotonic() - t_start  # this call's training, for the card's table
        trainer.averaged_module()  # the EMA weights, into `dit` (the module's `dit`)
        state["exported"] = trainer.done()
        state["partial_export_step"] = None if trainer.done() else trainer.step
        state["metrics"] = _export(stage, world, dit, text, source, make_recipe(), root, state)
        log(f"exported {root / 'model'}" + ("" if trainer.done() else f" (partial: step {trainer.step})"))
    elif not trainer.done():  # the call's time ran out first (setup counts against --call-minutes)
        t = cfg.trainer
        left = (f"{trainer.elapsed_s / 60:.1f} of {t.budget_s / 60:.1f} budget minutes" if t.budget_s > 0
                else f"step {trainer.step} of {t.max_steps}")
        log(f"{stage.name}: this call ended at {left}, so nothing is exported yet: run the same command "
            f"again to continue from {root / 'ckpt'} and export {root / 'model'}")
    save()
    D.shutdown()
    return state


def _at_last_checkpoint(name: str, dit: torch.nn.Module, config: TrainerConfig, ckpt: Path, info,
                        dit_lr_scales: dict[str, float] | None = None) -> Trainer:
    """The run's trainer at its last checkpoint, without its data (what `--export-now` exports):
    every folder stage's checkpoint holds the DiT under `dit.` (as `DiTWithFrozen` names it), and
    an adversarial run's critic under `critic.`; `dit_lr_scales` as the run's module had them, so
    the optimizer's groups match the checkpoint's."""
    path = latest_checkpoint(ckpt)
    critic = critic_like(load_checkpoint(path)[1]["model"]) if path is not None else None
    trainer = Trainer(DiTWithFrozen(dit, critic, dit_lr_scales=dit_lr_scales), config, ckpt, info=info, name=name)
    trainer.resume(None)
    return trainer


def _set_batch_size(cfg, batch_size: int) -> None:
    if hasattr(cfg, "data"):  # distill: pretraining's batches
        cfg.data.batch_size = batch_size
    else:
        cfg.batch_size = batch_size


def _export(stage: FolderStage, world, dit: torch.nn.Module, text, source, recipe: RecipeConfig, root: Path,
            state: dict[str, Any]) -> dict[str, Any]:
    from yume_env.model.pipeline import WorldModel
    from yume_env.train.recipes.export import measure

    dit = dit.eval().requires_grad_(False)
    one = WorldModel(world.config.replace(sample_steps=1), dit, world.vae, text, world.task_head, world.start_frames)
    before, after = stage.labels
    metrics = {before: measure(world, recipe, source), after: measure(one, recipe, source)}
    model_dir = one.save_pretrained(root / "model")
    card_in = Path(state.get("input", state.get("teacher", ""))) / "MODEL_CARD.md"
    card = card_in.read_text(encoding="utf-8") if card_in.is_file() else "# model card\n"
    atomic_write_text(model_dir / "MODEL_CARD.md", stage.card(card, state, metrics))
    return metrics


def _run_report(stage: FolderStage, state: dict[str, Any], metrics: dict[str, Any], caption: str, flag: str) -> str:
    """The part of a stage's card section every stage shares: steps, minutes and GPU-minutes per
    call, the two worlds' metrics side by side, the run owner's notes and how to reproduce."""
    gpu_s = sum(c["seconds"] * c.get("world_size", 1) for c in state["calls"] if c["device"] != "cpu")
    calls = "\n".join(f"| {i + 1} | {c.get('world_size', 1)} x {c['device']} | {c['seconds'] / 60:.1f} |"
                      for i, c in enumerate(state["calls"]))
    before, after = stage.labels
    a, b = metrics[before], metrics[after]
    rows = "\n".join(f"| {k} | {a[k]:.2f} | {b[k]:.2f} |" for k in a if isinstance(a[k], float))
    notes = "".join(f"\n{n}\n" for n in state.get("notes", []))  # free text a run's owner adds to RUN/<stage>.json
    partial = ("**Exported midway** (`--export-now`, before the run's budget was spent): " if
               state.get("partial_export_step") is not None else "")
    return partial + f"""{state.get("steps")} steps, {state.get("elapsed_s", 0) / 60:.1f} minutes of training, final loss
{state.get("final_loss") or float("nan"):.4f}; {gpu_s / 60:.1f} GPU-minutes over these calls:

| call | processes x device | minutes |
|---|---|---|
{calls}

{caption}, PSNR in dB:

| metric | {before} | {after} |
|---|---|---|
{rows}
{notes}
Reproduce: `yume-env train {stage.name} {flag} --out RUN --budget-minutes
{state.get("budget_minutes", "B")} --call-minutes 8.5` (under `torchrun` for several GPUs), repeated until it
prints `"exported": true`.
"""


def student_card(teacher_card: str, state: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The teacher's card under a note saying what changed, with the distillation section at the end."""
    note = (f"> **One-step student.** This folder's DiT was distilled from the {state.get('teacher_steps')}-step "
            "model this card describes: it samples each chunk in one Euler step (`config.json`: `sample_steps` 1). "
            "Everything else is the teacher's; see *One-step distillation* at the end.\n\n")
    return note + teacher_card.rstrip() + "\n\n" + distill_card(state, metrics)


def distill_card(state: dict[str, Any], metrics: dict[str, Any]) -> str:
    steps = state.get("teacher_steps")
    return f"""## One-step distillation
The DiT above was distilled into this folder's DiT, which samples each chunk in **one** Euler
step instead of {steps} (`yume_env/train/stages/distill.py`: the student
matches the teacher's own sample for the same noise, history, actions and event). The VAE, the
task head, the text cache and the start views are the teacher's.

""" + _run_report(DISTILL, state, metrics, f"Teacher ({steps} steps) and student (1 step) on the same simulator clips",
                  "--teacher TEACHER_FOLDER")


def unroll_card(input_card: str, state: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The input's card with a note on top and the unroll section at the end."""
    note = ("> **Trained on its own rollouts.** This folder's one-step DiT was fine-tuned by the `unroll` stage "
            "after what this card describes; see *Unrolled fine-tuning* at the end.\n\n")
    runs = input_card.count("\n## Unrolled fine-tuning")  # a folder unrolled again: one note, numbered sections
    heading = "## Unrolled fine-tuning" + (f", run {runs + 1}" if runs else "")
    return ("" if note.strip() in input_card else note) + input_card.rstrip() + f"""

{heading}
The one-step DiT above was trained on its own rollouts (`yume_env/train/stages/unroll.py`): after
0-{state.get("max_burn_in")} simulator chunks it generates {state.get("unrolled")} chunks in a row from its own outputs,
and each one is scored against the simulator's chunk for the same actions and event (latent MSE
+ {state.get("pixel_weight")} x decoded-pixel MSE{_probe_terms_text(state)}). The VAE, the task head, the text cache and the start views are
unchanged.{_recall_text(state)}

""" + _run_report(UNROLL, state, metrics, "Before and after, on the same simulator clips", _unroll_flags(state))


def _unroll_flags(state: dict[str, Any]) -> str:
    """The command-line options that reproduce the run's unroll settings."""
    flags = ["--model INPUT_FOLDER"]
    if state.get("motion_weight") or state.get("event_weight"):
        flags.append(f"--probes PROBES --motion-weight {state.get('motion_weight') or 0}")
    if state.get("event_weight"):
        flags.append(f"--event-weight {state['event_weight']}" + (" --event-balanced" if state.get("event_balanced") else ""))
    if state.get("event_mix"):
        flags.append("--event-mix " + ",".join(f"{name}={w:g}" for name, w in state["event_mix"]))
    if state.get("ghost_weight"):
        flags.append(f"--ghost-weight {state['ghost_weight']:g}")
    default = UnrollConfig()
    if state.get("adversarial_weight"):
        flags.append(f"--adversarial-weight {state['adversarial_weight']:g}")
        if state.get("critic_lr_scale", default.critic_lr_scale) != default.critic_lr_scale:
            flags.append(f"--critic-lr-scale {state['critic_lr_scale']:g}")
    if state.get("spread_in_loop"):
        flags.append("--spread-in-loop")
    if state.get("spread_weight"):
        flags.append(f"--spread-weight {state['spread_weight']:g}")
    if state.get("unrolled") and state["unrolled"] != f"{default.min_unrolled}-{default.max_unrolled}":
        flags.append("--unrolled " + state["unrolled"].replace("-", " "))
    if state.get("max_burn_in", default.max_burn_in) != default.max_burn_in:
        flags.append(f"--burn-in {state['max_burn_in']}")
    if state.get("revisit_fraction"):
        flags.append(f"--revisit {state['revisit_fraction']:g}")
        if state.get("revisit_batches", default.revisit_batches) != default.revisit_batches:
            flags.append(f"--revisit-batches {state['revisit_batches']:g}")
        if state.get("revisit_steps"):
            flags.append(f"--revisit-steps {state['revisit_steps']}")
    if state.get("pool_clips", default.pool_clips) != default.pool_clips:
        flags.append(f"--pool-clips {state['pool_clips']}")
    if state.get("tscm_schedule"):
        flags.append(f"--tscm-schedule {state['tscm_schedule']}")
    if state.get("pose_memory"):
        flags.append("--pose-memory")
    if state.get("recall_frames"):
        flags.append(f"--recall-frames {state['recall_frames']}")
    if state.get("recall_weight"):
        flags.append(f"--recall-weight {state['recall_weight']:g}")
    if state.get("pose_lr_scale", 1.0) != 1.0:
        flags.append(f"--pose-lr-scale {state['pose_lr_scale']:g}")
    return " ".join(flags)


def _recall_text(state: dict[str, Any]) -> str:
    """The card's sentences on revisit clips and a changed TSCM schedule, where the run had them."""
    text = ""
    if state.get("revisit_fraction"):
        steps = state.get("revisit_steps") or "the burn-in and unrolled"
        text += (f" {state['revisit_fraction']:.0%} of the clips ({steps} steps) ended by coming back to a view "
                 f"they saw (a loop or a turn away and back), and {state.get('revisit_batches', 0):.0%} of the "
                 "batches unrolled the clips' last chunks.")
    if state.get("tscm_schedule"):
        text += f" The world was moved to the TSCM schedule `{state['tscm_schedule']}` and trained under it."
    if state.get("pose_memory"):
        text += (" Pose memory was turned on (each history frame's dead-reckoned pose relative to the chunk's, "
                 "added to its tokens; `yume_env/model/pose_memory.py`) and trained.")
    if state.get("recall_frames"):
        text += (f" The world recalled {state['recall_frames']} old view(s) by pose at each step (a bank of views "
                 "kept as frames leave the sharp bands, read at full detail; `yume_env/model/recall.py`).")
    if state.get("recall_weight"):
        text += (f" The examples whose bank held a view of the place their chunk ended at weighed "
                 f"{1 + state['recall_weight']:g} times the others in the loss.")
    return text


def _probe_terms_text(state: dict[str, Any]) -> str:
    """The card's words for the probe terms, the ghost's pixel weight and the adversarial term a run had on."""
    text = ""
    if state.get("ghost_weight"):
        text += f", the ghost's pixels weighing {1 + state['ghost_weight']:g} times the others"
    if state.get("motion_weight"):
        text += (f" + {state['motion_weight']} x the motion term: KL between what the inverse-dynamics network "
                 f"in `{state.get('probes')}` reads from the simulator's step and from the generated one")
    if state.get("event_weight"):
        text += (f" + {state['event_weight']} x the event term: KL between what the event classifier in "
                 f"`{state.get('probes')}` reads from the simulator's last frame of the chunk and from the "
                 f"generated one{', averaged per class the simulator shows' if state.get('event_balanced') else ''}; "
                 f"{state.get('event_clips')}")
    if state.get("spread_weight"):
        text += (f" + {state['spread_weight']:g} x the spread term: squared log ratio of each chunk's per-channel "
                 "spread in each spatial band to the simulator's")
    if state.get("adversarial_weight"):
        text += (f" + {state['adversarial_weight']:g} x the adversarial term: a critic trained beside the world "
                 f"(learning rate x {state.get('critic_lr_scale'):g}) scores each step real or generated from the "
                 f"frame before it, its frames and its action; the term ramps up over the first "
                 f"{state.get('adversarial_warmup')} steps")
    return text


def _describe_unroll(cfg: UnrollConfig, mc) -> dict[str, Any]:
    """The run's unroll settings, for RUN/unroll.json and the card."""
    plan = clip_events(cfg)
    clips = ("the simulator's default event mix" if plan is None else
             f"{plan.probability:.0%} of clips had an event, {1 - plan.from_start:.0%} of those starting mid-clip")
    if plan is not None and plan.mix:
        clips += ", drawn with weights " + ", ".join(f"{name} {w:g}" for name, w in plan.mix) + " (others 1)"
    return {"max_burn_in": cfg.max_burn_in, "unrolled": f"{cfg.min_unrolled}-{cfg.max_unrolled}",
            "pixel_weight": cfg.pixel_weight, "motion_weight": cfg.motion_weight, "event_weight": cfg.event_weight,
            "event_balanced": cfg.event_balanced, "event_mix": [list(m) for m in cfg.event_mix],
            "ghost_weight": cfg.ghost_weight, "adversarial_weight": cfg.adversarial_weight,
            "adversarial_warmup": cfg.adversarial_warmup, "critic_lr_scale": cfg.critic_lr_scale,
            "spread_in_loop": cfg.spread_in_loop, "spread_weight": cfg.spread_weight, "event_clips": clips,
            "revisit_fraction": cfg.revisit_fraction, "revisit_batches": cfg.revisit_batches,
            "revisit_steps": cfg.revisit_steps, "recall_weight": cfg.recall_weight,
            "pool_clips": cfg.pool_clips, "pose_lr_scale": cfg.pose_lr_scale,
            "probes": Path(cfg.probes).name if cfg.probes else None}


RECIPES = {"default": default_recipe, "smoke": smoke_recipe}
DISTILL = FolderStage("distill", {"default": default_distill, "smoke": smoke_distill}, ("teacher", "student"),
                      _distill_train, student_card, "distill: one-step student vs teacher",
                      lambda cfg, mc: {"teacher_steps": int(cfg.teacher_steps) or int(mc.sample_steps)})
UNROLL = FolderStage("unroll", {"default": default_unroll, "smoke": smoke_unroll}, ("before", "after"),
                     _unroll_train, unroll_card, "unroll: one-step world on its own rollouts", _describe_unroll,
                     dit_lr_scales)
