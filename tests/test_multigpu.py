"""benchmarks/multigpu.py on CPU: 2 gloo processes, scaled-down shapes (`--smoke`). Checks the
logic the lead engineer's GPU run relies on: DDP vs 1-process rates, FSDP2 of the 5B layout equal
to unsharded training, and a sharded checkpoint that a fresh model resumes from on the same losses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # two gloo processes for tens of seconds: .ci/run runs it

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("multigpu")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(ROOT / "benchmarks" / "multigpu.py"),
        "--smoke",
        "--out",
        str(out),
        "--ckpt-dir",
        str(out / "dcp"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=out)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return out, json.loads((out / "multigpu.json").read_text())


def test_ddp_phase_reports_one_gpu_and_ddp_rates_and_their_efficiency(smoke_run):
    _, r = smoke_run
    a = r["ddp_scaling"]
    assert a["gpus"] == 2 and a["one_gpu"]["samples_per_s"] > 0 and a["ddp"]["samples_per_s"] > 0
    assert a["scaling_efficiency"] == pytest.approx(a["ddp"]["samples_per_s"] / (2 * a["one_gpu"]["samples_per_s"]))


def test_fsdp2_sharded_training_matches_unsharded_training(smoke_run):
    _, r = smoke_run
    b = r["fsdp"]
    assert b["shape"]["latent_frames_per_chunk"] == 8 and b["latent_hw"] == [4, 6]
    assert b["losses"] == pytest.approx(b["unsharded_losses"], rel=1e-4)


def test_resume_from_sharded_checkpoint_continues_the_losses(smoke_run):
    out, r = smoke_run
    m = r["fsdp"]["resume"]
    assert m["resumed_losses"] == pytest.approx(m["reference_losses"], rel=1e-5)
    assert r["fsdp"]["checkpoint"]["bytes"] > 0
    assert not (out / "dcp").exists()  # removed unless --keep-checkpoint
    assert "resumed losses" in (out / "multigpu.md").read_text()
