"""The shared training loop: loss goes down, checkpoints round-trip, SIGKILL resume, torchrun DDP, seeding."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from yume_env.data.sim_clips import IndexedStream
from yume_env.train.checkpointing import checkpoint_step, latest_checkpoint, load_checkpoint, save_checkpoint
from yume_env.train.trainer import Trainer, TrainerConfig, seed_everything

REPO = Path(__file__).resolve().parents[1]

# A toy stage, shared by the in-process tests and the subprocesses (written to a file there).
TOY = textwrap.dedent(
    """
    import sys, time, json, torch
    from torch import nn
    from yume_env.data.sim_clips import IndexedStream
    from yume_env.train import distributed as D
    from yume_env.train.trainer import Trainer, TrainerConfig

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
        def forward(self, batch):
            x, y = batch
            noise = 0.01 * torch.randn_like(y)  # uses the global RNG: resume must restore it
            loss = ((self.net(x) - y - noise) ** 2).mean()
            return loss, {"abs_err": (self.net(x) - y).abs().mean()}

    W = torch.linspace(-1, 1, 8)
    def make_batch(i, rank=0):
        g = torch.Generator().manual_seed(1000 * i + rank)
        x = torch.randn(16, 8, generator=g)
        return x, torch.tanh(0.3 * (x @ W)).unsqueeze(1)

    def run(ckpt, steps, parallel="none", sleep=0.0, every=5, until=None):
        info = D.init_distributed("cpu")
        cfg = TrainerConfig(lr=1e-2, warmup_steps=1, max_steps=steps, log_every=1, ema_decay=0.9,
                            checkpoint_every_steps=every, checkpoint_every_s=0, parallel=parallel, progress=False)
        stream = IndexedStream(lambda i: make_batch(i, info.rank))
        trainer = Trainer(Toy(), cfg, ckpt, info=info, name="toy")
        trainer.resume(stream)
        if sleep:  # slow each step down so a test can kill the process mid-run
            inner = stream.make_batch
            stream.make_batch = lambda i: (time.sleep(sleep), inner(i))[1]
        result = trainer.fit(stream, until_step=until)
        result.extra["checksum"] = float(sum(v.double().sum() for v in D.full_model_state(trainer.module).values()))
        return result

    if __name__ == "__main__":
        ckpt, steps, modes, sleep = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
        for parallel in modes.split(","):  # several layouts in one launch (torchrun start-up is slow)
            r = run(f"{ckpt}/{parallel}", steps, parallel, sleep)
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            row = json.dumps({"mode": parallel, "rank": rank, "loss": r.curves.series["loss"], "checksum": r.extra["checksum"]})
            with open(f"{ckpt}/{parallel}-rank{rank}.json", "w") as fh:  # ranks print concurrently: one file each
                fh.write(row)
            if rank == 0:
                print(row)
        D.shutdown()
    """
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    path = tmp_path / "toy_stage.py"
    path.write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    module = importlib.import_module("toy_stage")
    yield module, path
    sys.modules.pop("toy_stage", None)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_trainer_lowers_the_loss_of_a_toy_regression(toy, tmp_path):
    module, _ = toy
    result = module.run(tmp_path / "ckpt", steps=60)
    losses = [v for _, v in result.curves.series["loss"]]
    assert result.finished and result.step == 60
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])
    assert latest_checkpoint(tmp_path / "ckpt") is not None


def test_checkpoint_round_trips_nested_state_with_tuples_int_keys_and_arrays(tmp_path):
    state = {
        "a": (1, 2.5, "x"),
        "b": {3: torch.arange(5), "c": [np.ones(3, dtype=np.float32), None, True]},
        "t": torch.randn(2, 3, dtype=torch.bfloat16),
    }
    save_checkpoint(tmp_path, 7, state, max_shard_bytes=16)
    step, back = load_checkpoint(latest_checkpoint(tmp_path))
    assert step == 7 and back["a"] == (1, 2.5, "x")
    assert torch.equal(back["b"][3], torch.arange(5)) and back["b"]["c"][1] is None and back["b"]["c"][2] is True
    assert np.array_equal(back["b"]["c"][0], np.ones(3)) and torch.equal(back["t"], state["t"])
    assert len(list(latest_checkpoint(tmp_path).glob("tensors-*.safetensors"))) >= 2  # sharded by size


def test_resume_without_kill_reproduces_the_uninterrupted_curve(toy, tmp_path):
    module, _ = toy
    full = module.run(tmp_path / "a", steps=20).curves.series["loss"]
    assert not module.run(tmp_path / "b", steps=20, until=10).finished
    resumed = module.run(tmp_path / "b", steps=20).curves.series["loss"]
    assert [s for s, _ in resumed] == list(range(1, 21))
    np.testing.assert_allclose([v for _, v in resumed], [v for _, v in full], rtol=1e-5)


@pytest.mark.slow
def test_sigkilled_run_resumes_from_its_last_checkpoint_and_continues_the_same_curve(toy, tmp_path):
    module, script = toy
    steps = 40
    reference = module.run(tmp_path / "ref", steps).curves.series["loss"]

    ckpt = tmp_path / "killed" / "none"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(ckpt.parent), str(steps), "none", "0.05"],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 30
    while time.time() < deadline:  # wait for a checkpoint past step 10, then kill without warning
        latest = latest_checkpoint(ckpt) if (ckpt / "latest.json").exists() else None
        if latest is not None and checkpoint_step(latest.name)[0] >= 10:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    killed_at = load_checkpoint(latest_checkpoint(ckpt))[0]
    assert 10 <= killed_at < steps

    again = subprocess.run(
        [sys.executable, str(script), str(ckpt.parent), str(steps), "none", "0"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    resumed = json.loads(again.stdout.strip().splitlines()[-1])["loss"]
    assert [s for s, _ in resumed] == list(range(1, steps + 1))
    np.testing.assert_allclose([v for _, v in resumed], [v for _, v in reference], rtol=1e-4)


@pytest.mark.slow
def test_torchrun_two_processes_ddp_and_fsdp2_train_the_same_replicated_model(toy, tmp_path):
    _, script = toy
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--standalone",
        str(script),
        str(tmp_path),
        "6",
        "ddp,fsdp",
        "0",
    ]
    run = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=150)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*-rank*.json"))]
    ddp = sorted((r for r in rows if r["mode"] == "ddp"), key=lambda r: r["rank"])
    fsdp = [r for r in rows if r["mode"] == "fsdp" and r["rank"] == 0]
    assert len(ddp) == 2 and len(fsdp) == 1 and len(ddp[0]["loss"]) == 6
    assert ddp[0]["checksum"] == pytest.approx(ddp[1]["checksum"], rel=1e-6)  # DDP replicas agree
    # FSDP2 shards the same optimisation: same losses and (gathered on rank 0) the same weights
    np.testing.assert_allclose([v for _, v in fsdp[0]["loss"]], [v for _, v in ddp[0]["loss"]], rtol=1e-4)
    assert fsdp[0]["checksum"] == pytest.approx(ddp[0]["checksum"], rel=1e-4)
    for mode in ("ddp", "fsdp"):
        step, state = load_checkpoint(latest_checkpoint(tmp_path / mode))
        assert step == 6 and state["model"]["net.0.weight"].shape == (32, 8)  # full, unsharded weights


class NoisyRegression(torch.nn.Module):
    """A loss that draws from all three global generators: torch, numpy and Python's `random`."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))

    def forward(self, batch):
        import random

        x = batch + torch.from_numpy(np.random.normal(0.0, 0.1, batch.shape).astype(np.float32))
        y = x.sum(dim=1, keepdim=True) * random.uniform(0.9, 1.1)
        return ((self.net(x) - y + 0.01 * torch.randn_like(y)) ** 2).mean(), {}


def _seeded_run(seed: int, draws: int = 1) -> tuple[list, dict[str, torch.Tensor]]:
    import random

    seed_everything(0)  # the caller's part: the same initial weights in every run
    module = NoisyRegression()
    random.random(), np.random.rand(draws), torch.rand(draws)  # what happens in between must not matter
    cfg = TrainerConfig(
        lr=1e-2,
        warmup_steps=1,
        max_steps=8,
        log_every=1,
        ema_decay=0.0,
        checkpoint_every_s=0,
        progress=False,
        seed=seed,
    )
    result = Trainer(module, cfg, None, name="seeded").fit(IndexedStream(lambda i: torch.full((8, 4), float(i % 3))))
    return result.curves.series["loss"], {k: v.clone() for k, v in module.state_dict().items()}


def test_the_same_seed_gives_bitwise_the_same_run_and_another_seed_another():
    losses_a, weights_a = _seeded_run(seed=7)
    losses_b, weights_b = _seeded_run(seed=7, draws=5)
    losses_c, weights_c = _seeded_run(seed=8)
    assert losses_a == losses_b
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert losses_a[0][1] != losses_c[0][1] and not torch.equal(weights_a["net.0.weight"], weights_c["net.0.weight"])


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True, "3"])
def test_seed_everything_rejects_seeds_outside_numpys_range(seed):
    with pytest.raises(ValueError, match="seed must be an integer"):
        seed_everything(seed)
