"""PolicyAgent: loads an SB3 zip with its sidecar, resizes frames, maps action-set indices."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import test_examples_support  # noqa: F401  (puts the repo root on sys.path)

pytest.importorskip("stable_baselines3")
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

from agents.policy import PolicyAgent, sidecar_path, write_sidecar  # noqa: E402
from agents.sb3_tools import ActionSetVecEnv, SmallCNN  # noqa: E402
from yume_env import actions as A  # noqa: E402


class Frames32(gym.Env):
    """A 32x32 image env with the yume action space, enough to build and save a policy."""

    observation_space = gym.spaces.Box(0, 255, (32, 32, 3), np.uint8)
    action_space = gym.spaces.MultiDiscrete([9, 9])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros((32, 32, 3), np.uint8), {}

    def step(self, action):
        return np.zeros((32, 32, 3), np.uint8), 0.0, False, False, {}


@pytest.fixture(scope="module")
def saved_policy(tmp_path_factory):
    env = ActionSetVecEnv(DummyVecEnv([Frames32]), "walk")
    model = PPO(
        "CnnPolicy",
        env,
        n_steps=8,
        batch_size=8,
        seed=0,
        device="cpu",
        policy_kwargs={"features_extractor_class": SmallCNN, "net_arch": [16]},
    )
    path = tmp_path_factory.mktemp("policy") / "ppo.zip"
    model.save(str(path))
    write_sidecar(path, (32, 32), "walk")
    return path


def test_sidecar_sits_beside_the_zip(saved_policy):
    assert sidecar_path(saved_policy).name == "ppo.agent.json" and sidecar_path(saved_policy).exists()


def test_policy_agent_acts_on_native_frames_with_actions_of_its_set(saved_policy):
    agent = PolicyAgent(saved_policy)
    assert agent.obs_size == (32, 32)
    frame = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    assert agent.observe(frame).shape == (32, 32, 3)
    action = agent.act(frame, {})
    assert A.action_to_str(action) in ("W ·", "W →", "W ←", "None →", "None ←")


def test_policy_agent_is_deterministic_when_greedy(saved_policy):
    agent = PolicyAgent(saved_policy)
    frame = np.full((64, 64, 3), 100, np.uint8)
    assert len({tuple(agent.act(frame, {})) for _ in range(5)}) == 1


def test_policy_agent_rejects_a_missing_file_and_a_wrong_action_set(saved_policy, tmp_path):
    with pytest.raises(FileNotFoundError, match="no policy"):
        PolicyAgent(tmp_path / "missing.zip")
    with pytest.raises(ValueError, match="action set"):
        PolicyAgent(saved_policy, action_set="full")


def test_action_set_vec_env_steps_the_wrapped_env_with_key_camera_rows():
    seen = []

    class Spy(Frames32):
        def step(self, action):
            seen.append(np.asarray(action).tolist())
            return super().step(action)

    env = ActionSetVecEnv(DummyVecEnv([Spy]), "walk")
    assert env.action_space == gym.spaces.Discrete(5)
    env.reset()
    env.step(np.array([2]))
    assert seen == [A.parse_action("W ←").tolist()]
