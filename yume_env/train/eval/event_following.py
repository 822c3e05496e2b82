"""Event following: prompt an event in the simulator and in the learned world from the same start,
stand still for a few steps, and ask the event classifier which event the last frames show.

The simulator's rate checks the classifier (it should be near 1); "none" episodes (no prompt)
give the false-alarm rate.
"""

from __future__ import annotations

import numpy as np
import torch

from yume_env.train.eval.probes import Probes
from yume_env.train.eval.rollout import burn_in, init_states, lockstep
from yume_env.train.eval.simulate import NO_EVENT, event_prompt


def event_following(model, probes: Probes, events: tuple[str, ...] | None, per_event: int, steps: int, judge: int,
                    burn: int, seed: int, rng: np.random.Generator, generator: torch.Generator,
                    progress: bool = True) -> dict:
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
    out: dict = {"events": names, "episodes_per_event": int(per_event), "steps": int(steps), "judged_steps": int(judge),
                 "prompts": prompts}
    for side, frames in (("sim", roll.sim), ("model", roll.model)):
        judged = frames[:, -judge:]  # (N, judge, F, H, W, 3)
        lp = probes.event_log_probs(judged.reshape(-1, *judged.shape[-3:])).reshape(len(labels), -1, len(classes))
        pred = lp.mean(1).argmax(1)
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
    return out
