"""Simulator rollouts as training data for the probes.

Each episode: a fresh seeded simulator, a short random walk, then one event class drawn uniformly
("none" included) is prompted, the camera stands still for `calm` steps (as the evaluation's event
test does), then a sticky random walk. Yields, per step, the frame before and the last frame after the
step with the effective action (read from the poses); and event frames labelled with the class: the
calm steps from `event_warmup` on (the event fades in), and every `event_every`-th later step except
for events that can leave the view (the ghost stands at one place).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from yume_env.train.eval.labels import effective_actions
from yume_env.train.eval.simulate import NO_EVENT, event_classes, event_prompt, make_simulator, random_actions


MOVABLE_EVENTS = ("ghost",)  # drawn at one place in the world: out of view once the camera turns away


@dataclass
class ProbeData:
    before: np.ndarray  # (N, H, W, 3) uint8
    after: np.ndarray  # (N, H, W, 3) uint8
    actions: np.ndarray  # (N, 2) int64 effective (key, camera)
    episode: np.ndarray  # (N,) int64 episode index, for splits that keep episodes apart
    event_frames: np.ndarray  # (M, H, W, 3) uint8
    event_labels: np.ndarray  # (M,) int64 index into `classes`
    event_episode: np.ndarray  # (M,)
    classes: list[str]

    def split(self, holdout: float) -> tuple["ProbeData", "ProbeData"]:
        """(train, held-out) by whole episodes: the last `holdout` fraction of episodes is held out."""
        n_ep = int(max(self.episode.max(initial=0), self.event_episode.max(initial=0))) + 1
        cut = n_ep - max(1, int(round(n_ep * holdout)))
        a, e = self.episode < cut, self.event_episode < cut
        return self._subset(a, e), self._subset(~a, ~e)

    def _subset(self, a: np.ndarray, e: np.ndarray) -> "ProbeData":
        return ProbeData(
            self.before[a], self.after[a], self.actions[a], self.episode[a],
            self.event_frames[e], self.event_labels[e], self.event_episode[e], self.classes,
        )


def collect_probe_data(
    episodes: int,
    steps: int,
    seed: int,
    size: int = 64,
    sub_frames: int = 2,
    event_warmup: int = 2,
    event_every: int = 2,
    calm: int = 4,
    progress: bool = True,
) -> ProbeData:
    """Roll `episodes` simulator episodes of `steps` random steps (seeds seed, seed+1, ...)."""
    classes = event_classes()
    rng = np.random.default_rng(seed)
    before, after, actions, episode = [], [], [], []
    ev_frames, ev_labels, ev_episode = [], [], []
    sim = make_simulator(size, size, sub_frames, seed)
    for ep in tqdm(range(episodes), desc="simulator episodes", disable=not progress):
        frame = sim.reset(seed + ep)
        label = int(rng.integers(len(classes)))
        pre = int(rng.integers(0, max(1, steps // 4)))
        acts = random_actions(rng, steps)
        acts[pre : pre + calm] = 0  # None, ·
        for t, action in enumerate(acts):
            if t == pre and classes[label] != NO_EVENT:
                sim.set_event(event_prompt(classes[label], rng))
            pose = np.array(sim.pose, dtype=np.float64)
            out = sim.step(action)
            last = out.frames[-1]
            before.append(frame)
            after.append(last)
            actions.append(effective_actions(pose[None], out.poses[-1:])[0])
            episode.append(ep)
            since = t - pre
            in_calm = event_warmup <= since < calm
            later = since >= calm and (since - calm) % event_every == 0 and classes[label] not in MOVABLE_EVENTS
            if in_calm or later:
                ev_frames.append(last)
                ev_labels.append(label)
                ev_episode.append(ep)
            frame = last
    return ProbeData(
        np.stack(before), np.stack(after), np.stack(actions), np.asarray(episode, dtype=np.int64),
        np.stack(ev_frames), np.asarray(ev_labels, dtype=np.int64), np.asarray(ev_episode, dtype=np.int64), classes,
    )
