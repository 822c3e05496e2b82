"""Action policies for making data: B worlds at once, numpy, deterministic from a Generator.

Each policy's `act()` returns (B, 2) int64 actions (key, camera) in the orders of
`yume_env.actions` and keeps its own per-world state (a persistent action, a script position).

- `RandomPolicy`: uniform actions held for a random number of steps (persistence).
- `WalkPolicy`: mostly walking forward, with turns of a few steps and the odd strafe or tilt.
- `LoopBackPolicy`: walk forward, turn around on the spot (180 degrees), walk back.
- `LookAroundPolicy`: stand (or creep) and pan/tilt the camera.
- `MixedPolicy`: each world follows one of the above, drawn per world at reset.
"""

from __future__ import annotations

import abc
import math

import numpy as np

from ..actions import CAMERAS, KEYS, NUM_CAMERAS, NUM_KEYS, TURN_SPEED

W, NONE = KEYS.index("W"), KEYS.index("None")
STILL, RIGHT, LEFT, UP, DOWN = (CAMERAS.index(c) for c in ("·", "→", "←", "↑", "↓"))


class Policy(abc.ABC):
    """Base: per-world state arrays sized by `batch`; `reset(indices)` restarts some worlds."""

    def __init__(self, batch: int, rng: np.random.Generator):
        self.batch, self.rng = int(batch), rng
        self.reset()

    @abc.abstractmethod
    def reset(self, indices=None) -> None:
        """Restart the per-world state of `indices` (all worlds by default)."""

    @abc.abstractmethod
    def act(self) -> np.ndarray:
        """(B, 2) int64 actions for the next step."""

    def _idx(self, indices):
        return np.arange(self.batch) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)


class RandomPolicy(Policy):
    """Uniform random (key, camera), each held for 1 + Geometric(1 - persistence) steps."""

    def __init__(self, batch: int, rng: np.random.Generator, persistence: float = 0.75):
        self.persistence = float(persistence)
        super().__init__(batch, rng)

    def reset(self, indices=None) -> None:
        if not hasattr(self, "current"):
            self.current = np.zeros((self.batch, 2), np.int64)
        i = self._idx(indices)
        self.current[i] = self._draw(len(i))

    def _draw(self, n: int) -> np.ndarray:
        return np.stack([self.rng.integers(0, NUM_KEYS, n), self.rng.integers(0, NUM_CAMERAS, n)], -1)

    def act(self) -> np.ndarray:
        change = self.rng.random(self.batch) > self.persistence
        self.current[change] = self._draw(int(change.sum()))
        return self.current.copy()


class WalkPolicy(Policy):
    """Walk forward; now and then turn left/right for 2-6 steps (walking or standing), strafe or tilt."""

    def reset(self, indices=None) -> None:
        if not hasattr(self, "left"):
            self.left = np.zeros(self.batch, np.int64)
            self.action = np.zeros((self.batch, 2), np.int64)
        i = self._idx(indices)
        self.left[i] = 0

    def act(self) -> np.ndarray:
        start = self.left <= 0
        n = int(start.sum())
        if n:
            r = self.rng.random(n)
            key = np.where(
                r < 0.7,
                W,
                self.rng.choice([W, NONE, KEYS.index("W+A"), KEYS.index("W+D"), KEYS.index("A"), KEYS.index("D")], n),
            )
            cam = np.where(
                r < 0.55,
                STILL,
                self.rng.choice([RIGHT, LEFT, RIGHT, LEFT, UP, DOWN, CAMERAS.index("↑→"), CAMERAS.index("↓←")], n),
            )
            self.action[start] = np.stack([key, cam], -1)
            self.left[start] = self.rng.integers(2, 7, n)
        self.left -= 1
        return self.action.copy()


class LoopBackPolicy(Policy):
    """Walk forward `out` steps, turn on the spot by 180 degrees, walk back, repeat."""

    TURN_STEPS = int(round(math.pi / TURN_SPEED))

    def reset(self, indices=None) -> None:
        if not hasattr(self, "t"):
            self.t = np.zeros(self.batch, np.int64)
            self.out = np.zeros(self.batch, np.int64)
            self.turn = np.zeros(self.batch, np.int64)
        i = self._idx(indices)
        self.t[i] = 0
        self.out[i] = self.rng.integers(4, 13, len(i))
        self.turn[i] = self.rng.choice([RIGHT, LEFT], len(i))

    def act(self) -> np.ndarray:
        period = 2 * self.out + self.TURN_STEPS
        phase = self.t % period
        turning = (phase >= self.out) & (phase < self.out + self.TURN_STEPS)
        self.t += 1
        return np.stack([np.where(turning, NONE, W), np.where(turning, self.turn, STILL)], -1).astype(np.int64)


class LookAroundPolicy(Policy):
    """Stand still (sometimes creep forward) and look around: pans and tilts held for 1-4 steps."""

    def reset(self, indices=None) -> None:
        if not hasattr(self, "left"):
            self.left = np.zeros(self.batch, np.int64)
            self.action = np.zeros((self.batch, 2), np.int64)
        self.left[self._idx(indices)] = 0

    def act(self) -> np.ndarray:
        start = self.left <= 0
        n = int(start.sum())
        if n:
            key = np.where(self.rng.random(n) < 0.8, NONE, W)
            cam = self.rng.integers(0, NUM_CAMERAS, n)
            self.action[start] = np.stack([key, cam], -1)
            self.left[start] = self.rng.integers(1, 5, n)
        self.left -= 1
        return self.action.copy()


POLICIES: dict[str, type[Policy]] = {
    "random": RandomPolicy,
    "walk": WalkPolicy,
    "loop_back": LoopBackPolicy,
    "look_around": LookAroundPolicy,
}


class MixedPolicy(Policy):
    """Each world follows one policy of `POLICIES`, drawn per world with `weights` at each reset."""

    def __init__(self, batch: int, rng: np.random.Generator, weights: dict[str, float] | None = None):
        self.weights = weights or {"random": 0.3, "walk": 0.35, "loop_back": 0.15, "look_around": 0.2}
        unknown = set(self.weights) - set(POLICIES)
        if unknown:
            raise ValueError(f"unknown policies {sorted(unknown)}; choose from {sorted(POLICIES)}")
        self.names = list(self.weights)
        self.members = [POLICIES[n](batch, rng) for n in self.names]
        super().__init__(batch, rng)

    def reset(self, indices=None) -> None:
        if not hasattr(self, "which"):
            self.which = np.zeros(self.batch, np.int64)
        i = self._idx(indices)
        p = np.array([self.weights[n] for n in self.names], dtype=np.float64)
        self.which[i] = self.rng.choice(len(self.names), len(i), p=p / p.sum())
        for m in self.members:
            m.reset(i)

    def policy_names(self) -> list[str]:
        """The policy each world currently follows."""
        return [self.names[k] for k in self.which]

    def act(self) -> np.ndarray:
        acts = [m.act() for m in self.members]
        return np.stack(acts, 0)[self.which, np.arange(self.batch)]


def make_policy(name: str, batch: int, rng: np.random.Generator) -> Policy:
    """A policy by name: one of `POLICIES` or "mixed"."""
    if name == "mixed":
        return MixedPolicy(batch, rng)
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose from {sorted(POLICIES) + ['mixed']}")
    return POLICIES[name](batch, rng)
