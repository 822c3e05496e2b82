"""The `yume-env` command's habits: a full description, --version, help without a command exits 2,
usage errors and bad input are one line with exit 2 (no traceback), and --help imports no torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import pytest

import yume_env
from yume_env import cli
from yume_env.cli import main
from yume_env.model.checkpoint import CheckpointError


def flat(text: str) -> str:
    return " ".join(text.split())


def test_help_gives_the_whole_description_and_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    out = flat(capsys.readouterr().out)
    assert exit_.value.code == 0 and cli.DESCRIPTION.endswith(".") and flat(cli.DESCRIPTION) in out
    assert all(name in out for name in cli.SUBCOMMANDS)


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"yume-env {yume_env.__version__}\n"


def test_no_arguments_print_the_help_and_exit_2(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: yume-env") and flat(cli.DESCRIPTION) in flat(err)


@pytest.mark.parametrize(
    "argv",
    [["nosuch"], ["--nosuch"], ["record", "--steps", "many"], ["bench", "--nosuch"], ["eval", "nosuch"], ["data"]],
)
def test_usage_errors_exit_2_with_one_error_line(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1


@pytest.fixture
def fake_command(monkeypatch):
    """A subcommand `fake` whose run raises what `fake_command.error` holds."""
    module = types.ModuleType("yume_env.cli._fake")
    module.add_arguments = lambda parser: None

    def run(args):
        raise module.error

    module.run = run
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(cli.SUBCOMMANDS, "fake", ("_fake", "a command for this test"))
    monkeypatch.delenv("YUME_ENV_DEBUG", raising=False)
    return module


@pytest.mark.parametrize(
    "error",
    [
        ValueError("--steps must be positive"),
        FileNotFoundError("no folder\nx/y"),
        CheckpointError("step-3 is not a checkpoint"),
    ],
)
def test_bad_input_raised_inside_a_command_is_one_line_and_exit_2(capsys, fake_command, error):
    fake_command.error = error
    assert main(["fake"]) == 2
    assert capsys.readouterr().err == f"yume-env fake: error: {flat(str(error))}\n"


def test_a_bug_keeps_its_traceback_and_yume_env_debug_shows_bad_inputs_too(fake_command, monkeypatch):
    fake_command.error = RuntimeError("a bug")
    with pytest.raises(RuntimeError, match="a bug"):
        main(["fake"])
    fake_command.error = ValueError("bad input")
    monkeypatch.setenv("YUME_ENV_DEBUG", "1")
    with pytest.raises(ValueError, match="bad input"):
        main(["fake"])


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--model", "MISSING", "--no-progress"],
        ["play", "--port", "0", "--model", "MISSING"],
        ["train", "finetune", "--model", "MISSING", "--data", "DATA", "--out", "OUT"],
    ],
)
def test_a_missing_model_folder_is_one_line_and_exit_2(tmp_path, capsys, argv):
    fill = {"MISSING": str(tmp_path / "no-such-world"), "DATA": str(tmp_path), "OUT": str(tmp_path / "out")}
    assert main([fill.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"yume-env {argv[0]}") and "no-such-world" in err


def test_every_help_but_trains_imports_no_torch():
    script = textwrap.dedent("""
        import contextlib, io, sys
        from yume_env.cli import SUBCOMMANDS, main
        for argv in [["--help"], ["--version"]] + [[name, "--help"] for name in SUBCOMMANDS if name != "train"]:
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    main(argv)
                except SystemExit as exit_:
                    assert exit_.code == 0, (argv, exit_.code)
        print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]"
