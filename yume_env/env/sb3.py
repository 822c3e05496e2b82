"""`Sb3VecEnvAdapter`: a Gymnasium 1.x `VectorEnv` (same-step autoreset) as a Stable-Baselines3 `VecEnv`.

SB3 does not accept Gymnasium vector envs. This adapter keeps the batched model forward (one call
per step for all worlds) and translates the conventions: per-world info dicts, `terminal_observation`
and `TimeLimit.truncated` for finished episodes, seeds and options from `VecEnv.seed()` /
`set_options()`. Stable-Baselines3 is optional (`pip install yume-env[rl]`): importing this module
needs it, importing `yume_env` does not.

    vec = Sb3VecEnvAdapter(gym.make_vec("YumeWorld-v0", num_envs=8, flatten_actions=False))
    PPO("CnnPolicy", vec).learn(10_000)
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np

try:
    from stable_baselines3.common.vec_env.base_vec_env import VecEnv
except ImportError as err:  # optional dependency
    raise ImportError(
        "Sb3VecEnvAdapter needs stable-baselines3: pip install 'yume-env[rl]' (or stable-baselines3>=2.4)"
    ) from err

from gymnasium.vector import AutoresetMode


class Sb3VecEnvAdapter(VecEnv):
    """Wraps a same-step-autoreset Gymnasium `VectorEnv` (e.g. `gym.make_vec("YumeWorld-v0", num_envs=N)`)."""

    def __init__(self, venv: gym.vector.VectorEnv):
        mode = venv.metadata.get("autoreset_mode")
        if mode is not AutoresetMode.SAME_STEP:
            raise ValueError(
                f"Sb3VecEnvAdapter needs a vector env with metadata['autoreset_mode'] = AutoresetMode.SAME_STEP "
                f"(SB3 resets finished envs in the same step), got {mode!r}"
            )
        if getattr(venv, "tensors", False):
            raise ValueError(
                "Sb3VecEnvAdapter needs numpy observations, this vector env returns tensors: make it with tensors=False"
            )
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self.render_mode = getattr(venv, "render_mode", None)
        self._actions: np.ndarray | None = None

    # ---- VecEnv API -------------------------------------------------------------------------
    def reset(self):
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        options = None if all(not o for o in self._options) else [o or None for o in self._options]
        obs, infos = self.venv.reset(seed=seeds, options=options)
        self.reset_infos = self._split_infos(infos)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async(actions)")
        obs, rewards, terminated, truncated, infos = self.venv.step(self._actions)
        self._actions = None
        dones = terminated | truncated
        per_env = self._split_infos(infos)
        for i in np.flatnonzero(dones):
            final_info = infos["final_info"][i]
            per_env[i] = {**final_info, "terminal_observation": infos["final_obs"][i]}
            per_env[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, np.asarray(rewards, dtype=np.float32), dones, per_env

    def close(self) -> None:
        self.venv.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            return [None] * self.num_envs
        return list(self.venv.render())

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        value = getattr(self.venv.unwrapped, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        if list(self._get_indices(indices)) != list(range(self.num_envs)):
            raise ValueError(f"set_attr({attr_name!r}) applies to the whole batched env: pass indices=None")
        setattr(self.venv.unwrapped, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        """Calls `venv.unwrapped.<method>(..., index=i)` for each index when it takes `index`, else once."""
        method = getattr(self.venv.unwrapped, method_name)
        if method_name in ("set_event", "get_state"):
            return [method(*method_args, index=i, **method_kwargs) for i in self._get_indices(indices)]
        result = method(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    # ---- helpers ----------------------------------------------------------------------------
    def _split_infos(self, infos: dict) -> list[dict]:
        """Gymnasium's batched info dict -> one dict per env (masked entries only)."""
        out: list[dict] = [{} for _ in range(self.num_envs)]
        for key, value in infos.items():
            if key.startswith("_") or key in ("final_obs", "final_info"):
                continue
            mask = infos.get(f"_{key}", np.ones(self.num_envs, dtype=bool))
            if isinstance(value, dict):
                for i, sub in enumerate(self._split_infos(value)):
                    if mask[i]:
                        out[i][key] = sub
                continue
            for i in np.flatnonzero(mask):
                item = value[i]
                out[i][key] = item.item() if isinstance(item, np.generic) else item
        return out
