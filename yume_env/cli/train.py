"""`yume-env train`: train a world from data, fine-tune a world, or build the text cache.

    yume-env train world --out RUN [--data DIR] [--preset default-world] [--minutes M | --steps N]
    yume-env train finetune --model MODEL --data DIR [DIR ...] --out OUT [--preset lora|full]
    yume-env train text-cache --out text_cache.safetensors

`world` runs every stage (pretrain, the task head, the export to RUN/model/) and resumes from RUN/
when called again. Both training commands take `--preset` (the JSON files of
`yume_env/train/presets/<stage>/`) and `--set section.field=value`, which changes any value of the
stage's config (`WorldRecipe` in `recipes/world.py`, `FinetuneConfig` in `finetune.py`). Building
this parser imports no torch.
"""

from __future__ import annotations

import argparse
import importlib

from yume_env.train.presets import preset_names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    world = sub.add_parser(
        "world",
        help="from data (the simulator or recorded clips) to a model folder: "
        "pretrain -> task head -> export; resumable",
    )
    world.add_argument("--out", required=True, help="run folder (checkpoints, weights, model/, samples/, curves/)")
    world.add_argument(
        "--data", default=None, help="recorded clips to train on (yume-env data record); default: the simulator"
    )
    world.add_argument("--preset", default="default-world", choices=preset_names("world"), help="recipe preset")
    _add_set(world, "--set pretrain.batch_size=64")
    world.add_argument("--minutes", type=float, default=0.0, help="training budget over all calls (0: steps only)")
    world.add_argument("--steps", type=int, default=None, help="cap the optimizer steps of every stage")
    world.add_argument(
        "--call-minutes",
        type=float,
        default=0.0,
        help="end this call after this many minutes (checkpointed; call again to continue)",
    )
    world.add_argument("--text-cache", default=None, help="text cache file, where MiniLM is not installed")
    world.add_argument("--device", default="auto", help="auto | cpu | cuda")
    world.add_argument(
        "--logger",
        choices=("json", "tensorboard"),
        default="json",
        help="curves as JSON/PNG in RUN/curves/ (always), and TensorBoard events in RUN/tensorboard/",
    )

    cache = sub.add_parser("text-cache", help="embed the action captions and event texts once (for GPU machines)")
    cache.add_argument("--out", required=True, help="the cache file to write")
    cache.add_argument("--encoder", default="minilm", help="text encoder (minilm)")

    tune = sub.add_parser("finetune", help="LoRA or full fine-tuning of a world on recorded or Sekai-layout clips")
    tune.add_argument("--model", required=True, help="model folder (ours or the published Yume-5B) or preset:NAME")
    tune.add_argument(
        "--data", required=True, nargs="+", help="Sekai-layout folders (yume-env data generate, or Sekai)"
    )
    tune.add_argument("--out", required=True, help="run folder (checkpoints, latents cache, outputs); resumes from it")
    tune.add_argument("--preset", default="lora", choices=preset_names("finetune"), help="LoRA adapters or all weights")
    _add_set(tune, "--set lora_rank=8 --set trainer.lr=3e-4 --set merge=true")
    tune.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the preset's)")
    tune.add_argument("--minutes", type=float, default=None, help="wall-clock budget of the whole run")
    tune.add_argument("--call-minutes", type=float, default=0.0, help="end this call after N minutes (resumable)")
    tune.add_argument("--device", default="auto", help="auto | cpu | cuda")
    tune.add_argument(
        "--dtype", choices=("float32", "bfloat16"), default=None, help="load the model's DiT in this dtype"
    )
    tune.add_argument("--parallel", choices=("none", "ddp", "fsdp"), default="none", help="under torchrun")


def _add_set(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help=f"change a config value, e.g. {example} (repeat; same on every call)",
    )


def run(args: argparse.Namespace) -> int:
    if args.stage == "text-cache":
        from yume_env.train.text_cache import build_text_cache

        print(build_text_cache(args.out, encoder=args.encoder))
        return 0
    if args.stage == "finetune":
        return int(importlib.import_module("yume_env.train.finetune").run(args) or 0)
    from yume_env.train.recipes import world

    return world.run(args)
