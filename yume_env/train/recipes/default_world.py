"""The recipe that trains the shipped default world: vae -> pretrain -> self-forcing -> reward -> export.

    python -m yume_env.train.recipes.default_world --out RUN --text-cache text_cache.safetensors \\
        --budget-minutes 25 --call-minutes 8.5          # call again with the same RUN to continue
    yume-env train default-world ...                    # the same

Training batches are rendered by the simulator on the fly (BatchSimulator on the GPU: no disk).
Each stage gets `fraction x budget` of wall-clock time (`RecipeConfig.fractions`), checkpoints
about every minute into RUN/ckpt/<stage>/, and resumes from there when the command is called
again, so the recipe runs in several short commands. A finished stage leaves only its (EMA)
weights in RUN/weights/. When all stages are done, the recipe measures the model against the
simulator and writes RUN/model/ (config.json, dit/vae/task_head safetensors, text_cache/,
start_frames.npz, MODEL_CARD.md): the folder shipped as `yume_env/assets/default_world/`, plus
RUN/samples/*.gif (simulator | model side by side) and RUN/curves/*.png|json.

`--smoke` is a CPU preset (32x32 frames, a 2-layer DiT, a few steps per stage) for the tests.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from yume_env.model.config import WorldModelConfig, parse_assignment
from yume_env.model.dit import build_dit
from yume_env.model.vae import build_vae
from yume_env.model.task_head import TaskHead
from yume_env.train import distributed as D
from yume_env.data.sim_clips import ActionPolicy, SimClipSource, batch_seed
from yume_env.train.checkpointing import atomic_save_safetensors, atomic_write_text
from yume_env.train.curves import Curves
from yume_env.train.stages.pretrain import PretrainConfig, train_pretrain
from yume_env.train.stages.self_forcing import SelfForcingConfig, train_self_forcing
from yume_env.train.stages.task_head import RewardConfig, train_task_head
from yume_env.train.stages.vae import VAEStageConfig, train_vae
from yume_env.train.trainer import TrainerConfig

STAGES = ("vae", "pretrain", "self_forcing", "reward")


@dataclass
class RecipeConfig:
    """Everything the recipe does, as data. `fractions` split `--budget-minutes` between stages."""

    model_preset: str = "tiny"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    fractions: dict[str, float] = field(default_factory=lambda: {
        "vae": 0.12, "pretrain": 0.58, "self_forcing": 0.20, "reward": 0.10})
    vae: VAEStageConfig = field(default_factory=VAEStageConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    self_forcing: SelfForcingConfig = field(default_factory=SelfForcingConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    start_frames: int = 64  # simulator start views (beacon in view) shipped with the model
    eval_clips: int = 16  # clips for the drift / teacher-forced measurements
    eval_steps: int = 16  # rollout length for drift (PSNR vs the simulator)
    sample_gifs: int = 4  # rollouts written as gifs (simulator | model)
    sample_steps: int = 24
    script: list[str] = field(default_factory=lambda: ["W"] * 6 + ["→"] * 6 + ["W"] * 6 + ["←"] * 6 + ["S"] * 4 + ["W+A"] * 4)
    export_seconds: float = 90.0  # time kept for measuring and exporting at the end of a call
    stop_after: str = ""  # a stage name: end the run there (a model sweep measures pretraining only)
    seed: int = 0

    def model_config(self) -> WorldModelConfig:
        return WorldModelConfig.preset(self.model_preset).replace(**self.model_overrides)


def _tc(**kw) -> TrainerConfig:
    return TrainerConfig(**kw)


def default_recipe() -> RecipeConfig:
    """The shipped default world: the tiny preset with 1x1 patches (a sweep measured them 0.9 dB
    better than 2x2 at equal time, `docs/training.md`), about 25 minutes of one H100/H200.
    2 denoising steps per chunk: `yume-env eval` measured them as good as 3 on this model
    (teacher-forced and rollout PSNR, action and event following) and 1.3x faster."""
    return RecipeConfig(
        model_overrides={"patch_size": [1, 1, 1], "tscm_schedule": "tiny-fine", "sample_steps": 2},
        fractions={"vae": 0.12, "pretrain": 0.66, "self_forcing": 0.10, "reward": 0.12},
        vae=VAEStageConfig(pool_clips=1024),
        pretrain=PretrainConfig(trainer=_tc(lr=6e-4, warmup_steps=200, max_steps=50_000, ema_decay=0.999, weight_decay=0.01),
                                batch_size=192, pool_clips=1024, pool_reuse=4),
    )


def smoke_recipe() -> RecipeConfig:
    """A few CPU steps per stage on a 32x32, 2-layer model: checks the whole pipeline end to end."""
    fast = dict(warmup_steps=2, checkpoint_every_s=0, checkpoint_every_steps=4, log_every=1, progress=False)
    return RecipeConfig(
        model_overrides=dict(height=32, width=32, dim=64, ffn_dim=128, num_layers=2, num_heads=2,
                             vae={"type": "tiny", "spatial_compression": 8, "temporal_compression": 1,
                                  "channels": [8, 8, 8]}),
        vae=VAEStageConfig(trainer=_tc(lr=2e-3, max_steps=8, ema_decay=0.9, **fast), batch_size=4, clip_steps=1,
                           pool_clips=8, stats_batches=1),
        pretrain=PretrainConfig(trainer=_tc(lr=2e-3, max_steps=8, ema_decay=0.9, **fast), batch_size=4, clip_steps=3,
                                pool_clips=8),
        self_forcing=SelfForcingConfig(trainer=_tc(lr=1e-3, max_steps=3, ema_decay=0.9, **fast), batch_size=2,
                                       max_burn_in=1, max_generated=1, pool_clips=2,
                                       flow=PretrainConfig(history_noise_max=0.05)),
        reward=RewardConfig(trainer=_tc(lr=2e-3, max_steps=6, ema_decay=0.9, **fast), batch_size=2, clip_steps=6,
                            pool_clips=4),
        start_frames=4, eval_clips=2, eval_steps=3, sample_gifs=1, sample_steps=4, export_seconds=0.0,
        script=["W", "W", "→", "S"],
    )


PRESETS = {"default": default_recipe, "smoke": smoke_recipe}


def apply_overrides(recipe: RecipeConfig, overrides: list[str]) -> RecipeConfig:
    """`["pretrain.batch_size=128", "pretrain.trainer.lr=3e-4", "fractions.vae=0.1"]` -> a changed copy.

    Values are read as JSON (numbers, true/false, lists, quoted strings) or else taken as text.
    """
    recipe = copy.deepcopy(recipe)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like section.field=value, e.g. pretrain.batch_size=128")
        key, value = parse_assignment(item)
        *path, last = key.split(".")
        target = recipe
        for part in path:
            target = target[part] if isinstance(target, dict) else getattr(target, part, None)
            if target is None:
                raise ValueError(f"override {item!r}: no section {part!r} in the recipe")
        if isinstance(target, dict):
            if last not in target and path != ["model_overrides"]:
                raise ValueError(f"override {item!r}: {'.'.join(path)} has no key {last!r}; keys: {sorted(target)}")
            target[last] = value
        elif dataclasses.is_dataclass(target) and last in {f.name for f in dataclasses.fields(target)}:
            setattr(target, last, value)
        else:
            names = sorted(f.name for f in dataclasses.fields(target)) if dataclasses.is_dataclass(target) else []
            raise ValueError(f"override {item!r}: no field {last!r} (fields: {names})")
    return recipe


# ------------------------------------------------------------------------------------ run state

class Run:
    """RUN/run.json: which stages are done, their metrics, and the time each call spent."""

    def __init__(self, root: Path, preset: str, budget_minutes: float, writer: bool = True):
        self.root = root
        self.writer = writer  # under torchrun only rank 0 writes
        self.path = root / "run.json"
        if self.path.is_file():
            self.state = json.loads(self.path.read_text(encoding="utf-8"))
            if self.state["preset"] != preset:
                raise ValueError(f"{root} holds a run of preset {self.state['preset']!r}, not {preset!r}; "
                                 "use another --out folder")
        else:
            self.state = {"preset": preset, "budget_minutes": budget_minutes, "stages": {}, "calls": [], "metrics": {}}
        self.state["budget_minutes"] = budget_minutes

    def done(self, stage: str) -> bool:
        return bool(self.state["stages"].get(stage, {}).get("done"))

    def finish(self, stage: str, steps: int, elapsed_s: float, metrics: dict[str, Any]) -> None:
        self.state["stages"][stage] = {"done": True, "steps": int(steps), "elapsed_s": float(elapsed_s),
                                       "steps_per_s": float(steps) / max(float(elapsed_s), 1e-9)}
        self.state["metrics"].update(metrics)
        self.save()

    def save(self) -> None:
        if self.writer:
            atomic_write_text(self.path, json.dumps(self.state, indent=1))

    def weights(self, name: str) -> Path:
        return self.root / "weights" / f"{name}.safetensors"


def _save_module(module: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Rank 0 writes; every rank waits until the file is there (the next stage loads it)."""
    if not (torch.distributed.is_initialized() and torch.distributed.get_rank() != 0):
        atomic_save_safetensors({k: v.float() for k, v in module.state_dict().items()}, path, metadata)
    D.barrier()


def _load_module(module: torch.nn.Module, path: Path) -> torch.nn.Module:
    from safetensors.torch import load_file

    module.load_state_dict(load_file(str(path)))
    return module


def _stage_budget(cfg: TrainerConfig, fraction: float, budget_minutes: float) -> TrainerConfig:
    cfg = copy.deepcopy(cfg)
    if budget_minutes > 0:
        cfg.budget_s = fraction * budget_minutes * 60.0
    if torch.distributed.is_initialized() and cfg.parallel == "none":  # under torchrun: data parallel
        cfg.parallel = "ddp"
    return cfg


def _save_curves(root: Path, stage: str, curves: Curves) -> None:
    if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return
    curves.save(root / "curves" / f"{stage}.json", root / "curves" / f"{stage}.png", title=f"default world: {stage}")


# ------------------------------------------------------------------------------------ the recipe

def run_recipe(out: str | Path, text_cache: str | Path | None, preset: str = "default", budget_minutes: float = 0.0,
               call_minutes: float = 0.0, device: str = "auto", log=print,
               overrides: list[str] | None = None) -> dict[str, Any]:
    """Advances the run in `out` as far as this call's time allows; returns run.json's state.

    `state["exported"]` is True once RUN/model/ is written. Call again to continue otherwise.
    """
    t_start = time.monotonic()
    info = D.init_distributed(device)
    if not info.is_main:
        log = lambda message: None  # noqa: E731  (one log, rank 0's)
    recipe = apply_overrides(PRESETS[preset](), list(overrides or []))
    if recipe.stop_after and recipe.stop_after not in STAGES:
        raise ValueError(f"stop_after must be one of {STAGES} (or empty), got {recipe.stop_after!r}")
    mc = recipe.model_config()
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    run = Run(root, preset, budget_minutes, writer=info.is_main)
    run.state["overrides"] = list(overrides or [])
    call = {"started_unix": time.time(), "device": _device_name(info.device), "world_size": info.world_size,
            "torch": torch.__version__, "seconds": 0.0}
    run.state["calls"].append(call)
    deadline = t_start + call_minutes * 60.0 - 20.0 if call_minutes > 0 else None  # 20 s for the last checkpoint
    text = _text_conditioner(text_cache)
    torch.manual_seed(recipe.seed)
    source = SimClipSource(mc.height, mc.width, sub_frames=mc.latent_frames_per_chunk * mc.temporal_compression,
                           device=info.device, policy=ActionPolicy())

    def out_of_time() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    def account() -> None:
        call["seconds"] = time.monotonic() - t_start
        run.save()

    def stops_after(stage: str) -> bool:  # `stop_after`: account for the call and end the run here
        if recipe.stop_after == stage:
            account()
        return recipe.stop_after == stage

    # 1. VAE
    vae = build_vae(mc.vae, mc.latent_channels)
    if not run.done("vae"):
        log("stage vae")
        cfg = dataclasses.replace(recipe.vae, trainer=_stage_budget(recipe.vae.trainer, recipe.fractions["vae"], budget_minutes))
        vae, result, metrics = train_vae(mc, cfg, root / "ckpt" / "vae", deadline=deadline, source=source, info=info)
        _save_curves(root, "vae", result.curves)
        log(f"vae: step {result.step}, {result.elapsed_s / 60:.1f} min, loss {result.curves.mean_last('loss', 10)}")
        if not result.finished:
            account()
            return run.state
        _save_module(vae, run.weights("vae"))
        run.finish("vae", result.step, result.elapsed_s, metrics)
        _drop(root / "ckpt" / "vae")
        log(f"vae done: {metrics}")
    if stops_after("vae"):
        return run.state
    vae = _load_module(vae, run.weights("vae")).to(info.device).eval().requires_grad_(False)

    # 2. pretrain
    dit = build_dit(mc, device="cpu")
    if not run.done("pretrain"):
        if out_of_time():
            account()
            return run.state
        log("stage pretrain")
        cfg = dataclasses.replace(recipe.pretrain, trainer=_stage_budget(recipe.pretrain.trainer, recipe.fractions["pretrain"], budget_minutes))
        trainer = train_pretrain(mc, dit, vae, text, cfg, root / "ckpt" / "pretrain", source=source, info=info, deadline=deadline)
        _save_curves(root, "pretrain", trainer.curves)
        log(f"pretrain: step {trainer.step}, {trainer.elapsed_s / 60:.1f} min, loss {trainer.curves.mean_last('loss', 10)}")
        if not trainer.done():
            account()
            return run.state
        trainer.averaged_module()
        _save_module(dit, run.weights("dit_pretrain"))
        before = _drift(mc, dit, vae, text, source, recipe, seed=11)
        run.finish("pretrain", trainer.step, trainer.elapsed_s, {
            "pretrain_final_loss": trainer.curves.mean_last("loss", 20),
            "drift_psnr_before_self_forcing": before["psnr_mean"],
            "drift_psnr_by_step_before_self_forcing": before["psnr_by_step"]})
        _drop(root / "ckpt" / "pretrain")
        log(f"pretrain done: rollout PSNR {before['psnr_mean']:.2f} dB")
    if stops_after("pretrain"):
        return run.state

    # 3. self-forcing (from the pretrained EMA weights)
    if not run.done("self_forcing"):
        if out_of_time():
            account()
            return run.state
        dit = _load_module(dit.cpu(), run.weights("dit_pretrain")).to(info.device)
        log("stage self_forcing")
        cfg = dataclasses.replace(recipe.self_forcing, trainer=_stage_budget(
            recipe.self_forcing.trainer, recipe.fractions["self_forcing"], budget_minutes))
        trainer = train_self_forcing(mc, dit, vae, text, cfg, root / "ckpt" / "self_forcing", source=source, info=info,
                                     deadline=deadline)
        _save_curves(root, "self_forcing", trainer.curves)
        log(f"self_forcing: step {trainer.step}, {trainer.elapsed_s / 60:.1f} min, loss {trainer.curves.mean_last('loss', 10)}")
        if not trainer.done():
            account()
            return run.state
        trainer.averaged_module()
        _save_module(dit, run.weights("dit_self_forcing"))
        after = _drift(mc, dit, vae, text, source, recipe, seed=11)
        run.finish("self_forcing", trainer.step, trainer.elapsed_s, {
            "drift_psnr_after_self_forcing": after["psnr_mean"],
            "drift_psnr_by_step_after_self_forcing": after["psnr_by_step"]})
        _drop(root / "ckpt" / "self_forcing")
        # Ship whichever weights drift less against the simulator: self-forcing has cost the
        # default world 1-2 dB of rollout PSNR in every run so far (MODEL_CARD records the choice).
        before_db = run.state["metrics"].get("drift_psnr_before_self_forcing", float("-inf"))
        keep = "dit_self_forcing" if after["psnr_mean"] >= before_db else "dit_pretrain"
        run.state["metrics"]["exported_dit"] = keep
        run.save()
        if info.is_main:  # the other one is superseded; keeps the run folder small to carry
            other = "dit_pretrain" if keep == "dit_self_forcing" else "dit_self_forcing"
            run.weights(other).unlink(missing_ok=True)
        log(f"self-forcing done: rollout PSNR {after['psnr_mean']:.2f} dB (before {before_db:.2f} dB); exporting {keep}")
    if stops_after("self_forcing"):
        return run.state
    keep = run.state["metrics"].get("exported_dit", "dit_self_forcing")
    dit = _load_module(dit.cpu(), run.weights(keep)).to(info.device)

    # 4. reward (task head)
    head = TaskHead(mc.latent_channels, mc.latent_hw, recipe.reward.width, recipe.reward.hidden)
    if not run.done("reward"):
        if out_of_time():
            account()
            return run.state
        log("stage reward")
        cfg = dataclasses.replace(recipe.reward, trainer=_stage_budget(recipe.reward.trainer, recipe.fractions["reward"], budget_minutes))
        head, trainer, metrics = train_task_head(mc, vae, cfg, root / "ckpt" / "reward", source=source, info=info,
                                                 deadline=deadline)
        _save_curves(root, "reward", trainer.curves)
        log(f"reward: step {trainer.step}, {trainer.elapsed_s / 60:.1f} min, loss {trainer.curves.mean_last('loss', 10)}")
        if not trainer.done():
            account()
            return run.state
        _save_module(head, run.weights("task_head"), head.metadata())
        run.finish("reward", trainer.step, trainer.elapsed_s, metrics)
        _drop(root / "ckpt" / "reward")
        log(f"reward done: {metrics}")
    head = _load_module(head, run.weights("task_head")).to(info.device)
    if stops_after("reward"):  # all stages trained, nothing exported
        return run.state

    # 5. measure and export (rank 0)
    if not run.state.get("exported") and info.is_main:
        if deadline is not None and deadline + 20.0 - time.monotonic() < recipe.export_seconds:
            log("all stages done; not enough time left in this call to export: call again")
            account()
            return run.state
        from yume_env.train.recipes.export import export_model

        metrics = export_model(root, mc, recipe, dit, vae, head, text, source, run.state)
        run.state["metrics"].update(metrics)
        run.state["exported"] = True
        log(f"exported {root / 'model'}")
    account()
    return run.state


def drift_clips(source: SimClipSource, recipe: RecipeConfig, seed: int):
    """The simulator clips the recipe measures drift on (the same for every run of a recipe)."""
    return source.render(recipe.eval_clips, recipe.eval_steps, batch_seed(recipe.seed + 424242, seed))


def _drift(mc, dit, vae, text, source, recipe: RecipeConfig, seed: int) -> dict[str, Any]:
    from yume_env.train.rollout import rollout_psnr, snapshot_world

    world = snapshot_world(mc, dit, vae, text)
    out = rollout_psnr(world, drift_clips(source, recipe, seed), recipe.eval_steps, seed=seed)
    out.pop("frames")
    return out


def _drop(path: Path) -> None:
    import shutil

    D.barrier()  # every rank has read its checkpoint before rank 0 removes it
    if not (torch.distributed.is_initialized() and torch.distributed.get_rank() != 0):
        shutil.rmtree(path, ignore_errors=True)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def _text_conditioner(path: str | Path | None):
    from yume_env.train.text_cache import build_text_cache, load_text_cache

    if path is not None:
        return load_text_cache(path)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:  # needs the MiniLM package (absent on GPU machines)
        return load_text_cache(build_text_cache(Path(tmp) / "text_cache.safetensors"))


# ------------------------------------------------------------------------------------ command line

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="run folder (checkpoints, weights, model/, samples/, curves/)")
    parser.add_argument("--text-cache", default=None,
                        help="text cache file from `yume-env train text-cache` (needed where MiniLM is not installed)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument("--smoke", action="store_true", help="the CPU smoke preset (same as --preset smoke)")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="wall-clock training budget over all calls, split by the recipe's fractions "
                             "(default: 25 for the default preset, none for smoke)")
    parser.add_argument("--call-minutes", type=float, default=0.0,
                        help="stop this call after this many minutes (checkpointed; call again to continue)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="change a recipe value, e.g. --set pretrain.batch_size=128 (repeat; pass the same on every call)")


def run(args: argparse.Namespace) -> int:
    preset = "smoke" if args.smoke else args.preset
    budget = args.budget_minutes if args.budget_minutes is not None else (25.0 if preset == "default" else 0.0)
    state = run_recipe(args.out, args.text_cache, preset=preset, budget_minutes=budget, call_minutes=args.call_minutes,
                       device=args.device, log=lambda m: print(m, file=sys.stderr, flush=True),
                       overrides=getattr(args, "overrides", []))
    done = [s for s in STAGES if state["stages"].get(s, {}).get("done")]
    summary = {"exported": bool(state.get("exported")), "stages_done": done,
               "call_seconds": round(state["calls"][-1]["seconds"], 1),
               "metrics": {k: v for k, v in state["metrics"].items() if not isinstance(v, list)}}
    print(json.dumps(summary, indent=1))
    D.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m yume_env.train.recipes.default_world", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
