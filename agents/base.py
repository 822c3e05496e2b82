"""The agent interface and a loop that runs one episode with it.

An agent sees what the env returns and answers with one `(key, camera)` action per step:

    agent.reset(obs, info)            # at the start of an episode
    action = agent.act(obs, info)     # int64 array([key, camera]), keys/cameras as yume_env.actions
    text = agent.events_at(step)      # optional: an event to set before step `step` (0-based), or None
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from yume_env import actions as A


class Agent:
    """Base class: override `act` (and `reset` when the agent keeps per-episode state)."""

    name = "agent"

    def reset(self, obs: np.ndarray, info: dict) -> None:
        """Called with the first observation and info of an episode."""

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        """Returns the next action, int64 array([key, camera])."""
        raise TypeError(f"{type(self).__name__} must implement act(obs, info) -> np.ndarray([key, camera])")

    def events_at(self, step: int) -> str | None:
        """The event text to set before step `step` (0-based), or None for no change."""
        return None


def as_action(action: Any) -> np.ndarray:
    """Checks an agent's answer and returns it as int64 array([key, camera])."""
    arr = A.parse_action(action) if isinstance(action, str) else np.asarray(action)
    A.validate_action(arr)
    return arr.astype(np.int64).reshape(2)


@dataclass
class EpisodeResult:
    """What `run_episode` saw: the actions taken, the events set (step -> text) and the outcome."""

    actions: np.ndarray  # int64 (T, 2)
    events: dict[int, str] = field(default_factory=dict)
    rewards: list[float] = field(default_factory=list)
    terminated: bool = False
    truncated: bool = False
    success: bool = False  # the sim's info["is_success"], else terminated (the learned world's arrival)
    reset_info: dict = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return len(self.actions)

    @property
    def episode_return(self) -> float:
        return float(sum(self.rewards))


def run_episode(
    env: Any,
    agent: Agent,
    seed: int | None = None,
    options: dict | None = None,
    max_steps: int | None = None,
    on_step: Callable[[int, np.ndarray, float, dict], None] | None = None,
) -> EpisodeResult:
    """Resets `env`, lets `agent` act until the episode ends (or `max_steps`), returns the record.

    Events the agent asks for (`events_at`) are set with `env.unwrapped.set_event` before the step.
    `on_step(step, obs, reward, info)` is called after every step (for progress or logging).
    """
    obs, info = env.reset(seed=seed, options=options)
    agent.reset(obs, info)
    actions: list[np.ndarray] = []
    result = EpisodeResult(np.zeros((0, 2), np.int64), reset_info=info)
    step = 0
    while max_steps is None or step < max_steps:
        text = agent.events_at(step)
        if text is not None:
            env.unwrapped.set_event(text)
            result.events[step] = text
        action = as_action(agent.act(obs, info))
        obs, reward, terminated, truncated, info = env.step(action)
        actions.append(action)
        result.rewards.append(float(reward))
        if on_step is not None:
            on_step(step, obs, float(reward), info)
        step += 1
        if terminated or truncated:
            result.terminated, result.truncated = bool(terminated), bool(truncated)
            break
    result.actions = np.stack(actions) if actions else np.zeros((0, 2), np.int64)
    result.success = bool(info.get("is_success", result.terminated))
    return result
