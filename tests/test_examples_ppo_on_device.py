"""examples/ppo_on_device.py: cleanrl-style PPO over the tensor path, a few updates on a CPU."""

from __future__ import annotations

import importlib.util
import json
import sys

import torch
from test_examples_support import REPO, tiny_world_dir


def test_ppo_on_device_trains_a_few_updates_and_writes_summary_curve_and_policy(tmp_path, one_thread):
    spec = importlib.util.spec_from_file_location("ppo_on_device", REPO / "examples" / "ppo_on_device.py")
    example = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = example  # its dataclass looks its module up there
    spec.loader.exec_module(example)
    args = ["--model", tiny_world_dir(), "--device", "cpu", "--out", str(tmp_path), "--num-envs", "3"]
    args += ["--num-steps", "4", "--num-minibatches", "2", "--update-epochs", "1", "--total-steps", "24"]
    assert example.main([*args, "--max-episode-steps", "3", "--obs-size", "32"]) == 0
    summary = json.loads((tmp_path / "train_summary.json").read_text())
    assert summary["env_steps"] == 24 and summary["updates"] == 2 and summary["num_envs"] == 3
    assert summary["train_env_steps_per_s"] > 0 and summary["device"] == "cpu" and summary["device_name"]
    assert summary["obs_shape"] == [32, 32, 3] and summary["final"]["episodes"] > 0  # 12 steps per world, 3 per episode
    points = json.loads((tmp_path / "curve.json").read_text())["points"]
    assert [p["env_steps"] for p in points] == [12, 24]
    assert (tmp_path / "learning_curve.png").stat().st_size > 0
    state = torch.load(tmp_path / "policy.pt")
    assert state["actor.weight"].shape[0] == 18  # (key, camera): 9 + 9 logits
