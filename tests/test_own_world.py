"""A world of an env nobody here wrote, end to end on the CPU: record CartPole-v1, train a world
for a few steps, open it with gym.make (its action space, its frame size), step it."""

from __future__ import annotations

import json

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")
pytest.importorskip("pygame", reason="CartPole-v1 renders with pygame (gymnasium[classic-control])")

pytestmark = pytest.mark.usefixtures("one_thread")


def test_record_train_make_and_step_a_world_of_cartpole(tmp_path, capsys):
    import yume_env  # noqa: F401  (registers YumeWorld-v0)
    from yume_env.cli import main

    data, run = tmp_path / "data", tmp_path / "world"
    assert (
        main(
            [
                "data",
                "record",
                "--env",
                "CartPole-v1",
                "--episodes",
                "6",
                "--size",
                "32",
                "--out",
                str(data),
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                "world",
                "--data",
                str(data),
                "--out",
                str(run),
                "--preset",
                "tiny",
                "--steps",
                "3",
                "--device",
                "cpu",
                "--set",
                "pretrain.clip_steps=4",
                "--set",
                "reward.clip_steps=4",
                "--set",
                "eval_steps=4",
                "--set",
                "sample_gifs=1",
            ]
        )
        == 0
    )
    state = json.loads((run / "run.json").read_text())
    assert state["exported"] and "CartPole-v1" in state["data"]
    card = (run / "model" / "README.md").read_text()
    assert "recorded episodes of CartPole-v1" in card and "teacher_forced_psnr_db" in card

    env = gym.make("YumeWorld-v0", model=str(run))  # a run folder opens as its model/
    assert env.action_space == gym.spaces.Discrete(2)
    assert env.observation_space.shape == (32, 32, 3) and env.observation_space.dtype == np.uint8
    obs, info = env.reset(seed=0)
    assert obs.shape == (32, 32, 3) and obs.dtype == np.uint8
    for a in (0, 1, 1):
        obs, reward, terminated, truncated, info = env.step(a)
        assert isinstance(reward, float) and isinstance(terminated, bool) and obs.shape == (32, 32, 3)
    with pytest.raises(ValueError, match=r"one integer in \[0, 2\)"):
        env.step(2)
    vec = gym.make_vec("YumeWorld-v0", num_envs=2, model=str(run))
    vec.reset(seed=0)
    obs, rewards, terminated, truncated, infos = vec.step(np.array([0, 1]))
    assert obs.shape == (2, 32, 32, 3) and rewards.shape == (2,)

    from yume_env.eval.recorded import RecordedEvalConfig, evaluate_recorded, markdown
    from yume_env.model import WorldModel

    results = evaluate_recorded(
        WorldModel.from_pretrained(run),
        str(data),
        RecordedEvalConfig(episodes=2, steps=4, probe_steps=3),
        progress=False,
    )
    assert len(results["autoregressive_psnr_db_by_step"]) == 4 and set(results["teacher_forced_psnr_db"]) == {0, 2}
    assert 0 <= results["actions_read_back"]["world"] <= 1 and results["realism"]["transitions"] == 8
    assert "reward_mae" in results["task"] and "| sharpness" in markdown(results)


def test_ppo_trained_in_the_world_is_tested_in_the_real_env(tmp_path):
    """examples/dream_to_real.py on a few-step CartPole world: PPO inside it, then the real env."""
    import importlib.util

    from yume_env.cli import main

    pytest.importorskip("stable_baselines3")
    data, run, out = tmp_path / "data", tmp_path / "world", tmp_path / "ppo"
    assert (
        main(
            [
                "data",
                "record",
                "--env",
                "CartPole-v1",
                "--episodes",
                "4",
                "--size",
                "32",
                "--out",
                str(data),
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                "world",
                "--data",
                str(data),
                "--out",
                str(run),
                "--preset",
                "tiny",
                "--steps",
                "2",
                "--device",
                "cpu",
                "--set",
                "pretrain.clip_steps=4",
                "--set",
                "reward.clip_steps=4",
                "--set",
                "eval_steps=4",
                "--set",
                "sample_gifs=1",
            ]
        )
        == 0
    )
    path = __import__("pathlib").Path(__file__).resolve().parents[1] / "examples" / "dream_to_real.py"
    spec = importlib.util.spec_from_file_location("dream_to_real", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (
        module.main(
            [
                "--world",
                str(run),
                "--env",
                "CartPole-v1",
                "--out",
                str(out),
                "--num-envs",
                "2",
                "--total-steps",
                "128",
                "--episodes",
                "2",
                "--max-episode-steps",
                "20",
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert results["ppo_in_world"]["env_steps"] >= 128 and results["real_env"]["random"]["episodes"] == 2
    assert results["real_env"]["ppo"]["mean_length"] >= 1 and (out / "ppo.zip").is_file()
