"""`yume-env data record`: episodes of Gymnasium envs into shards (Discrete and MultiDiscrete),
resuming, killed runs, policies, refusals.

The Discrete env is CartPole-v1 when pygame (its renderer) is installed; without pygame it is
`YumeTestRendered-v0` below, which takes the same path: vector observations, frames from
`render()`, Discrete(2) actions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from yume_env.cli import main
from yume_env.data.record import resize_frame
from yume_env.data.shards import ShardDataset, ShardReader, read_index

torch = pytest.importorskip("torch")


class RenderedCoinEnv(gym.Env):
    """A walk on a line pushed left or right (Discrete(2)); vector observations; RGB frames from render()."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(2)
        self.observation_space = spaces.Box(-5.0, 5.0, (1,), np.float32)
        self.x = 0.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = float(self.np_random.uniform(-1, 1))
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x += (1.0 if int(action) == 1 else -1.0) * 0.5 + float(self.np_random.normal(0, 0.3))
        return np.array([self.x], np.float32), 1.0, abs(self.x) > 3, False, {}

    def render(self):
        frame = np.zeros((40, 60, 3), np.uint8)
        col = int(np.clip((self.x + 3) / 6 * 59, 0, 59))
        frame[:, col] = (255, 200, 0)
        return frame


if "YumeTestRendered-v0" not in gym.registry:
    gym.register("YumeTestRendered-v0", entry_point=RenderedCoinEnv, max_episode_steps=30)

try:
    import pygame  # noqa: F401

    DISCRETE_ENV = "CartPole-v1"
except ImportError:
    DISCRETE_ENV = "YumeTestRendered-v0"


def _record(out, *extra, env=DISCRETE_ENV, episodes=3):
    return main(
        [
            "data",
            "record",
            "--env",
            env,
            "--episodes",
            str(episodes),
            "--size",
            "32",
            "--out",
            str(out),
            "--max-steps",
            "40",
            "--no-progress",
            *extra,
        ]
    )


def _episodes(root) -> list[dict]:
    reader = ShardReader(root)
    return [reader.read(e) for e in range(reader.num_episodes)]


def _same(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x[f], y[f]) for x, y in zip(a, b) for f in x)


def test_record_a_discrete_env(tmp_path, capsys):
    out = tmp_path / "d"
    assert _record(out) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 3 and summary["recorded_now"] == 3 and summary["frames_from"] == "render"
    index = read_index(out)
    assert index["env_id"] == DISCRETE_ENV and index["frame_size"] == 32 and index["frames_from"] == "render"
    assert index["action_space"] == {"type": "discrete", "nvec": [2]} and index["fps"] > 0
    assert index["episodes"] == 3 and index["steps"] == sum(t for s in index["shards"] for t in s["episode_steps"])
    assert index["shards"][0]["source"]["policy"] == "random"
    for ep in _episodes(out):
        T = len(ep["actions"])
        assert 1 <= T <= 40 and ep["frames"].shape == (T + 1, 32, 32, 3) and ep["frames"].dtype == np.uint8
        assert (
            ep["actions"].shape == (T, 1) and ep["actions"].dtype == np.int64 and set(ep["actions"].ravel()) <= {0, 1}
        )
        assert ep["rewards"].shape == (T,) and ep["rewards"].dtype == np.float32
        ends = ep["terminated"] | ep["truncated"]
        assert ends[-1] and not ends[:-1].any()  # one episode end, on the last step
        assert ep["frames"].std() > 0  # rendered, not blank
    assert main(["data", "info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["episodes"] == 3 and info["train_episodes"] + info["heldout_episodes"] == 3


def test_rerun_keeps_the_episodes_and_continues(tmp_path, capsys):
    out = tmp_path / "d"
    assert _record(out) == 0
    first = _episodes(out)
    shard = (out / "shard-000000.safetensors").read_bytes()
    capsys.readouterr()
    assert _record(out) == 0
    assert json.loads(capsys.readouterr().out)["recorded_now"] == 0
    assert _same(_episodes(out), first) and read_index(out)["episodes"] == 3
    assert _record(out, episodes=5) == 0
    after = _episodes(out)
    assert len(after) == 5 and _same(after[:3], first) and (out / "shard-000000.safetensors").read_bytes() == shard
    assert _record(tmp_path / "fresh", episodes=5) == 0
    assert _same(_episodes(tmp_path / "fresh"), after)  # continuing gives what an uninterrupted run gives


def test_resume_after_a_simulated_kill(tmp_path):
    out = tmp_path / "d"
    assert _record(out, "--shard-mb", "0", episodes=2) == 0  # one shard per episode
    kept = _episodes(out)
    (out / ".shard-000002.tmp999.safetensors").write_bytes(b"half written")  # killed mid-write
    (out / "shard-000003.safetensors").write_bytes((out / "shard-000000.safetensors").read_bytes())  # not in the index
    assert len(ShardDataset(out, window=2, heldout_fraction=0)) == sum(len(e["actions"]) for e in kept)
    assert _record(out, "--shard-mb", "0", episodes=3) == 0
    assert not list(out.glob(".*")) and not (out / "shard-000003.safetensors").exists()
    assert read_index(out)["episodes"] == 3 and _same(_episodes(out)[:2], kept)
    assert _record(tmp_path / "fresh", episodes=3) == 0
    assert _same(_episodes(out), _episodes(tmp_path / "fresh"))


def test_resume_after_a_real_kill(tmp_path):
    out = tmp_path / "d"
    cmd = [
        sys.executable,
        "-m",
        "yume_env",
        "data",
        "record",
        "--env",
        "YumeSim-v0",
        "--episodes",
        "100000",
        "--size",
        "16",
        "--out",
        str(out),
        "--max-steps",
        "3",
        "--shard-mb",
        "0",
        "--no-progress",
        "--env-kwargs",
        '{"height": 16, "width": 16}',
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if read_index(out)["episodes"] >= 3:
                    break
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    n = read_index(out)["episodes"]
    assert n >= 3
    assert (
        main(
            [
                "data",
                "record",
                "--env",
                "YumeSim-v0",
                "--episodes",
                str(n + 2),
                "--size",
                "16",
                "--out",
                str(out),
                "--max-steps",
                "3",
                "--no-progress",
                "--env-kwargs",
                '{"height": 16, "width": 16}',
            ]
        )
        == 0
    )
    index = read_index(out)
    assert index["episodes"] == n + 2 and not list(out.glob(".*"))
    assert sorted(p.name for p in out.glob("shard-*")) == sorted(s["file"] for s in index["shards"])
    assert len(_episodes(out)) == n + 2


def test_record_a_multidiscrete_env(tmp_path):
    out = tmp_path / "m"
    assert _record(out, "--env-kwargs", '{"height": 32, "width": 32}', env="YumeSim-v0", episodes=2) == 0
    index = read_index(out)
    assert index["frames_from"] == "observation" and index["action_space"]["type"] == "multi_discrete"
    assert index["action_space"]["nvec"] == [9, 9] and index["action_space"]["names"][0][1] == "W"
    eps = _episodes(out)
    assert eps[0]["actions"].shape == (40, 2) and eps[0]["truncated"][-1]  # cut by --max-steps
    env = gym.make("YumeSim-v0", height=32, width=32)
    obs, _ = env.reset(seed=0)
    assert np.array_equal(eps[0]["frames"][0], obs)  # frames are the observations, seeded by --seed + episode
    env.action_space.seed(0)
    assert np.array_equal(eps[0]["actions"][0], env.action_space.sample())
    ds = ShardDataset(out, window=5, heldout_fraction=0)
    assert ds[0]["actions"].shape == (4, 2) and ds[0]["frames"].shape == (5, 32, 32, 3)


def test_json_policy(tmp_path):
    actions = tmp_path / "actions.json"
    actions.write_text(json.dumps([[1, 1, 0], [0]]))  # one list per episode, taken in turn
    assert _record(tmp_path / "j", "--policy", str(actions), env="YumeTestRendered-v0") == 0
    eps = _episodes(tmp_path / "j")
    assert [e["actions"].ravel().tolist() for e in eps] == [[1, 1, 0], [0], [1, 1, 0]]
    assert all(e["truncated"][-1] or e["terminated"][-1] for e in eps)
    actions.write_text(json.dumps([[5, 1], [0, 0]]))  # one MultiDiscrete list for every episode
    assert _record(tmp_path / "m", "--policy", str(actions), env="YumeSim-v0", episodes=1) == 0
    assert _episodes(tmp_path / "m")[0]["actions"].tolist() == [[5, 1], [0, 0]]
    actions.write_text(json.dumps([7]))
    assert _record(tmp_path / "bad", "--policy", str(actions), env="YumeTestRendered-v0") == 2


def test_stable_baselines3_policy(tmp_path):
    sb3 = pytest.importorskip("stable_baselines3")
    env = gym.make("YumeTestRendered-v0")
    sb3.PPO("MlpPolicy", env, device="cpu", n_steps=16, batch_size=16).save(tmp_path / "ppo.zip")
    assert _record(tmp_path / "p", "--policy", str(tmp_path / "ppo.zip"), env="YumeTestRendered-v0", episodes=1) == 0
    assert read_index(tmp_path / "p")["shards"][0]["source"]["policy"].endswith("ppo.zip")


def test_refusals_are_one_clear_line(tmp_path, capsys):
    assert _record(tmp_path / "box", env="Pendulum-v1") == 2
    err = capsys.readouterr().err
    assert "Box" in err and "Discrete or one-dimensional MultiDiscrete" in err and "ActionWrapper" in err
    assert not (tmp_path / "box").exists()
    assert _record(tmp_path / "x", env="NoSuchEnv-v0") == 2 and "cannot make env" in capsys.readouterr().err
    assert _record(tmp_path / "x", "--policy", "policy.pt") == 2 and "--policy must be" in capsys.readouterr().err
    assert _record(tmp_path / "d") == 0
    assert _record(tmp_path / "d", env="YumeSim-v0") == 2 and "another --out" in capsys.readouterr().err


def test_resize_is_antialiased():
    board = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)
    small = resize_frame(np.repeat(board[..., None], 3, -1), 8)
    assert small.shape == (8, 8, 3) and np.abs(small.astype(int) - 127).max() < 20  # no aliasing to black/white


def test_help_imports_no_torch():
    code = (
        "import sys; from yume_env.cli import build_subparser; p, _ = build_subparser('data'); "
        "p.parse_args(['record', '--env', 'X', '--episodes', '1', '--out', 'o']); print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1]
    )
    assert out.stdout.strip() == "False"
