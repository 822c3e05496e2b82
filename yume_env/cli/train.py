"""`yume-env train <stage>`: one training stage, the default-world recipe, or the text cache.

    yume-env train text-cache --out text_cache.safetensors
    yume-env train vae --out runs/vae
    yume-env train pretrain --vae runs/vae/vae.safetensors --text-cache text_cache.safetensors --out runs/pre
    yume-env train self-forcing --init runs/pre/dit.safetensors --vae ... --text-cache ... --out runs/sf
    yume-env train reward --vae runs/vae/vae.safetensors --out runs/reward
    yume-env train default-world --out RUN --text-cache text_cache.safetensors --budget-minutes 13 --call-minutes 8.5
    yume-env train distill --teacher MODEL_DIR --out RUN --budget-minutes 20     # a one-step student folder
    yume-env train unroll --model ONE_STEP_DIR --out RUN --budget-minutes 16     # trained on its own rollouts

Every stage resumes from the checkpoints in its --out folder when called again, writes its
(EMA) weights there as <name>.safetensors when finished, and its loss curves as curves.{json,png}.
Sizes and hyper-parameters come from the recipe presets (`--preset default|smoke`); `--steps`,
`--batch-size`, `--lr`, `--budget-minutes` override the common ones. Under `torchrun` the stages
train data-parallel (`--parallel ddp`) or sharded (`--parallel fsdp`).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import time
from pathlib import Path



def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", required=True, help="output folder (or file, for text-cache)")
    common.add_argument("--device", default="auto", help="auto | cpu | cuda")
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    cache = sub.add_parser("text-cache", parents=[common], help="embed the action captions and event texts once")
    cache.add_argument("--encoder", default="minilm", help="text encoder (minilm)")
    recipe = sub.add_parser("default-world", parents=[common], help="vae -> pretrain -> self-forcing -> reward -> model folder")
    from yume_env.train.recipes.default_world import add_arguments as recipe_arguments

    recipe_arguments(_Skip(recipe, {"--out", "--device"}))
    stage_opts = argparse.ArgumentParser(add_help=False)
    stage_opts.add_argument("--preset", choices=("default", "smoke"), default="default", help="recipe preset for sizes")
    stage_opts.add_argument("--smoke", action="store_true", help="same as --preset smoke")
    stage_opts.add_argument("--steps", type=int, default=None, help="max optimizer steps")
    stage_opts.add_argument("--batch-size", type=int, default=None)
    stage_opts.add_argument("--lr", type=float, default=None)
    stage_opts.add_argument("--budget-minutes", type=float, default=None, help="wall-clock budget of the stage")
    stage_opts.add_argument("--call-minutes", type=float, default=0.0, help="stop this call after N minutes (resumable)")
    stage_opts.add_argument("--parallel", choices=("none", "ddp", "fsdp"), default="none", help="under torchrun")
    stage_opts.add_argument("--activation-checkpointing", action="store_true")
    stage_opts.add_argument("--data", default=None,
                            help="train on a Sekai-layout folder (yume-env data generate) instead of the live simulator")
    helps = {"vae": "the tiny VAE on simulator frames", "pretrain": "flow matching with TSCM history",
             "self-forcing": "train on the model's own rollouts", "reward": "the task head (beacon distance, reached)"}
    for name, text in helps.items():
        p = sub.add_parser(name, parents=[common, stage_opts], help=text)
        if name != "vae":
            p.add_argument("--vae", default=None, help="VAE weights (.safetensors) from the vae stage")
        if name in ("pretrain", "self-forcing"):
            p.add_argument("--text-cache", default=None, help="text cache file (yume-env train text-cache)")
        if name == "self-forcing":
            p.add_argument("--init", default=None, help="DiT weights to start from (the pretrain stage's dit.safetensors)")
    folder_stages = {
        "distill": ("--teacher", "a one-step student of a model folder (its own folder)",
                    "model folder to distil (e.g. yume_env/assets/default_world)"),
        "unroll": ("--model", "a one-step model folder trained on its own rollouts (its own folder)",
                   "one-step model folder (e.g. yume_env/assets/default_world)"),
    }
    for name, (flag, text, flag_help) in folder_stages.items():
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument(flag, required=True, dest="model", help=flag_help)
        p.add_argument("--preset", choices=("default", "smoke"), default="default", help="sizes and steps")
        p.add_argument("--smoke", action="store_true", help="same as --preset smoke")
        p.add_argument("--text-cache", default=None,
                       help="text cache file, where the folder's cache lacks a simulator event text")
        p.add_argument("--steps", type=int, default=None, help="max optimizer steps")
        p.add_argument("--batch-size", type=int, default=None, help="examples per step and process")
        p.add_argument("--lr", type=float, default=None)
        p.add_argument("--budget-minutes", type=float, default=None,
                       help="wall-clock budget over all calls (default: the preset's; none for smoke)")
        p.add_argument("--call-minutes", type=float, default=0.0, help="stop this call after N minutes (resumable)")
        p.add_argument("--export-now", action="store_true",
                       help="train nothing: write OUT/model from the last checkpoint's EMA weights, to look at the "
                            "run midway (the next call trains on)")
        if name == "unroll":
            p.add_argument("--probes", "--motion-probes", dest="probes", default=None,
                           help="probe folder (yume-env eval train-probes --out DIR) whose inverse-dynamics network "
                                "scores the motion of unrolled steps and whose event classifier scores their events")
            p.add_argument("--motion-weight", type=float, default=None,
                           help="weight of the motion term (default 0.1 with --probes, else 0: off)")
            p.add_argument("--event-weight", type=float, default=None,
                           help="weight of the event term (default 0: off; needs --probes)")
            p.add_argument("--event-balanced", action="store_true",
                           help="average the event term per class the simulator's frames show (rare events weigh more)")
            p.add_argument("--event-mix", type=_event_mix, default=None, metavar="EVENT=W[,EVENT=W]",
                           help="relative weights of the clips' events, e.g. ghost=4 (unnamed events weigh 1)")
            p.add_argument("--ghost-weight", type=float, default=None,
                           help="the ghost's pixels weigh 1 + W in the pixel term (default 0: like any pixel)")
            p.add_argument("--recall-weight", type=float, default=None,
                           help="with --recall-frames: examples whose bank holds a view of the place their chunk "
                                "ends at weigh 1 + W in the latent and pixel terms (default 0: like the others)")
            p.add_argument("--spread-in-loop", action="store_true",
                           help="feed back the chunks as the env keeps their spread (the world's spread_gain_max); "
                                "measured to undo the gain, see docs/training.md")
            p.add_argument("--spread-weight", type=float, default=None,
                           help="weight of the spread term: each chunk's per-channel spread in each spatial band "
                                "against the simulator's (default 0: off)")
            p.add_argument("--adversarial-weight", type=float, default=None,
                           help="weight of the adversarial term: a critic trained beside the world scores its "
                                "steps real or generated (default 0: off)")
            p.add_argument("--critic-lr-scale", type=float, default=None,
                           help="the critic's learning rate in multiples of the world's (default 4)")
            p.add_argument("--unrolled", type=int, nargs=2, default=None, metavar=("MIN", "MAX"),
                           help="chunks unrolled per batch, drawn in [MIN, MAX] (default 2 8)")
            p.add_argument("--burn-in", type=int, default=None, metavar="MAX",
                           help="simulator chunks of history before the unrolled ones, at most (default 4); "
                                "clips are MAX + the most unrolled chunks long")
            p.add_argument("--revisit", type=float, default=None, metavar="FRACTION",
                           help="share of clips that end by coming back to a view they saw (a loop or a turn "
                                "away and back), to train recall (default 0)")
            p.add_argument("--revisit-batches", type=float, default=None, metavar="FRACTION",
                           help="with --revisit: share of batches that unroll the clips' last chunks (default 0.5)")
            p.add_argument("--revisit-steps", type=int, default=None, metavar="STEPS",
                           help="with --revisit: clips this long (a loop needs 36+; default: the burn-in and "
                                "unrolled window); the other batches still read the clips' first steps")
            p.add_argument("--pool-clips", type=int, default=None,
                           help="clips rendered per call of the simulator (default 256; more for long clips)")
            p.add_argument("--tscm-schedule", default=None,
                           help="train under this TSCM history schedule instead of the world's own "
                                "(e.g. tiny-recall); new history embedders start from the patch embedding")
            p.add_argument("--pose-memory", action="store_true",
                           help="turn pose memory on: each history frame's dead-reckoned pose relative to the "
                                "chunk's is added to its tokens (a new embedding, zero at the start)")
            p.add_argument("--recall-frames", type=int, default=None, metavar="N",
                           help="recall N old views by pose (a bank of views kept as frames leave the sharp "
                                "bands) and read them at full detail; turns pose memory on (default 0)")
            p.add_argument("--pose-lr-scale", type=float, default=None,
                           help="the pose embedding's learning rate in multiples of the world's (default 1)")
    try:  # the finetune stage brings its own options
        finetune = importlib.import_module("yume_env.train.finetune")
    except ImportError:
        finetune = None
    if finetune is not None and hasattr(finetune, "add_arguments"):
        finetune.add_arguments(sub.add_parser("finetune", help="LoRA or full fine-tuning on Sekai-layout folders"))


class _Skip:
    """Forwards add_argument calls except for options already added (shared --out/--device)."""

    def __init__(self, parser: argparse.ArgumentParser, skip: set[str]):
        self.parser, self.skip = parser, skip

    def add_argument(self, *names, **kw):
        if self.skip.intersection(names):
            return None
        return self.parser.add_argument(*names, **kw)


def run(args: argparse.Namespace) -> int:
    if args.stage == "text-cache":
        from yume_env.train.text_cache import build_text_cache

        print(build_text_cache(args.out, encoder=args.encoder))
        return 0
    if args.stage == "finetune":
        return int(importlib.import_module("yume_env.train.finetune").run(args) or 0)
    if args.stage in ("distill", "unroll"):
        from yume_env.train.recipes.one_step import DISTILL, UNROLL, run_folder_stage

        changes = {k: v for k, v in (("max_steps", args.steps), ("lr", args.lr)) if v is not None}
        stage = DISTILL if args.stage == "distill" else UNROLL
        state = run_folder_stage(stage, args.model, args.out, preset="smoke" if args.smoke else args.preset,
                            text_cache=args.text_cache, budget_minutes=args.budget_minutes,
                            call_minutes=args.call_minutes, device=args.device, trainer_changes=changes,
                            batch_size=args.batch_size, export_now=args.export_now,
                            config_changes=_unroll_changes(args) if args.stage == "unroll" else None,
                            tscm_schedule=getattr(args, "tscm_schedule", None),
                            pose_memory=getattr(args, "pose_memory", False),
                            recall_frames=getattr(args, "recall_frames", None))
        print(json.dumps({k: state.get(k) for k in ("exported", "steps", "elapsed_s", "final_loss", "metrics")}, indent=1))
        return 0
    if args.stage == "default-world":
        from yume_env.train.recipes import default_world

        return default_world.run(args)
    return _run_stage(args, "smoke" if args.smoke else args.preset)


def _unroll_changes(args: argparse.Namespace) -> dict:
    """UnrollConfig fields set on the command line (the motion weight defaults to 0.1 with probes)."""
    changes: dict = {}
    if args.probes:
        changes["probes"] = args.probes
        changes["motion_weight"] = 0.1 if args.motion_weight is None else args.motion_weight
    elif args.motion_weight is not None:
        changes["motion_weight"] = args.motion_weight
    if args.event_weight is not None:
        changes["event_weight"] = args.event_weight
    if args.event_balanced:
        changes["event_balanced"] = True
    if args.event_mix:
        changes["event_mix"] = args.event_mix
    if args.ghost_weight is not None:
        changes["ghost_weight"] = args.ghost_weight
    if getattr(args, "spread_in_loop", False):
        changes["spread_in_loop"] = True
    if getattr(args, "spread_weight", None) is not None:
        changes["spread_weight"] = args.spread_weight
    if args.adversarial_weight is not None:
        changes["adversarial_weight"] = args.adversarial_weight
    if args.critic_lr_scale is not None:
        changes["critic_lr_scale"] = args.critic_lr_scale
    if args.unrolled:
        changes["min_unrolled"], changes["max_unrolled"] = args.unrolled
    for flag, name in (("burn_in", "max_burn_in"), ("revisit", "revisit_fraction"),
                       ("revisit_batches", "revisit_batches"), ("revisit_steps", "revisit_steps"),
                       ("pool_clips", "pool_clips"), ("recall_weight", "recall_weight"),
                       ("pose_lr_scale", "pose_lr_scale")):
        if getattr(args, flag, None) is not None:
            changes[name] = getattr(args, flag)
    return changes


def _event_mix(text: str) -> tuple[tuple[str, float], ...]:
    """"ghost=4,rain=2" -> (("ghost", 4.0), ("rain", 2.0)); `EventPlan` checks the names and weights."""
    from yume_env.sim.events import EVENTS
    from yume_env.data.sim_clips import EventPlan

    mix = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        try:
            mix.append((name.strip(), float(weight)))
            EventPlan(mix=mix[-1:])
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{part!r}: expected EVENT=WEIGHT with EVENT one of {list(EVENTS)} and WEIGHT >= 0 (e.g. ghost=4)"
            ) from None
    try:
        if not mix:
            raise ValueError("no EVENT=WEIGHT part")
        return EventPlan(mix=mix).mix
    except ValueError as e:  # no part, or every weight 0
        raise argparse.ArgumentTypeError(f"{text!r}: {e} (expected EVENT=WEIGHT[,EVENT=WEIGHT], e.g. ghost=4)") from None


def _override(cfg, args: argparse.Namespace, batch_field: str = "batch_size"):
    t = cfg.trainer
    changes = {"parallel": args.parallel, "activation_checkpointing": args.activation_checkpointing}
    if args.steps is not None:
        changes["max_steps"] = args.steps
    if args.lr is not None:
        changes["lr"] = args.lr
    if args.budget_minutes is not None:
        changes["budget_s"] = args.budget_minutes * 60.0
    cfg = dataclasses.replace(cfg, trainer=dataclasses.replace(t, **changes))
    if args.batch_size is not None:
        cfg = dataclasses.replace(cfg, **{batch_field: args.batch_size})
    return cfg


def _need(value, flag: str, stage: str):
    if value is None:
        raise SystemExit(f"yume-env train {stage} needs {flag}")
    return value


def _run_stage(args: argparse.Namespace, preset: str) -> int:
    from safetensors.torch import load_file

    from yume_env.model.dit import build_dit
    from yume_env.model.vae import build_vae
    from yume_env.train import distributed as D
    from yume_env.data.sim_clips import FolderClipSource, SimClipSource
    from yume_env.train.recipes.default_world import PRESETS, _save_module
    from yume_env.train.text_cache import load_text_cache

    recipe = PRESETS[preset]()
    mc = recipe.model_config()
    info = D.init_distributed(args.device)
    out = Path(args.out)
    deadline = time.monotonic() + args.call_minutes * 60.0 if args.call_minutes > 0 else None
    frames_per_step = mc.latent_frames_per_chunk * mc.temporal_compression
    if args.data is not None:
        if args.stage == "reward":
            raise SystemExit("the reward stage needs the simulator's beacon labels; drop --data")
        source = FolderClipSource(args.data, mc.height, mc.width, frames_per_step, device=info.device)
    else:
        source = SimClipSource(mc.height, mc.width, frames_per_step, device=info.device)

    def load_vae():
        vae = build_vae(mc.vae, mc.latent_channels)
        vae.load_state_dict(load_file(_need(args.vae, "--vae FILE", args.stage)))
        return vae.to(info.device).eval().requires_grad_(False)

    def text():
        return load_text_cache(_need(getattr(args, "text_cache", None), "--text-cache FILE", args.stage))

    metrics: dict = {}
    if args.stage == "vae":
        from yume_env.train.stages.vae import train_vae

        module, result, metrics = train_vae(mc, _override(recipe.vae, args), out, source=source, info=info, deadline=deadline)
        curves, finished, name = result.curves, result.finished, "vae"
    elif args.stage in ("pretrain", "self-forcing"):
        dit = build_dit(mc)
        if args.stage == "pretrain":
            from yume_env.train.stages.pretrain import train_pretrain

            trainer = train_pretrain(mc, dit, load_vae(), text(), _override(recipe.pretrain, args), out, source=source,
                                     info=info, deadline=deadline)
        else:
            from yume_env.train.stages.self_forcing import train_self_forcing

            dit.load_state_dict(load_file(_need(args.init, "--init DIT_FILE", args.stage)))
            trainer = train_self_forcing(mc, dit, load_vae(), text(), _override(recipe.self_forcing, args), out,
                                         source=source, info=info, deadline=deadline)
        if trainer.done():
            trainer.averaged_module()
        module, curves, finished, name = dit, trainer.curves, trainer.done(), "dit"
    else:  # reward
        from yume_env.train.stages.task_head import train_task_head

        module, trainer, metrics = train_task_head(mc, load_vae(), _override(recipe.reward, args), out, source=source,
                                                   info=info, deadline=deadline)
        curves, finished, name = trainer.curves, trainer.done(), "task_head"
    if info.is_main:
        curves.save(out / "curves.json", out / "curves.png", title=args.stage)
        if finished:
            meta = module.metadata() if hasattr(module, "metadata") else None
            _save_module(module, out / f"{name}.safetensors", meta)
            (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    print(json.dumps({"stage": args.stage, "finished": bool(finished), "metrics": metrics,
                      "last_loss": curves.last("loss")}, indent=1))
    D.shutdown()
    return 0
