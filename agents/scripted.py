"""Scripted agents: fixed plans (straight walk, look-around, loop-back), a waypoint follower that
steers on the pose in `info["pose"]` (true in the simulator, dead-reckoned in the learned world),
and `EventScript`, which adds events at given steps to any agent.

Plans are data: lists of `(action text, repeats)` as in `yume_env.env.policies`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from agents.base import Agent, as_action
from yume_env import actions as A

# pans and tilts around the start point, then back to the start view (sums to zero yaw and pitch)
LOOK_AROUND_PLAN: list[tuple[str, int]] = [("→", 9), ("↑", 4), ("←", 18), ("↓", 8), ("→", 9), ("↑", 4)]
HALF_TURN_STEPS = int(round(np.pi / A.TURN_SPEED))  # 18 pans of 10 degrees


def expand_plan(plan: Sequence[tuple[str, int]]) -> np.ndarray:
    """[("W", 3), ("→", 2)] -> int64 (5, 2) actions."""
    rows = [A.parse_action(text) for text, n in plan for _ in range(int(n))]
    if not rows:
        raise ValueError("a plan needs at least one (action text, repeats) entry with repeats >= 1")
    return np.stack(rows).astype(np.int64)


class PlanAgent(Agent):
    """Plays a fixed list of actions; `cycle=True` repeats it, else it idles ("None ·") at the end."""

    name = "plan"

    def __init__(self, actions: Sequence | np.ndarray, cycle: bool = True):
        rows = [as_action(a) for a in actions]
        if not rows:
            raise ValueError("PlanAgent needs at least one action")
        self.actions = np.stack(rows)
        self.cycle = bool(cycle)
        self.t = 0

    @classmethod
    def from_plan(cls, plan: Sequence[tuple[str, int]], cycle: bool = True) -> "PlanAgent":
        return cls(expand_plan(plan), cycle=cycle)

    def reset(self, obs, info) -> None:
        self.t = 0

    def act(self, obs, info) -> np.ndarray:
        if self.t < len(self.actions) or self.cycle:
            action = self.actions[self.t % len(self.actions)].copy()
        else:
            action = np.zeros(2, np.int64)
        self.t += 1
        return action


class StraightWalkAgent(PlanAgent):
    """Holds W (walk forward) every step."""

    name = "straight"

    def __init__(self):
        super().__init__(expand_plan([("W", 1)]), cycle=True)


class LookAroundAgent(PlanAgent):
    """Stands still and pans/tilts around (`LOOK_AROUND_PLAN`), repeating."""

    name = "lookaround"

    def __init__(self):
        super().__init__(expand_plan(LOOK_AROUND_PLAN), cycle=True)


def loop_back_agent(out_steps: int = 12, turn_back: bool = True) -> PlanAgent:
    """Memory test path: walk `out_steps`, turn 180 degrees, walk back to the start, and (turn_back)
    turn 180 degrees again so the last view should match the first one. Plays once, then idles."""
    if out_steps < 1:
        raise ValueError(f"out_steps must be >= 1, got {out_steps}")
    plan = [("W", out_steps), ("→", HALF_TURN_STEPS), ("W", out_steps)]
    if turn_back:
        plan.append(("←", HALF_TURN_STEPS))
    agent = PlanAgent(expand_plan(plan), cycle=False)
    agent.name = "loop_back"
    return agent


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


class WaypointFollower(Agent):
    """Walks through `waypoints` (x right, z forward, metres, in the frame of the episode's start pose).

    Each step reads `info["pose"]`, turns towards the next waypoint (pan 10 degrees per step) and
    walks forward when it points within `walk_cone` of it; a waypoint within `radius` counts as
    reached. After the last one it idles (`done` becomes True), or starts over with `loop=True`.
    """

    name = "waypoints"

    def __init__(
        self, waypoints: Sequence[Sequence[float]], radius: float = 0.6, walk_cone_deg: float = 45.0, loop: bool = False
    ):
        self.waypoints = np.asarray(waypoints, dtype=np.float64).reshape(-1, 2)
        if len(self.waypoints) == 0:
            raise ValueError("WaypointFollower needs at least one (x, z) waypoint")
        self.radius, self.walk_cone, self.loop = float(radius), np.deg2rad(walk_cone_deg), bool(loop)
        self.index = 0
        self._start_inv = np.eye(4)

    @property
    def done(self) -> bool:
        return self.index >= len(self.waypoints)

    def reset(self, obs, info) -> None:
        self.index = 0
        self._start_inv = np.linalg.inv(np.asarray(info["pose"], dtype=np.float64))

    def position_and_heading(self, info: dict) -> tuple[np.ndarray, float]:
        """(x, z) and yaw (radians, > 0 = right of +z) relative to the start pose."""
        rel = self._start_inv @ np.asarray(info["pose"], dtype=np.float64)
        forward = rel[:3, 2]
        return rel[[0, 2], 3], float(np.arctan2(forward[0], forward[2]))

    def act(self, obs, info) -> np.ndarray:
        pos, yaw = self.position_and_heading(info)
        while not self.done and np.linalg.norm(self.waypoints[self.index] - pos) < self.radius:
            self.index += 1
            if self.done and self.loop:
                self.index = 0
        if self.done:
            return np.zeros(2, np.int64)
        dx, dz = self.waypoints[self.index] - pos
        error = _wrap(np.arctan2(dx, dz) - yaw)
        # turn only when the error exceeds half a pan step, so the heading does not oscillate
        camera = "→" if error > A.TURN_SPEED / 2 else "←" if error < -A.TURN_SPEED / 2 else "·"
        key = "W" if abs(error) < self.walk_cone else "None"
        return A.parse_action(f"{key} {camera}")


class EventScript(Agent):
    """Wraps an agent and sets `events` ({step: text}, before that 0-based step) during its episodes."""

    def __init__(self, agent: Agent, events: dict[int, str]):
        self.agent = agent
        self.events = {int(k): str(v) for k, v in events.items()}
        self.name = f"{agent.name}+events"

    def reset(self, obs, info) -> None:
        self.agent.reset(obs, info)

    def act(self, obs, info) -> np.ndarray:
        return self.agent.act(obs, info)

    def events_at(self, step: int) -> str | None:
        if step in self.events:
            return self.events[step]
        return self.agent.events_at(step)
