"""A world of an env nobody here wrote, end to end on the CPU: record CartPole-v1, train a world for
a few steps, open it with gym.make (its action space, its frame size), step it, evaluate it against
held-out recordings, train an agent in it and test the agent in the real env."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")
pytest.importorskip("pygame", reason="CartPole-v1 renders with pygame (gymnasium[classic-control])")

pytestmark = pytest.mark.usefixtures("one_thread")

RECORD = "data record --env CartPole-v1 --episodes 6 --size 32 --no-progress --out".split()
TRAIN = (
    "train world --preset tiny --steps 3 --device cpu --set pretrain.clip_steps=4 --set reward.clip_steps=4 "
    "--set eval_steps=4 --set sample_gifs=1"
).split()


@pytest.fixture(scope="module")
def cartpole_world(tmp_path_factory) -> tuple[Path, Path]:
    """(recorded data, a train-world run folder): a few episodes and a few steps of training."""
    from yume_env.cli import main

    root = tmp_path_factory.mktemp("cartpole")
    data, run = root / "data", root / "world"
    assert main([*RECORD, str(data)]) == 0
    assert main([*TRAIN, "--data", str(data), "--out", str(run)]) == 0
    return data, run


def test_a_trained_world_of_cartpole_opens_with_gym_make_and_steps(cartpole_world):
    import yume_env  # noqa: F401  (registers YumeWorld-v0)

    _, run = cartpole_world
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


def test_the_world_is_measured_against_held_out_recordings(cartpole_world, tmp_path):
    from yume_env.eval.recorded import RecordedEvalConfig, evaluate_recorded, markdown, plot_recorded_strip
    from yume_env.model import WorldModel

    data, run = cartpole_world
    cfg = RecordedEvalConfig(episodes=2, steps=4, probe_steps=3)
    results = evaluate_recorded(WorldModel.from_pretrained(run), str(data), cfg, progress=False)
    assert len(results["autoregressive_psnr_db_by_step"]) == 4 and set(results["teacher_forced_psnr_db"]) == {0, 2}
    assert 0 <= results["actions_read_back"]["world"] <= 1 and results["realism"]["transitions"] == 8
    assert "reward_mae" in results["task"] and "| sharpness" in markdown(results)
    strip = results["_strip"]
    assert strip["steps"] == [1, 2, 4] and strip["recorded"].shape == strip["world"].shape == (2, 3, 32, 32, 3)
    plot_recorded_strip(strip, tmp_path / "frames.png")
    assert (tmp_path / "frames.png").stat().st_size > 1000


def test_eval_data_writes_a_report_json_and_a_strip_of_recorded_and_generated_frames(cartpole_world, tmp_path):
    from yume_env.cli import main

    data, run = cartpole_world
    report, out = tmp_path / "report.md", tmp_path / "eval.json"
    args = ["eval", "--model", str(run), "--data", str(data), "--horizons", "2", "4", "--episodes", "2"]
    assert main([*args, "--iterations", "3", "--report", str(report), "--json", str(out), "--no-progress"]) == 0
    results = json.loads(out.read_text())
    assert results["steps"] == 4 and results["strip_png"] == "report_frames.png"
    assert "![recorded and generated frames](report_frames.png)" in report.read_text()
    assert (tmp_path / "report_frames.png").stat().st_size > 1000


def test_ppo_trained_in_the_world_is_tested_in_the_real_env(cartpole_world, tmp_path):
    """examples/dream_to_real.py: PPO inside the world, then the real env against random."""
    pytest.importorskip("stable_baselines3")
    _, run = cartpole_world
    path = Path(__file__).resolve().parents[1] / "examples" / "dream_to_real.py"
    spec = importlib.util.spec_from_file_location("dream_to_real", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = ["--world", str(run), "--env", "CartPole-v1", "--out", str(tmp_path), "--num-envs", "2"]
    assert module.main([*args, "--total-steps", "128", "--episodes", "2", "--max-episode-steps", "20"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["ppo_in_world"]["env_steps"] >= 128 and results["real_env"]["random"]["episodes"] == 2
    assert results["real_env"]["ppo"]["mean_length"] >= 1 and (tmp_path / "ppo.zip").is_file()


def test_the_action_probe_reads_a_move_of_a_few_pixels(tmp_path):
    """Breakout-like: a 4x2 paddle on black moves 2 pixels left or right per action (or stays); the
    recorded eval's probe must read that from the recordings, not answer the commonest action."""
    import torch

    from yume_env.data.shards import ShardReader, ShardWriter
    from yume_env.eval.recorded import RecordedEvalConfig, _float, train_action_probe

    rng = np.random.default_rng(0)
    with ShardWriter(tmp_path, "Paddle-v0", {"type": "discrete", "nvec": [3]}, 32) as writer:
        for _ in range(12):
            actions = rng.integers(0, 3, 40)
            x, frames = 14, []
            for a in [1, *actions]:  # the reset frame, then one frame per action (0 left, 1 stay, 2 right)
                x = int(np.clip(x + 2 * (a - 1), 0, 28))
                frame = np.zeros((32, 32, 3), np.uint8)
                frame[28:30, x : x + 4] = 200
                frames.append(frame)
            zeros = np.zeros(40, np.float32)
            writer.add_episode(np.stack(frames), actions[:, None], zeros, zeros > 0, zeros > 0)
    torch.manual_seed(0)
    probe = train_action_probe(str(tmp_path), (3,), RecordedEvalConfig(probe_steps=150, probe_batch=32), "cpu")
    episode = ShardReader(tmp_path).read(0)
    moved = (episode["frames"][1:] != episode["frames"][:-1]).any(axis=(1, 2, 3))  # not pinned at a wall
    with torch.no_grad():
        frames = torch.from_numpy(episode["frames"])
        logits = probe(_float(frames[:-1]), _float(frames[1:]))[0]
    right = logits.argmax(1).numpy() == episode["actions"][:, 0]
    assert right[moved].mean() >= 0.8, f"read {right[moved].mean():.2f} of the moves"
