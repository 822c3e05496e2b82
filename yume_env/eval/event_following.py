"""Event following: prompt an event in the simulator and in the learned world from the same start,
stand still for a few steps, and ask the event classifier which event the last frames show.

The simulator's rate checks the classifier (it should be near 1); "none" episodes (no prompt)
give the false-alarm rate.

A second measure, `kept`, starts the world from frames that already show the event (the
simulator's event began `CARRIED_STEPS` steps before the end of the burn-in) and asks whether the
world keeps it. It tells a world that cannot draw an event apart from one that cannot start it.
"""

from __future__ import annotations

import numpy as np
import torch

from yume_env.eval.probes import Probes
from yume_env.eval.rollout import BurnIn, burn_in, init_states, lockstep
from yume_env.eval.simulate import NO_EVENT, event_prompt

CARRIED_STEPS = 2  # steps the event runs in the simulator before the world starts (the fade-in takes 1.5)


def event_following(
    model,
    probes: Probes,
    events: tuple[str, ...] | None,
    per_event: int,
    steps: int,
    judge: int,
    burn: int,
    seed: int,
    rng: np.random.Generator,
    generator: torch.Generator,
    progress: bool = True,
) -> dict:
    classes = probes.event_classes
    names = [n for n in (events or classes[1:]) if n != NO_EVENT]
    unknown = [n for n in names if n not in classes]
    if unknown:
        raise ValueError(f"events {unknown} are not among the event classifier's classes {classes[1:]}")
    names_all = names + [NO_EVENT]
    labels = [n for n in names_all for _ in range(per_event)]
    start = burn_in(model, [seed + i for i in range(len(labels))], burn, rng)
    states = init_states(model, start)
    prompts = [event_prompt(n, rng) for n in labels]
    for sim, state, text in zip(start.sims, states, prompts):
        sim.set_event(text)
        model.set_event(state, text)
    still = np.zeros((len(labels), steps, 2), dtype=np.int64)  # None, · : the event stays in view
    roll = lockstep(model, start, still, generator, states=states, desc="event following", progress=progress)
    target = np.array([classes.index(n) for n in labels])
    out: dict = {
        "events": names,
        "episodes_per_event": int(per_event),
        "steps": int(steps),
        "judged_steps": int(judge),
        "prompts": prompts,
    }
    for side, frames in (("sim", roll.sim), ("model", roll.model)):
        pred = _judge(probes, frames, judge)
        hit = pred == target
        is_event = np.array([n != NO_EVENT for n in labels])
        out[side] = {
            "rate": float(hit[is_event].mean()),
            "per_event": {n: float(hit[[l == n for l in labels]].mean()) for n in names},
            "false_alarm": float((pred[~is_event] != 0).mean()),
            "predicted": [classes[i] for i in pred],
        }
    out["labels"] = labels
    out["_views"] = {"sim": roll.sim[:, -1, -1], "model": roll.model[:, -1, -1]}
    kept = [n for n in names for _ in range(per_event)]
    start = carry_event(
        burn_in(model, [seed + 50_000 + i for i in range(len(kept))], burn, rng),
        [event_prompt(n, rng) for n in kept],
        CARRIED_STEPS,
    )
    states = init_states(model, start)
    for sim, state in zip(start.sims, states):
        model.set_event(state, sim.event)
    roll = lockstep(model, start, still[: len(kept)], generator, states=states, desc="events kept", progress=progress)
    hit = _judge(probes, roll.model, judge) == np.array([classes.index(n) for n in kept])
    out["model"]["kept"] = {
        "rate": float(hit.mean()),
        "per_event": {n: float(hit[[k == n for k in kept]].mean()) for n in names},
    }
    return out


def carry_event(start: BurnIn, prompts: list[str], steps: int) -> BurnIn:
    """The burn-in extended by `steps` still steps with each simulator's event (`prompts`) begun,
    so the frames a world starts from show the event."""
    for sim, text in zip(start.sims, prompts):
        sim.set_event(text)
    still = np.zeros(2, dtype=np.int64)
    more = np.stack([np.concatenate([sim.step(still).frames for _ in range(steps)]) for sim in start.sims])
    actions = np.concatenate([start.actions, np.zeros((len(prompts), steps, 2), dtype=np.int64)], axis=1)
    return BurnIn(start.sims, np.concatenate([start.frames, more], axis=1), actions)


def _judge(probes: Probes, frames: np.ndarray, judge: int) -> np.ndarray:
    """(N,) the event class the classifier reads, on average, from the last `judge` steps' frames."""
    judged = frames[:, -judge:]  # (N, judge, F, H, W, 3)
    lp = probes.event_log_probs(judged.reshape(-1, *judged.shape[-3:])).reshape(
        len(frames), -1, len(probes.event_classes)
    )
    return lp.mean(1).argmax(1)
