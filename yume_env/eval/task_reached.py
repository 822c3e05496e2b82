"""The task head on generated frames: does it say "reached" when, and only when, the simulator has
the camera at the beacon?

Worlds and simulators start from the same burn-in (steps of the beacon seeker of the training
data, `sim_clips.seek_action`: turn toward the beacon, walk once it is roughly ahead) and take the
same actions. Half the worlds keep seeking, chosen from the simulator's state, so they reach the
beacon and then hover around it (the head's positives); the other half walk with random sticky
actions, so they rarely reach it while their generated frames drift and soften (where a head that
reads blur as arrival calls it). After each step the truth is the simulator's: beacon distance <=
its reach radius (the label the head was trained on). The head (`WorldModel.predict_task`) reads
the world's generated latents:

- `head`: reached_logit > 0, the head alone;
- `env_rule`: reached_logit > 0 and a predicted distance under `ARRIVE_DISTANCE` (3 m), the two
  conditions the env's beacon reward also asks for (it further bounds arrival by how far the
  camera walked, which this measure does not model).

Precision: of the steps the head calls reached, the share where the simulator is there. Recall: of
the steps where the simulator is there, the share the head calls reached. `early`: episodes where
the head calls reached before the simulator first gets there (what ends a play session in a blur).
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from yume_env.eval.rollout import BurnIn, init_states
from yume_env.eval.simulate import make_simulator, random_actions

ARRIVE_DISTANCE = 3.0  # metres, yume_env.env.rewards.BeaconReward's default arrive_distance


def _seek(sim) -> np.ndarray:
    """(2,) the beacon seeker's action for one simulator's current state."""
    from yume_env.data.sim_clips import seek_action

    return np.asarray(seek_action(sim.x, sim.z, sim.yaw, sim.pitch, sim.beacon[:, :2])[0], dtype=np.int64)


def seek_burn_in(model, seeds: list[int], steps: int) -> BurnIn:
    """One simulator per seed, reset and walked `steps` seeker steps: the worlds' start."""
    h, w = model.frame_size
    sims, frames, actions = [], [], []
    for seed in seeds:
        sim = make_simulator(h, w, model.frames_per_step, seed)
        seq, acts = [sim.reset(seed)[None]], []
        for _ in range(steps):
            acts.append(_seek(sim))
            seq.append(sim.step(acts[-1]).frames)
        sims.append(sim)
        frames.append(np.concatenate(seq))
        actions.append(np.array(acts, dtype=np.int64).reshape(steps, 2))
    return BurnIn(sims, np.stack(frames), np.stack(actions))


def _rates(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """Precision, recall (None where undefined) and the counts of boolean (B, S) arrays."""
    tp = int((predicted & truth).sum())
    called, actual = int(predicted.sum()), int(truth.sum())
    first_truth = np.where(truth.any(1), truth.argmax(1), truth.shape[1])
    first_called = np.where(predicted.any(1), predicted.argmax(1), truth.shape[1])
    return {
        "precision": tp / called if called else None,
        "recall": tp / actual if actual else None,
        "called": called,
        "true_positives": tp,
        "episodes_early": int((first_called < first_truth).sum()),
    }


@torch.no_grad()
def task_reached(
    model,
    episodes: int,
    steps: int,
    burn: int,
    seed: int,
    rng: np.random.Generator,
    generator: torch.Generator,
    progress: bool = True,
) -> dict | None:
    """Precision and recall of the task head's "reached" on `episodes` rollouts of `steps` steps
    after `burn` seeker steps, the first half seeking, the rest walking at random (actions from
    `rng`); None when the model has no task head."""
    if getattr(model, "task_head", None) is None:
        return None
    seeds = [seed + i for i in range(episodes)]
    seeking = np.arange(episodes) < (episodes + 1) // 2
    walks = np.stack([random_actions(rng, steps) for _ in seeds])
    start = seek_burn_in(model, seeds, burn)
    states = init_states(model, start)
    truth = np.zeros((episodes, steps), dtype=bool)
    distance, logit, predicted_distance = (np.zeros((episodes, steps)) for _ in range(3))
    for t in tqdm(range(steps), desc="task head: reached", disable=not progress):
        actions = np.stack([_seek(sim) if seeking[b] else walks[b, t] for b, sim in enumerate(start.sims)])
        for b, sim in enumerate(start.sims):
            distance[b, t] = sim.step(actions[b]).info["beacon_distance"]
            truth[b, t] = distance[b, t] <= sim.reach_radius
        pred = model.predict_task(model.step(states, actions, generator).latents)
        logit[:, t] = pred["reached_logit"].float().cpu().numpy()
        predicted_distance[:, t] = pred["distance"].float().cpu().numpy()
    rules = {"head": logit > 0, "env_rule": (logit > 0) & (predicted_distance < ARRIVE_DISTANCE)}
    return {
        "episodes": int(episodes),
        "seeking": int(seeking.sum()),
        "walking": int((~seeking).sum()),
        "steps": int(steps),
        "burn_in": int(burn),
        "seeds": seeds,
        "steps_reached": int(truth.sum()),
        "episodes_reached": int(truth.any(1).sum()),
        **{name: _rates(called, truth) for name, called in rules.items()},
        "by_policy": {
            policy: {name: _rates(called[rows], truth[rows]) for name, called in rules.items()}
            for policy, rows in (("seek", seeking), ("walk", ~seeking))
        },
        "distance_mae_m": float(np.abs(predicted_distance - distance).mean()),
        "arrive_distance_m": ARRIVE_DISTANCE,
    }
