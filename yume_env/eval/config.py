"""`EvalConfig`: what `yume-env eval` measures and how much, with presets as data."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from yume_env.actions import TURN_SPEED

HALF_TURN_STEPS = int(round(np.pi / TURN_SPEED))  # 18 steps of 10 degrees
# The groups of measures `measures` may pick: "rollout" is the autoregressive rollout and what reads
# it (references, teacher-forced, action following, Fréchet distance and sharpness); "memory" the
# loop closure and turn back; "script" the rollout under the action scripts (Fréchet distance and
# sharpness); "task" the task head's "reached" against the simulator's.
MEASURES = ("rollout", "memory", "events", "speed", "script", "task")


@dataclass
class EvalConfig:
    """Every count of the evaluation. Seeds start at `seed` (1,000,000 by default: the probes
    train on seeds from 0, so the evaluation's worlds are held out).

    - `episodes`: worlds stepped together (B) in the autoregressive rollout, which also feeds the
      teacher-forced and the action-following measures;
    - `burn_in`: simulator steps whose frames become the model's history before it generates;
    - `horizons`: autoregressive steps at which PSNR/SSIM, Fréchet distance and sharpness are
      reported (the rollouts run to the max);
    - `realism_window`: the Fréchet distance and sharpness at horizon h read the frames of the
      `realism_window` steps that end at h;
    - `script_episodes`: worlds of the scripted rollout (the loop closure's loop, then a turn back,
      repeated to the largest horizon);
    - `task_episodes`, `task_steps`: rollouts that score the task head's "reached" (half seek the
      beacon, half walk at random);
    - `tf_points`, `tf_context`: teacher-forced predictions per episode, spread over the rollout,
      each from the last `tf_context` true steps;
    - `loop_episodes`, `loop_walk`, `loop_turn`: loop closure (walk `loop_walk` steps, turn
      `loop_turn` steps, walk back, turn back); worlds where the simulator's own loop does not close
      (a wall in the way) are skipped, trying at most `loop_tries` seeds per episode;
    - `turn_back_episodes`, `turn_back_steps`: turn k steps right and k back for each k, memory on
      and off (`loop_closure.turn_back`): how far back the memory recalls;
    - `event_episodes`: episodes per event; `event_steps` steps after the prompt (standing still),
      judged on the frames of the last `event_judge` steps; `events`: which events (None: all);
    - `speed_steps`, `speed_warmup`, `speed_batch`: the steps/s measurement;
    - `sample_seed`: the model's sampling noise;
    - `measures`: which groups of `MEASURES` to run (all by default; e.g. ("memory",) checks a
      memory experiment in a fraction of the time). Each group keeps its own worlds and random
      streams, so its figures are the same whichever others run.
    """

    episodes: int = 16
    burn_in: int = 4
    horizons: tuple[int, ...] = (16, 64, 256)
    realism_window: int = 16
    script_episodes: int = 16
    task_episodes: int = 32
    task_steps: int = 64
    tf_points: int = 8
    tf_context: int = 4
    loop_episodes: int = 16  # 4 gave gains that swung by 3 dB between two seeds of worlds
    loop_walk: int = 6
    loop_turn: int = HALF_TURN_STEPS
    loop_tries: int = 8
    turn_back_episodes: int = 16
    turn_back_steps: tuple[int, ...] = (2, 4, 8, 12)
    event_episodes: int = 32  # per event; 8 left one episode worth 2 % and the rate swung by 4-6 % between seeds
    event_steps: int = 4
    event_judge: int = 2
    events: tuple[str, ...] | None = None
    speed_steps: int = 40
    speed_warmup: int = 3
    speed_batch: int = 8
    seed: int = 1_000_000
    sample_seed: int = 0
    quick: bool = False
    measures: tuple[str, ...] = MEASURES

    def __post_init__(self) -> None:
        self.horizons = tuple(sorted(int(h) for h in self.horizons))
        self.turn_back_steps = tuple(int(k) for k in self.turn_back_steps)
        self.measures = tuple(m.strip() for m in self.measures)
        unknown = [m for m in self.measures if m not in MEASURES]
        if unknown or not self.measures:
            raise ValueError(f"EvalConfig.measures names {unknown or 'nothing'}; choose from {list(MEASURES)}")
        if self.events is not None:
            self.events = tuple(self.events)
        for name in (
            "episodes",
            "burn_in",
            "tf_points",
            "tf_context",
            "loop_episodes",
            "loop_tries",
            "event_episodes",
            "event_steps",
            "event_judge",
            "speed_steps",
            "speed_batch",
            "turn_back_episodes",
            "realism_window",
            "script_episodes",
            "task_episodes",
            "task_steps",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"EvalConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.turn_back_steps or min(self.turn_back_steps) < 1:
            raise ValueError(f"EvalConfig.turn_back_steps must be positive step counts, got {self.turn_back_steps!r}")
        if not self.horizons or self.horizons[0] < 1:
            raise ValueError(f"EvalConfig.horizons must be positive step counts, got {self.horizons!r}")
        if self.event_judge > self.event_steps:
            raise ValueError(f"event_judge ({self.event_judge}) must be <= event_steps ({self.event_steps})")

    @property
    def rollout_steps(self) -> int:
        return self.horizons[-1]

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "EvalConfig":
        if name not in EVAL_PRESETS:
            raise ValueError(f"unknown eval preset {name!r}; expected one of {sorted(EVAL_PRESETS)}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(overrides) - fields
        if unknown:
            raise ValueError(f"unknown EvalConfig fields {sorted(unknown)}")
        return cls(**{**EVAL_PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["horizons"] = list(self.horizons)
        d["turn_back_steps"] = list(self.turn_back_steps)
        d["measures"] = list(self.measures)
        d["events"] = None if self.events is None else list(self.events)
        return d


EVAL_PRESETS: dict[str, dict[str, Any]] = {
    "full": {},
    # A few minutes less: fewer worlds and steps. Horizons stay 16, 64 and 256 on a real model.
    "quick": {
        "episodes": 2,
        "tf_points": 4,
        "loop_episodes": 1,
        "loop_walk": 2,
        "turn_back_episodes": 2,
        "turn_back_steps": (2, 8),
        "event_episodes": 1,
        "speed_steps": 8,
        "speed_batch": 2,
        "script_episodes": 2,
        "task_episodes": 4,
        "quick": True,
    },
}
