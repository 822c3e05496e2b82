"""`PolicyAgent`: acts with a Stable-Baselines3 model zip (e.g. PPO trained inside `YumeWorld-v0`).

A model saved by `examples/train_ppo_in_dream.py` has a sidecar `<name>.agent.json` with its
observation size and action set; the agent resizes frames the way the env's `obs_size` does
(antialiased bilinear), so a policy trained in the learned world runs unchanged in `YumeSim-v0`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from agents.action_sets import action_table
from agents.base import Agent
from yume_env.env.core import resize_frame

ALGORITHMS = ("PPO", "A2C", "DQN")


def sidecar_path(model_path: str | os.PathLike) -> Path:
    """'runs/ppo.zip' -> 'runs/ppo.agent.json'."""
    path = Path(model_path)
    return path.with_name(path.name.removesuffix(".zip") + ".agent.json")


def write_sidecar(
    model_path: str | os.PathLike,
    obs_size: tuple[int, int] | None,
    action_set: str | list[str],
    algorithm: str = "PPO",
    **extra,
) -> Path:
    """Writes what a `PolicyAgent` needs beside the model zip (atomically)."""
    path = sidecar_path(model_path)
    tmp = path.with_name(f".{path.name}.tmp")
    data = {
        "algorithm": algorithm,
        "obs_size": None if obs_size is None else list(obs_size),
        "action_set": action_set,
        **extra,
    }
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    os.replace(tmp, path)
    return path


class PolicyAgent(Agent):
    """Loads `model_path` (an SB3 zip) and acts greedily (`deterministic=True`) or by sampling.

    `obs_size` / `action_set` default to the sidecar's; without a sidecar the observation size comes
    from the model's observation space and the action space must be `MultiDiscrete([9, 9])` or
    `Discrete(81)` (the env's own).
    """

    name = "policy"

    def __init__(
        self,
        model_path: str | os.PathLike,
        deterministic: bool = True,
        device: str = "cpu",
        obs_size: tuple[int, int] | None = None,
        action_set: str | list[str] | None = None,
    ):
        import stable_baselines3

        path = Path(model_path)
        if not path.exists() and not path.with_suffix(".zip").exists():
            raise FileNotFoundError(
                f"no policy at {path}: pass the .zip written by model.save() (see examples/train_ppo_in_dream.py)"
            )
        meta = json.loads(sidecar_path(path).read_text()) if sidecar_path(path).exists() else {}
        algorithm = meta.get("algorithm", "PPO")
        if algorithm not in ALGORITHMS:
            raise ValueError(
                f"unsupported algorithm {algorithm!r} in {sidecar_path(path)}; expected one of {ALGORITHMS}"
            )
        self.model = getattr(stable_baselines3, algorithm).load(str(path), device=device)
        self.deterministic = bool(deterministic)
        space = self.model.observation_space
        shape = space.shape
        native = tuple(shape[1:3]) if shape[0] == 3 and shape[-1] != 3 else tuple(shape[:2])
        self.obs_size = tuple(obs_size or meta.get("obs_size") or native)
        action_set = action_set if action_set is not None else meta.get("action_set")
        self.table = None if action_set is None else action_table(action_set)
        n = getattr(self.model.action_space, "n", None)
        if self.table is not None and n != len(self.table):
            raise ValueError(f"the policy has {n} actions but its action set has {len(self.table)}")
        if self.table is None and n is not None and n != 81:
            raise ValueError(
                f"the policy has Discrete({n}) actions: give action_set= (or keep the .agent.json sidecar)"
            )

    def observe(self, obs: np.ndarray) -> np.ndarray:
        """The observation as the policy saw it in training (resized to `obs_size`)."""
        return resize_frame(np.asarray(obs, dtype=np.uint8), self.obs_size)

    def act(self, obs, info) -> np.ndarray:
        action, _ = self.model.predict(self.observe(obs), deterministic=self.deterministic)
        action = np.asarray(action, dtype=np.int64).reshape(-1)
        if self.table is not None:
            return self.table[int(action[0])].copy()
        if action.size == 1:  # Discrete(81): index = key * 9 + camera
            return np.array(divmod(int(action[0]), 9), dtype=np.int64)
        return action[:2].copy()
