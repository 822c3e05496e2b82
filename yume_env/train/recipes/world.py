"""`yume-env train world`: from data (the simulator, or recorded clips) to a model folder.

    yume-env train world --out RUN --preset default-world --minutes 20 --call-minutes 8.5
    yume-env train world --data DIR --out RUN --preset tiny --steps 200      # your own recorded env

Stages: `pretrain` (the DiT denoises the next chunk from a noised history, `stages/pretrain.py`),
`reward` (the task head, `stages/task_head.py`), then the export: RUN/model/ (config.json,
weights, text cache, start frames, README.md: the model card) and RUN/samples/*.gif. Every stage checkpoints
into RUN/ckpt/<stage>/ and resumes from there, so a run is many short calls; RUN/run.json says
which stages are done. Presets are JSON files in `yume_env/train/presets/world/`, changed with
`--set section.field=value`. Worlds denoise pixels (the `pixel` codec): there is no autoencoder
to train.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from yume_env.atomic import atomic_write_text
from yume_env.data.recorded_clips import RecordedClipSource
from yume_env.data.shards import read_index
from yume_env.data.sim_clips import ActionPolicy, SimClipSource
from yume_env.model.checkpoint import save_safetensors
from yume_env.model.codecs import build_vae
from yume_env.model.config import WorldModelConfig
from yume_env.model.dit import build_dit
from yume_env.model.task_head import TaskHead
from yume_env.train import distributed as D
from yume_env.train.curves import Curves
from yume_env.train.overrides import apply_changes
from yume_env.train.presets import read_preset
from yume_env.train.seeding import seed_everything
from yume_env.train.stages.pretrain import PretrainConfig, train_pretrain
from yume_env.train.stages.task_head import RewardConfig, head_kind, train_task_head
from yume_env.train.trainer import TrainerConfig

STAGES = ("pretrain", "reward")


@dataclass
class WorldRecipe:
    """Everything `yume-env train world` does, as data (a preset file sets some of it)."""

    model_preset: str = "pixel"  # a `WorldModelConfig` preset ...
    model: dict[str, Any] = field(default_factory=dict)  # ... with these fields changed
    fractions: dict[str, float] = field(default_factory=lambda: {"pretrain": 0.9, "reward": 0.1})  # of --minutes
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    start_frames: int = 64  # start views shipped with the model
    eval_clips: int = 16  # clips for the export's teacher-forced and rollout PSNR
    eval_steps: int = 16
    sample_gifs: int = 4  # rollouts written as gifs (data | world)
    sample_steps: int = 32
    script: list[str] = field(default_factory=lambda: ["W"] * 6 + ["→"] * 6 + ["W"] * 6 + ["←"] * 6 + ["S"] * 4)
    export_seconds: float = 90.0  # kept at the end of a call for measuring and exporting
    seed: int = 0

    def model_config(self, data: dict[str, Any] | None = None) -> WorldModelConfig:
        """The world's config: the model preset, fitted to recorded data (`data`: its shard index:
        frame size, action space, one frame per step, no camera poses), then the `model` changes."""
        mc = WorldModelConfig.preset(self.model_preset)
        if data is not None:
            size = int(data["frame_size"])
            if size % mc.spatial_compression:
                raise ValueError(
                    f"the recorded frames are {size}x{size}; this world needs sides that are multiples of "
                    f"{mc.spatial_compression}: record again with --size {size // mc.spatial_compression * mc.spatial_compression or mc.spatial_compression}"
                )
            space = data["action_space"]
            names = space.get("names") or []
            mc = mc.replace(
                height=size,
                width=size,
                latent_frames_per_chunk=1,
                pose_memory=False,
                recall_frames=0,
                tscm_schedule="tiny-fine",
                action_embedding=True,
                action_nvec=list(space["nvec"]),
                action_names=names if names and len(names) == len(space["nvec"]) else [],
                fps=int(data.get("fps") or mc.fps),
            )
        return mc.replace(**self.model)


def load_recipe(preset: str, overrides: list[str] = ()) -> WorldRecipe:
    """The recipe of a preset file with `section.field=value` overrides applied."""
    return apply_changes(WorldRecipe(), read_preset("world", preset), list(overrides), f"preset {preset}")


# ------------------------------------------------------------------------------------ run state


class Run:
    """RUN/run.json: the preset and overrides, which stages are done, their metrics, each call's time."""

    def __init__(self, root: Path, preset: str, overrides: list[str], writer: bool = True):
        self.root, self.writer, self.path = root, writer, root / "run.json"
        if self.path.is_file():
            self.state = json.loads(self.path.read_text(encoding="utf-8"))
            if (self.state["preset"], self.state.get("overrides", [])) != (preset, list(overrides)):
                raise ValueError(
                    f"{root} holds a run of preset {self.state['preset']!r} with overrides "
                    f"{self.state.get('overrides', [])}; call with the same, or use another --out folder"
                )
        else:
            self.state = {"preset": preset, "overrides": list(overrides), "stages": {}, "calls": [], "metrics": {}}

    def done(self, stage: str) -> bool:
        return bool(self.state["stages"].get(stage, {}).get("done"))

    def finish(self, stage: str, steps: int, elapsed_s: float, metrics: dict[str, Any]) -> None:
        self.state["stages"][stage] = {"done": True, "steps": int(steps), "elapsed_s": float(elapsed_s)}
        self.state["metrics"].update(metrics)
        self.save()

    def save(self) -> None:
        if self.writer:
            atomic_write_text(self.path, json.dumps(self.state, indent=1), durable=True)

    def weights(self, name: str) -> Path:
        return self.root / "weights" / f"{name}.safetensors"


def _save_module(module: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Rank 0 writes; every rank waits until the file is there (the next stage loads it)."""
    if D.rank() == 0:
        save_safetensors(path, {k: v.float() for k, v in module.state_dict().items()}, metadata, durable=True)
    D.barrier()


def _load_module(module: torch.nn.Module, path: Path) -> torch.nn.Module:
    from safetensors.torch import load_file

    module.load_state_dict(load_file(str(path)))
    return module


def _stage_trainer(
    cfg: TrainerConfig, fraction: float, minutes: float, steps: int | None, seed: int, logger: str = "json"
) -> TrainerConfig:
    cfg = dataclasses.replace(cfg, seed=seed, logger=logger)
    if minutes > 0:
        cfg.budget_s = fraction * minutes * 60.0
    if steps is not None:
        cfg.max_steps = min(cfg.max_steps, int(steps))
    if torch.distributed.is_initialized() and cfg.parallel == "none":  # under torchrun: data parallel
        cfg.parallel = "ddp"
    return cfg


# ------------------------------------------------------------------------------------ the recipe


def run_world(
    out: str | Path,
    preset: str = "default-world",
    overrides: list[str] = (),
    *,
    data: str | None = None,
    text_cache: str | Path | None = None,
    minutes: float = 0.0,
    steps: int | None = None,
    call_minutes: float = 0.0,
    device: str = "auto",
    logger: str = "json",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Advances the run in `out` as far as this call's time allows; returns run.json's state.

    `state["exported"]` is True once RUN/model/ is written; call again to continue otherwise."""
    t_start = time.monotonic()
    info = D.init_distributed(device)
    if not info.is_main:
        log = lambda message: None  # noqa: E731  (one log, rank 0's)
    recipe = load_recipe(preset, list(overrides))
    index = read_index(data) if data is not None else None
    mc = recipe.model_config(index)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    run = Run(root, preset, list(overrides), writer=info.is_main)
    run.state["data"] = None if data is None else f"{index['episodes']} recorded episodes of {index['env_id']} ({data})"
    call = {
        "started_unix": time.time(),
        "device": _device_name(info.device),
        "world_size": info.world_size,
        "torch": torch.__version__,
        "seconds": 0.0,
    }
    run.state["calls"].append(call)
    deadline = t_start + call_minutes * 60.0 - 20.0 if call_minutes > 0 else None  # 20 s for the last checkpoint
    text = _text_conditioner(text_cache)
    source = _source(mc, data, info.device)
    vae = build_vae(mc.vae, mc.latent_channels).to(info.device)

    def account() -> dict[str, Any]:
        call["seconds"] = time.monotonic() - t_start
        run.save()
        return run.state

    def out_of_time() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    # 1. pretrain
    seed_everything(recipe.seed)
    dit = build_dit(mc, device="cpu")
    if not run.done("pretrain"):
        log("stage pretrain")
        cfg = dataclasses.replace(
            recipe.pretrain,
            trainer=_stage_trainer(
                recipe.pretrain.trainer, recipe.fractions["pretrain"], minutes, steps, recipe.seed, logger
            ),
        )
        trainer = train_pretrain(
            mc, dit, vae, text, cfg, root / "ckpt" / "pretrain", source=source, info=info, deadline=deadline
        )
        _save_curves(root, "pretrain", trainer.curves)
        log(
            f"pretrain: step {trainer.step}, {trainer.elapsed_s / 60:.1f} min, loss {trainer.curves.mean_last('loss', 10)}"
        )
        if not trainer.done():
            return account()
        trainer.averaged_module()
        _save_module(dit, run.weights("dit"))
        run.finish(
            "pretrain", trainer.step, trainer.elapsed_s, {"pretrain_final_loss": trainer.curves.mean_last("loss", 20)}
        )
        _drop(root / "ckpt" / "pretrain")
    dit = _load_module(dit.cpu(), run.weights("dit")).to(info.device)

    # 2. reward (task head)
    seed_everything(recipe.seed + 1)
    head = TaskHead(mc.latent_channels, mc.latent_hw, recipe.reward.width, recipe.reward.hidden, head_kind(source))
    if not run.done("reward"):
        if out_of_time():
            return account()
        log("stage reward")
        cfg = dataclasses.replace(
            recipe.reward,
            trainer=_stage_trainer(
                recipe.reward.trainer, recipe.fractions["reward"], minutes, steps, recipe.seed + 1, logger
            ),
        )
        head, trainer, metrics = train_task_head(
            mc, vae, cfg, root / "ckpt" / "reward", source=source, info=info, deadline=deadline
        )
        _save_curves(root, "reward", trainer.curves)
        if not trainer.done():
            return account()
        _save_module(head, run.weights("task_head"), head.metadata())
        run.finish("reward", trainer.step, trainer.elapsed_s, metrics)
        _drop(root / "ckpt" / "reward")
        log(f"reward done: {metrics}")
    head = _load_module(head, run.weights("task_head")).to(info.device)

    # 3. measure and export (rank 0)
    if not run.state.get("exported") and info.is_main:
        if deadline is not None and deadline + 20.0 - time.monotonic() < recipe.export_seconds:
            log("all stages done; not enough time left in this call to export: call again")
            return account()
        from yume_env.train.recipes.export import export_model

        metrics = export_model(root, mc, recipe, dit, vae, head, text, source, run.state)
        run.state["metrics"].update(metrics)
        run.state["exported"] = True
        log(f"exported {root / 'model'}")
    return account()


def _source(mc: WorldModelConfig, data: str | None, device):
    """The simulator, or the training episodes of a recorded shard folder."""
    if data is None:
        sub_frames = mc.latent_frames_per_chunk * mc.temporal_compression
        return SimClipSource(mc.height, mc.width, sub_frames=sub_frames, device=device, policy=ActionPolicy())
    return RecordedClipSource(data, device=device)


def _save_curves(root: Path, stage: str, curves: Curves) -> None:
    if D.rank() == 0:
        curves.save(root / "curves" / f"{stage}.json", root / "curves" / f"{stage}.png", title=f"world: {stage}")


def _drop(path: Path) -> None:
    D.barrier()  # every rank has read its checkpoint before rank 0 removes it
    if D.rank() == 0:
        shutil.rmtree(path, ignore_errors=True)


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _text_conditioner(path: str | Path | None):
    from yume_env.train.text_cache import build_text_cache, load_text_cache

    if path is not None:
        return load_text_cache(path)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:  # needs the MiniLM package (absent on GPU machines)
        return load_text_cache(build_text_cache(Path(tmp) / "text_cache.safetensors"))


# ------------------------------------------------------------------------------------ command line


def run(args) -> int:
    """`yume-env train world ARGS` (options in `yume_env/cli/train.py`)."""
    import sys

    state = run_world(
        args.out,
        args.preset,
        args.overrides,
        data=args.data,
        text_cache=args.text_cache,
        minutes=args.minutes,
        steps=args.steps,
        call_minutes=args.call_minutes,
        device=args.device,
        logger=args.logger,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    done = [s for s in STAGES if state["stages"].get(s, {}).get("done")]
    print(
        json.dumps(
            {
                "exported": bool(state.get("exported")),
                "stages_done": done,
                "call_seconds": round(state["calls"][-1]["seconds"], 1),
                "metrics": {k: v for k, v in state["metrics"].items() if not isinstance(v, list)},
            },
            indent=1,
        )
    )
    D.shutdown()
    return 0
