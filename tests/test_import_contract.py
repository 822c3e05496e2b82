"""The package's dependency arrows point one way (DESIGN.md section 9): this test reads every
import of every module (function-level ones too) and fails naming the file, line and module of an
arrow that runs the wrong way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "yume_env"

# where the importing file lives -> what it must never import
FORBIDDEN = {
    "model": (
        "yume_env.env",
        "yume_env.sim",
        "yume_env.play",
        "yume_env.cli",
        "yume_env.train",
        "yume_env.eval",
        "yume_env.data",
        "gymnasium",
        "agents",
    ),
    "sim": (
        "yume_env.model",
        "yume_env.env",
        "yume_env.train",
        "yume_env.eval",
        "yume_env.play",
        "yume_env.cli",
        "yume_env.data",
        "agents",
    ),
    "data": (
        "yume_env.model",
        "yume_env.env",
        "yume_env.train",
        "yume_env.eval",
        "yume_env.play",
        "yume_env.cli",
        "agents",
    ),
    "train": ("yume_env.env", "yume_env.eval", "yume_env.play", "yume_env.cli", "gymnasium", "agents"),
    "eval": ("yume_env.train", "yume_env.env", "yume_env.play", "yume_env.cli", "gymnasium", "agents"),
    "env": ("yume_env.train", "yume_env.eval", "yume_env.play", "yume_env.cli", "agents"),
    "play": ("yume_env.train", "yume_env.eval", "yume_env.cli", "agents"),
    "actions.py": ("yume_env", "torch", "gymnasium"),
    "atomic.py": ("yume_env", "torch", "numpy", "gymnasium"),
    "vocabulary.py": ("yume_env.model", "yume_env.env", "yume_env.sim", "yume_env.train", "torch", "gymnasium"),
    "motion.py": ("yume_env.model", "yume_env.env", "yume_env.sim", "yume_env.train", "gymnasium"),
    "host_to_device.py": ("yume_env", "gymnasium"),
}


def imported_modules(path: Path) -> list[tuple[str, int]]:
    """Every module `path` imports, absolute, with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against the file's package
                base = ".".join(package[: -node.level])
                module = f"{base}.{module}" if module else base
            found.append((module, node.lineno))
    return found


def violations() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        place = path.relative_to(PACKAGE).parts[0]
        for module, line in imported_modules(path):
            for banned in FORBIDDEN.get(place, ()):
                if module == banned or module.startswith(banned + "."):
                    out.append(f"yume_env/{path.relative_to(PACKAGE)}:{line} imports {module} ({place} must not)")
    return out


def test_no_import_runs_against_the_architecture():
    assert violations() == []


def test_the_contract_catches_a_forbidden_arrow(tmp_path, monkeypatch):
    """The checker itself: a model module importing the env is reported with its line."""
    fake = tmp_path / "yume_env"
    (fake / "model").mkdir(parents=True)
    (fake / "model" / "bad.py").write_text("import numpy\n\ndef f():\n    from yume_env.env import core\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert violations() == ["yume_env/model/bad.py:4 imports yume_env.env (model must not)"]


@pytest.mark.parametrize(
    "module", ["yume_env.model", "yume_env.model.pipeline", "yume_env.train.recipes.world", "yume_env.eval"]
)
def test_model_training_and_evaluation_import_without_gymnasium(module):
    """GPU machines have no gymnasium: the model, the training and the evaluation must not need it."""
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('gymnasium', 'stable_baselines3'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        f"import {module}\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
