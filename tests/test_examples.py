"""Each example runs for a few steps on a tiny random world (with a random task head) and/or YumeSim-v0."""

from __future__ import annotations

import importlib.util
import json

import imageio.v2 as imageio
import numpy as np
import pytest
from test_examples_support import REPO, tiny_world_dir

pytest.importorskip("stable_baselines3")


def example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", REPO / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRAIN_ARGS = [
    "--num-envs",
    "2",
    "--n-steps",
    "2",
    "--batch-size",
    "4",
    "--n-epochs",
    "1",
    "--max-episode-steps",
    "3",
    "--no-progress",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ppo")
    code = example("train_ppo_in_dream").main(
        ["--model", tiny_world_dir(), "--out", str(out), "--total-steps", "4", *TRAIN_ARGS]
    )
    assert code == 0
    return out


def test_ppo_training_in_the_dream_writes_checkpoint_curve_and_summary(trained):
    for name in ("ppo_latest.zip", "ppo_latest.agent.json", "curve.json", "learning_curve.png", "train_summary.json"):
        assert (trained / name).exists(), name
    summary = json.loads((trained / "train_summary.json").read_text())
    assert summary["env_steps"] >= 4 and summary["train_steps_per_s"] > 0
    assert json.loads((trained / "curve.json").read_text())["points"][0]["env_steps"] == 4


def test_ppo_training_resumes_from_its_checkpoint(trained, tmp_path):
    import shutil

    out = tmp_path / "resumed"
    shutil.copytree(trained, out)
    code = example("train_ppo_in_dream").main(
        ["--model", tiny_world_dir(), "--out", str(out), "--total-steps", "8", "--resume", *TRAIN_ARGS]
    )
    assert code == 0
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["env_steps"] >= 8 and summary["env_steps_this_run"] < summary["env_steps"]
    assert len(json.loads((out / "curve.json").read_text())["points"]) >= 2


def test_eval_in_sim_writes_the_dream_to_real_results_and_gifs(trained, tmp_path):
    out = tmp_path / "results" / "ppo_dream_to_real.json"
    code = example("eval_in_sim").main(
        [
            "--policy",
            str(trained / "ppo_latest.zip"),
            "--episodes",
            "2",
            "--max-episode-steps",
            "3",
            "--dream-model",
            tiny_world_dir(),
            "--dream-episodes",
            "2",
            "--gifs",
            "1",
            "--train-summary",
            str(trained / "train_summary.json"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    results = json.loads(out.read_text())
    for key in (
        "episodes",
        "success_rate_policy_in_sim",
        "success_rate_random_in_sim",
        "mean_return_policy_in_sim",
        "mean_return_random_in_sim",
        "success_rate_policy_in_dream",
        "training_env_steps",
        "device",
    ):
        assert results[key] is not None, key
    assert results["episodes"] == 2 and len(results["episodes_in_sim"]["policy"]) == 2
    assert results["dream_episodes"] == 2 and 0.0 <= results["success_rate_policy_in_dream"] <= 1.0
    assert (out.parent / "policy_sim_00.gif").exists()


def test_scripted_rollout_log_replays_exactly_through_yume_env_record(tmp_path):
    from yume_env.cli import main as cli

    video, replay = tmp_path / "walk.gif", tmp_path / "replay.gif"
    code = example("scripted_rollout").main(
        [
            "--model",
            tiny_world_dir(),
            "--agent",
            "waypoints",
            "--steps",
            "3",
            "--event-at",
            "1:night falls",
            "--out",
            str(video),
        ]
    )
    assert code == 0
    log = json.loads(video.with_suffix(".json").read_text())
    assert log["events"] == [[1, "night falls"]] and len(log["actions"]) == 3
    assert (
        cli(["record", "--agent", str(video.with_suffix(".json")), "--model", tiny_world_dir(), "--out", str(replay)])
        == 0
    )
    np.testing.assert_array_equal(np.stack(imageio.mimread(video)), np.stack(imageio.mimread(replay)))


def test_branching_rollouts_resume_the_saved_state_exactly(tmp_path):
    code = example("branching_rollouts").main(
        ["--model", tiny_world_dir(), "--prefix-steps", "1", "--steps", "2", "--out", str(tmp_path)]
    )
    assert code == 0
    assert (tmp_path / "branches.png").exists() and (tmp_path / "state").is_dir()
    left = np.stack(imageio.mimread(tmp_path / "branch_left.gif"))
    right = np.stack(imageio.mimread(tmp_path / "branch_right.gif"))
    assert left.shape == right.shape and not np.array_equal(left, right)


def test_record_with_events_records_the_simulator_with_its_events(tmp_path):
    out = tmp_path / "events.gif"
    assert example("record_with_events").main(["--sim", "--steps", "8", "--out", str(out)]) == 0
    assert len(imageio.mimread(out)) == 1 + 8 * 2
