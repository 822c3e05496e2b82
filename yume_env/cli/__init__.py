"""The `yume-env` command: one entry point, one module per subcommand (imported lazily, so
`yume-env data ...` never loads the model and `yume-env train ...` never needs Gymnasium)."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module under yume_env.cli, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "record": ("record", "run an episode (random, scripted or JSON actions) and write an mp4/gif"),
    "bench": ("bench", "env steps/s single and batched, per-step time versus episode length (JSON)"),
    "data": ("data", "generate and inspect Sekai-layout datasets from the simulator"),
    "train": ("train", "train or fine-tune a world model stage (vae, pretrain, self-forcing, reward, finetune)"),
    "eval": ("eval", "measure a learned world against the simulator (markdown report + JSON)"),
    "play": ("play", "serve a local web page to walk the world with the keyboard"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="yume-env", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        args = parser.parse_args(argv[:1] or ["--help"])
        return 2
    module = importlib.import_module(f"yume_env.cli.{SUBCOMMANDS[argv[0]][0]}")
    sub_parser = argparse.ArgumentParser(prog=f"yume-env {argv[0]}", description=SUBCOMMANDS[argv[0]][1])
    module.add_arguments(sub_parser)
    args = sub_parser.parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
