"""Stable-Baselines3 pieces shared by training and the policy agent: a small CNN for 32-64 px
frames and a VecEnv wrapper that exposes an action set as `Discrete(K)`.

Needs stable-baselines3 (`pip install 'yume-env[rl]'`).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from torch import nn

from agents.action_sets import action_table


class SmallCNN(BaseFeaturesExtractor):
    """Three strided convs + one linear layer (~0.2 M parameters): cheap on a CPU, works from 32x32
    (SB3's NatureCNN needs >= 36 px). Expects channel-first images, scaled to [0, 1] by SB3."""

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 128):
        super().__init__(observation_space, features_dim)
        channels = observation_space.shape[0]
        self.cnn = nn.Sequential(
            nn.Conv2d(channels, 32, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.cnn(torch.zeros(1, *observation_space.shape)).shape[1]
        self.linear = nn.Sequential(nn.Linear(flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(observations))


class ActionSetVecEnv(VecEnvWrapper):
    """Exposes `Discrete(K)` over an action set; steps the wrapped VecEnv (MultiDiscrete([9, 9]))
    with the matching (key, camera) rows."""

    def __init__(self, venv: VecEnv, action_set: str | list[str]):
        self.table = action_table(action_set)
        if not isinstance(venv.action_space, gym.spaces.MultiDiscrete) or list(venv.action_space.nvec) != [9, 9]:
            raise ValueError(
                f"ActionSetVecEnv wraps an env with MultiDiscrete([9, 9]) actions, got {venv.action_space}"
            )
        super().__init__(venv, action_space=gym.spaces.Discrete(len(self.table)))

    def step_async(self, actions: np.ndarray) -> None:
        self.venv.step_async(self.table[np.asarray(actions, dtype=np.int64).reshape(-1)])

    def step_wait(self):
        return self.venv.step_wait()

    def reset(self):
        return self.venv.reset()
