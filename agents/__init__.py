"""Agents for yume-env: one small interface (`Agent`) for random, scripted, keyboard and learned policies.

    from agents import RandomAgent, run_episode
    env = gym.make("YumeSim-v0")
    result = run_episode(env, RandomAgent(seed=0), seed=0)

Every agent works on `YumeWorld-v0` and `YumeSim-v0` alike (same spaces, same info keys). `yume_env`
never imports this package; examples and tools built on top of it do.
"""

from __future__ import annotations

from agents.action_sets import ACTION_SETS
from agents.base import Agent, EpisodeResult, run_episode
from agents.keyboard import KeyboardAgent, keys_to_action
from agents.random_agent import RandomAgent
from agents.scripted import (
    EventScript,
    LookAroundAgent,
    PlanAgent,
    StraightWalkAgent,
    WaypointFollower,
    loop_back_agent,
)

__all__ = [
    "Agent",
    "EpisodeResult",
    "run_episode",
    "RandomAgent",
    "StraightWalkAgent",
    "LookAroundAgent",
    "PlanAgent",
    "WaypointFollower",
    "EventScript",
    "loop_back_agent",
    "KeyboardAgent",
    "keys_to_action",
    "PolicyAgent",
    "ACTION_SETS",
]


def __getattr__(name: str):
    # the policy agent needs stable-baselines3; load it only when asked for
    if name == "PolicyAgent":
        from agents.policy import PolicyAgent

        return PolicyAgent
    raise AttributeError(f"module 'agents' has no attribute {name!r}")
