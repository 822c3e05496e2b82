"""Checkpoints survive SIGKILL at every point of a save and of a re-save of the same step.

A forked child process resumes a tiny training run, trains one step, saves it, then re-saves the
same step (what a second call of a finished stage does). It is killed with SIGKILL right before
its k-th file-system operation of those saves, for every k, and then at random instants. After
each kill the run must resume from a complete checkpoint, and the run stitched from all those
killed children must give bitwise the same losses and weights as one run that was never killed.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from tqdm import tqdm

from yume_env.train import checkpointing
from yume_env.train.checkpointing import LATEST, checkpoint_step, latest_checkpoint, load_checkpoint, save_checkpoint
from yume_env.train.distributed import DistInfo
from yume_env.train.trainer import Trainer, TrainerConfig, seed_everything

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the children are forked (no torch import per kill)"),
]

FORK = multiprocessing.get_context("fork") if hasattr(os, "fork") else None
# the file-system calls of a save, in the order they happen; the child dies before the k-th one
WATCHED = [
    (os, "fsync"),
    (os, "rename"),
    (os, "replace"),
    (shutil, "rmtree"),
    (tempfile, "mkdtemp"),
    (tempfile, "mkstemp"),
    (checkpointing, "save_file"),
]


class Toy(nn.Module):
    """A small regression whose loss draws noise from the global torch RNG (resume must restore it)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))

    def forward(self, batch):
        x, y = batch
        return ((self.net(x) - y - 0.01 * torch.randn_like(y)) ** 2).mean(), {}


class Stream:
    """Batch i is a fixed function of i; the stream's state is the next index."""

    def __init__(self):
        self.index = 0

    def next(self):
        g = torch.Generator().manual_seed(self.index)
        self.index += 1
        x = torch.randn(16, 8, generator=g)
        return x, torch.tanh(x.sum(dim=1, keepdim=True))

    def state_dict(self):
        return {"index": self.index}

    def load_state_dict(self, state):
        self.index = int(state["index"])


def make_trainer(ckpt: Path | None) -> Trainer:
    seed_everything(0)
    config = TrainerConfig(
        lr=1e-2,
        warmup_steps=1,
        max_steps=10_000,
        log_every=1,
        ema_decay=0.9,
        checkpoint_every_s=0,
        keep_checkpoints=2,
        progress=False,
        seed=5,
    )
    return Trainer(Toy(), config, ckpt, info=DistInfo(device=torch.device("cpu")), name="toy")


def session(ckpt: Path, repeat: bool = False) -> None:
    """Resume, train one step and save it, then re-save that step; forever when `repeat`."""
    while True:
        trainer, stream = make_trainer(ckpt), Stream()
        trainer.resume(stream)
        trainer.fit(stream, until_step=trainer.step + 1)  # a new step: a fresh folder
        trainer.fit(stream, until_step=trainer.step)  # a finished call again: the same step re-saved
        if not repeat:
            return


def killed_at_operation(ckpt: Path, k: int, count_file: Path | None = None) -> None:
    """The child: counts the watched calls and SIGKILLs itself right before the k-th."""
    calls = [0]

    def watch(fn):
        def wrapper(*args, **kwargs):
            calls[0] += 1
            if calls[0] == k:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args, **kwargs)

        return wrapper

    for owner, name in WATCHED:
        setattr(owner, name, watch(getattr(owner, name)))
    session(ckpt)
    if count_file is not None:
        count_file.write_text(str(calls[0]))


def in_child(target, *args) -> None:
    """Runs `target` in a forked child with a lock of tqdm's of its own: tqdm's default lock holds a
    semaphore shared with every forked process, so a child killed inside a (disabled) bar's
    `with lock` would leave it held and every later bar, in any process, waiting forever."""
    tqdm.set_lock(threading.RLock())
    target(*args)


def run_child(target, *args, kill_after_s: float | None = None, hang_s: float = 300.0) -> int:
    """The exit code of `target(*args)` run in a forked child, SIGKILLed after `kill_after_s`."""
    proc = FORK.Process(target=in_child, args=(target, *args))
    proc.start()
    if kill_after_s is not None:
        time.sleep(kill_after_s)
        os.kill(proc.pid, signal.SIGKILL)
    proc.join(hang_s)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
        pytest.fail(
            f"the child running {target.__name__} hung for {hang_s:.0f} s (a lock left held by a killed child?)"
        )
    return proc.exitcode


def check_resumable(ckpt: Path) -> int:
    """Every visible checkpoint folder loads, `latest.json` names one, a trainer resumes from it;
    returns its step (0 before the first complete save)."""
    for folder in ckpt.glob("step-*"):
        assert (
            checkpoint_step(folder.name) is not None and load_checkpoint(folder)[0] == checkpoint_step(folder.name)[0]
        )
    if latest_checkpoint(ckpt) is None:  # killed before the first pointer switch: start over
        return 0
    trainer = make_trainer(ckpt)
    assert trainer.resume(Stream())
    return trainer.step


def reference_run(steps: int) -> tuple[list, dict[str, torch.Tensor]]:
    trainer = make_trainer(None)
    trainer.fit(Stream(), until_step=steps)
    return trainer.curves.series["loss"], {k: v.clone() for k, v in trainer.module.state_dict().items()}


@pytest.mark.slow
def test_sigkill_before_every_file_operation_of_a_save_and_a_resave_always_resumes(tmp_path):
    count_file = tmp_path / "calls.txt"
    session(tmp_path / "count")  # in this process: the forked children inherit its warmed-up lazy imports
    assert run_child(killed_at_operation, tmp_path / "count", 0, count_file) == 0
    per_session = int(count_file.read_text())
    assert per_session >= 20  # two saves: shards, fsyncs, renames, pointer, pruning

    ckpt = tmp_path / "ckpt"
    steps = 0
    for k in range(1, per_session + 1):
        assert run_child(killed_at_operation, ckpt, k) == -signal.SIGKILL
        step = check_resumable(ckpt)
        assert step in (steps, steps + 1), f"killed before call {k}: resumed at step {step} after step {steps}"
        steps = step
    assert run_child(session, ckpt) == 0
    steps = check_resumable(ckpt)
    assert steps > per_session // 3  # most kills landed after the new step was in place

    losses, weights = reference_run(steps)
    _, state = load_checkpoint(latest_checkpoint(ckpt))
    assert [s for s, _ in state["curves"]["loss"]] == list(range(1, steps + 1))
    assert state["curves"]["loss"] == losses
    for name, value in weights.items():
        assert torch.equal(state["model"][name], value), name

    leftovers = sorted(p.name for p in ckpt.iterdir())  # `keep=2` folders and the pointer, nothing hidden
    assert LATEST in leftovers and len(leftovers) <= 3 and not any(name.startswith(".") for name in leftovers)


@pytest.mark.slow
def test_sigkill_at_random_instants_of_repeated_saves_always_resumes(tmp_path):
    ckpt = tmp_path / "ckpt"
    session(tmp_path / "warm-up")  # in this process: the forked children inherit its lazy imports
    start = time.monotonic()
    assert run_child(session, tmp_path / "timing") == 0
    one_session_s = time.monotonic() - start  # only to spread the kills over a few sessions
    rng = random.Random(0)
    steps = 0
    for _ in range(12):
        assert run_child(session, ckpt, True, kill_after_s=rng.uniform(0.0, 3.0 * one_session_s)) == -signal.SIGKILL
        step = check_resumable(ckpt)
        assert step >= steps
        steps = step
    assert run_child(session, ckpt) == 0
    assert check_resumable(ckpt) == steps + 1


def hold_tqdm_lock() -> None:
    with tqdm.get_lock():
        time.sleep(60)


def test_a_child_killed_inside_a_progress_bar_leaves_no_lock_for_the_next(tmp_path):
    session(tmp_path / "warm-up")  # the parent made its bars (and tqdm's process-shared lock) first
    assert run_child(hold_tqdm_lock, kill_after_s=0.5) == -signal.SIGKILL
    assert run_child(session, tmp_path / "ckpt", hang_s=60) == 0
    assert check_resumable(tmp_path / "ckpt") == 1


def test_a_resave_of_the_same_step_gets_a_fresh_folder_and_the_old_one_goes_after_the_switch(tmp_path):
    first = save_checkpoint(tmp_path, 3, {"x": torch.zeros(2)})
    second = save_checkpoint(tmp_path, 3, {"x": torch.ones(2)})
    third = save_checkpoint(tmp_path, 3, {"x": torch.full((2,), 2.0)})
    assert (first.name, second.name, third.name) == ("step-00000003", "step-00000003.1", "step-00000003.2")
    assert latest_checkpoint(tmp_path) == third and sorted(p.name for p in tmp_path.iterdir()) == [LATEST, third.name]
    assert json.loads((tmp_path / LATEST).read_text()) == {"checkpoint": third.name, "step": 3}
    assert torch.equal(load_checkpoint(third)[1]["x"], torch.full((2,), 2.0))


def test_pruning_keeps_distinct_earlier_steps_and_drops_folders_a_killed_run_never_pointed_to(tmp_path):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, {"s": step}, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000002", "step-00000003"]
    (tmp_path / "step-00000009").mkdir()  # written by a run killed before its pointer switch
    (tmp_path / ".step-00000004.abc.tmp").mkdir()  # a save killed mid-write
    (tmp_path / f".{LATEST}.xyz.tmp").write_text("{")  # a pointer switch killed mid-write
    save_checkpoint(tmp_path, 4, {"s": 4}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LATEST, "step-00000003", "step-00000004"]


def test_a_pointer_to_a_missing_folder_is_reported_with_both_paths(tmp_path):
    (tmp_path / LATEST).write_text(json.dumps({"checkpoint": "step-00000007", "step": 7}))
    with pytest.raises(FileNotFoundError, match="step-00000007"):
        latest_checkpoint(tmp_path)


@pytest.mark.parametrize("text", ["{", "[]", '{"step": 3}', '{"checkpoint": "../elsewhere"}'])
def test_a_damaged_pointer_is_reported_with_its_path(tmp_path, text):
    (tmp_path / LATEST).write_text(text)
    with pytest.raises(ValueError, match="latest.json is corrupt"):
        latest_checkpoint(tmp_path)
