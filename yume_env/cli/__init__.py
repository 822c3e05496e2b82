"""The `yume-env` command: one entry point, one module per subcommand (imported lazily, so
`yume-env data ...` never loads the model and `yume-env train ...` never needs Gymnasium).

Building a parser imports no torch (tests/test_cli.py checks it), so `--help` answers at once. A
usage error exits 2 with one line; so does bad input a command raises as ValueError (a
CheckpointError too) or FileNotFoundError, unless YUME_ENV_DEBUG=1 asks for the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from yume_env import __version__

DESCRIPTION = (
    "An interactive video world model as a Gymnasium environment (YumeWorld-v0): record episodes of a "
    "world, benchmark and evaluate it against its simulator, train or fine-tune worlds, generate "
    "simulator datasets, and walk a world with the keyboard in a web page."
)
EPILOG = "`yume-env COMMAND --help` shows a command's options. YUME_ENV_DEBUG=1 shows the traceback of an error."

# subcommand -> (module under yume_env.cli, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "record": ("record", "run an episode (random, scripted or JSON actions) and write an mp4/gif"),
    "bench": ("bench", "env steps/s single and batched, per-step time versus episode length (JSON)"),
    "data": ("data", "generate and inspect Sekai-layout datasets from the simulator"),
    "train": (
        "train",
        "train or fine-tune a world model, stage by stage or by the default-world recipe "
        "(`yume-env train --help` names every stage)",
    ),
    "eval": ("eval", "measure a learned world against the simulator (markdown report + JSON)"),
    "play": ("play", "serve a local web page to walk the world with the keyboard"),
}

# what a command raises for bad input (CheckpointError is a ValueError): one line, exit 2
USER_ERRORS = (ValueError, FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: the description, --version and the list of subcommands."""
    parser = argparse.ArgumentParser(prog="yume-env", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def build_subparser(name: str) -> tuple[argparse.ArgumentParser, object]:
    """The parser of subcommand `name` and its module (whose `run(args)` runs it)."""
    module = importlib.import_module(f"yume_env.cli.{SUBCOMMANDS[name][0]}")
    parser = argparse.ArgumentParser(prog=f"yume-env {name}", description=SUBCOMMANDS[name][1])
    module.add_arguments(parser)
    return parser, module


def main(argv: list[str] | None = None) -> int:
    """Runs `yume-env ARGV`; returns the exit code (argparse exits itself for --help and usage errors)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # no command: the help, on stderr, as a usage error
        build_parser().print_help(sys.stderr)
        return 2
    if argv[0] not in SUBCOMMANDS:  # --help, --version, or an unknown command (argparse says which)
        parser = build_parser()
        parser.parse_args(argv)
        parser.print_help(sys.stderr)  # what argparse let through names no command
        return 2
    parser, module = build_subparser(argv[0])
    return run_command(parser.prog, module, parser.parse_args(argv[1:]))


def run_command(prog: str, module, args: argparse.Namespace) -> int:
    """`module.run(args)`; bad input it raises prints `PROG: error: ...` on one line and returns 2."""
    try:
        return int(module.run(args) or 0)
    except USER_ERRORS as err:
        if os.environ.get("YUME_ENV_DEBUG", "") not in ("", "0"):
            raise
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        return 2


def one_line(err: BaseException) -> str:
    """An exception's message on one line (its type's name where it has none)."""
    return " ".join(str(err).split()) or type(err).__name__


if __name__ == "__main__":
    raise SystemExit(main())
