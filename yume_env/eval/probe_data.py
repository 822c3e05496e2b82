"""Simulator rollouts as training data for the probes, rendered B worlds at a time
(`yume_env.sim.batch.BatchSimulator`, CPU or GPU).

Each episode: a short random walk, then one event class drawn uniformly ("none" included) is
prompted, the camera stands still for `calm` steps (as the evaluation's event test does), then a
sticky random walk. Yields, per step, the frame before and the last frame after the step with the
effective action (read from the poses); and event frames labelled with the class: the calm steps from
`event_warmup` on (the event fades in), and every `event_every`-th later step except for events that
can leave the view (the ghost stands at one place).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from yume_env.atomic import atomic_write
from yume_env.eval.labels import effective_actions
from yume_env.eval.simulate import NO_EVENT, event_classes, event_prompt, random_actions

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

    def save(self, path: str | Path) -> Path:
        """Writes the arrays to an .npz (atomically), so training runs can share one rendering."""
        fields = {k: v for k, v in self.__dict__.items() if k != "classes"}

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # a file object: numpy appends no ".npz" to the name
                np.savez(fh, classes=np.asarray(self.classes), **fields)

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path) -> "ProbeData":
        try:
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError) as exc:
            raise ValueError(f"{path} is not a readable probe-data .npz ({exc}); delete it to render again") from exc
        classes = [str(c) for c in d.pop("classes")]
        return cls(**d, classes=classes)

    def split(self, holdout: float) -> tuple["ProbeData", "ProbeData"]:
        """(train, held-out) by whole episodes: the last `holdout` fraction of episodes is held out."""
        n_ep = int(max(self.episode.max(initial=0), self.event_episode.max(initial=0))) + 1
        cut = n_ep - max(1, int(round(n_ep * holdout)))
        a, e = self.episode < cut, self.event_episode < cut
        return self._subset(a, e), self._subset(~a, ~e)

    def _subset(self, a: np.ndarray, e: np.ndarray) -> "ProbeData":
        return ProbeData(
            self.before[a],
            self.after[a],
            self.actions[a],
            self.episode[a],
            self.event_frames[e],
            self.event_labels[e],
            self.event_episode[e],
            self.classes,
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
    batch: int = 32,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> ProbeData:
    """Roll `episodes` simulator episodes of `steps` random steps, `batch` worlds at a time."""
    from yume_env.sim.batch import BatchSimulator

    classes = event_classes()
    rng = np.random.default_rng(seed)
    before, after, actions, episode = [], [], [], []
    ev_frames, ev_labels, ev_episode = [], [], []
    bar = tqdm(total=episodes * steps, desc="simulator steps", disable=not progress)
    for first in range(0, episodes, batch):
        n = min(batch, episodes - first)
        sim = BatchSimulator(n, size, size, sub_frames, device=device, seed=seed + first)
        frame = sim.reset().cpu().numpy()
        labels = rng.integers(len(classes), size=n)
        pre = rng.integers(0, max(1, steps // 4), size=n)
        acts = np.stack([random_actions(rng, steps) for _ in range(n)], axis=1)  # (steps, n, 2)
        for b in range(n):
            acts[pre[b] : pre[b] + calm, b] = 0  # None, ·
        for t in range(steps):
            for b in np.flatnonzero((pre == t) & (labels != classes.index(NO_EVENT))):
                sim.set_event(event_prompt(classes[labels[b]], rng), indices=[b])
            pose = sim.poses.cpu().numpy()
            out = sim.step(acts[t])
            last = out.frames[:, -1].cpu().numpy()
            before.append(frame)
            after.append(last)
            actions.append(effective_actions(pose, out.poses[:, -1].cpu().numpy()))
            episode.append(first + np.arange(n))
            since = t - pre
            keep = ((since >= event_warmup) & (since < calm)) | (
                (since >= calm)
                & ((since - calm) % event_every == 0)
                & ~np.isin([classes[i] for i in labels], MOVABLE_EVENTS)
            )
            ev_frames.append(last[keep])
            ev_labels.append(labels[keep])
            ev_episode.append(first + np.flatnonzero(keep))
            frame = last
            bar.update(n)
    bar.close()
    cat = lambda xs, dt=None: np.concatenate(xs).astype(dt) if dt else np.concatenate(xs)  # noqa: E731
    return ProbeData(
        cat(before),
        cat(after),
        cat(actions, np.int64),
        cat(episode, np.int64),
        cat(ev_frames),
        cat(ev_labels, np.int64),
        cat(ev_episode, np.int64),
        classes,
    )
