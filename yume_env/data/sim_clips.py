"""Training batches: clips rendered by the simulator on the fly, as resumable streams.

A stream's position is its whole state: batch `i` is a pure function of (seed, i, rank), so a
resumed run continues with exactly the batches it would have seen, and nothing is stored on disk.

`SimClipSource.render(n, steps, seed)` walks `n` simulator cameras for `steps` env steps under
`ActionPolicy` (actions held for several steps, as people hold keys, plus a beacon-seeking
share so that reaching the beacon is in the data; optionally a share of clips that end by coming
back to a view they saw, so that recalling it is in the data) with text events switched on at random steps,
and returns `Clips`: frames, actions, the event text of each step, beacon distances and reached
flags. It uses the torch `BatchSimulator` (all cameras in one batch, on the GPU when there is
one) on a GPU, and one numpy `Simulator` per camera on a CPU (faster there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from yume_env.actions import CAMERAS, KEYS, NUM_CAMERAS, NUM_KEYS, TURN_SPEED
from yume_env.sim.events import EVENTS


class IndexedStream:
    """`next()` returns `make_batch(i)` for i = 0, 1, 2, ...; the state is `i`."""

    def __init__(self, make_batch: Callable[[int], Any], start: int = 0):
        self.make_batch = make_batch
        self.index = int(start)

    def next(self) -> Any:
        batch = self.make_batch(self.index)
        self.index += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"index": self.index}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.index = int(state["index"])


def batch_seed(seed: int, index: int, rank: int = 0) -> int:
    """A distinct 63-bit seed per (run seed, batch index, rank) (splitmix-style mixing)."""
    x = int(seed) * 0x9E3779B97F4A7C15 + int(index) * 0xBF58476D1CE4E5B9 + int(rank) * 0x94D049BB133111EB + 1
    x &= (1 << 64) - 1
    x ^= x >> 31
    x = (x * 0xD6E8FEB86659FD93) & ((1 << 64) - 1)
    x ^= x >> 32
    return x & ((1 << 63) - 1)


# ---------------------------------------------------------------------------------------- policies


def _weights(names: tuple[str, ...], table: dict[str, float]) -> np.ndarray:
    w = np.array([table.get(n, 0.0) for n in names], dtype=np.float64)
    return w / w.sum()


@dataclass
class ActionPolicy:
    """Random actions held for a geometric number of steps (mean `mean_hold`).

    Forward walking dominates (as in city-walk videos) but every key and camera move appears, so
    the model sees each action's effect. `seek_fraction` of the cameras instead walk toward the
    beacon (turn until it is ahead, then W), which is what the reward head needs to see.
    """

    key_weights: dict[str, float] = field(
        default_factory=lambda: {
            "None": 0.14,
            "W": 0.30,
            "A": 0.08,
            "S": 0.08,
            "D": 0.08,
            "W+A": 0.08,
            "W+D": 0.08,
            "S+A": 0.08,
            "S+D": 0.08,
        }
    )
    camera_weights: dict[str, float] = field(
        default_factory=lambda: {
            "·": 0.36,
            "→": 0.14,
            "←": 0.14,
            "↑": 0.06,
            "↓": 0.06,
            "↑→": 0.06,
            "↑←": 0.06,
            "↓→": 0.06,
            "↓←": 0.06,
        }
    )
    mean_hold: float = 4.0
    seek_fraction: float = 0.15
    revisit_fraction: float = 0.0  # share of clips whose last steps come back to a view (`revisit_script`)

    def __post_init__(self):
        if not 0.0 <= self.revisit_fraction <= 1.0:
            raise ValueError(
                f"ActionPolicy.revisit_fraction is a share of clips in [0, 1], got {self.revisit_fraction}"
            )

    def sample(self, rng: np.random.Generator, n: int, steps: int) -> np.ndarray:
        """(n, steps, 2) int64 actions for the random walkers."""
        kw, cw = _weights(KEYS, self.key_weights), _weights(CAMERAS, self.camera_weights)
        out = np.zeros((n, steps, 2), dtype=np.int64)
        p_change = 1.0 / max(1.0, self.mean_hold)
        current = np.stack([rng.choice(NUM_KEYS, n, p=kw), rng.choice(NUM_CAMERAS, n, p=cw)], 1)
        for s in range(steps):
            change = rng.random(n) < p_change
            fresh = np.stack([rng.choice(NUM_KEYS, n, p=kw), rng.choice(NUM_CAMERAS, n, p=cw)], 1)
            current = np.where(change[:, None], fresh, current)
            out[:, s] = current
        return out

    def add_revisits(self, rng: np.random.Generator, actions: np.ndarray) -> np.ndarray:
        """Ends `revisit_fraction` of the clips (n, steps, 2) with a `revisit_script`, in place; the
        (n,) mask of those clips. Draws nothing at fraction 0 (runs without revisits stay as they were)."""
        n, steps = actions.shape[:2]
        if self.revisit_fraction <= 0:
            return np.zeros(n, dtype=bool)
        chosen = rng.random(n) < self.revisit_fraction
        for i in np.flatnonzero(chosen):
            script = revisit_script(rng, steps)
            actions[i, steps - len(script) :] = script
        return chosen


HALF_TURN = int(round(np.pi / TURN_SPEED))  # steps of one camera turn by 180 degrees
_W, _NONE = KEYS.index("W"), KEYS.index("None")
_STILL, _RIGHT, _LEFT = CAMERAS.index("·"), CAMERAS.index("→"), CAMERAS.index("←")


def revisit_script(rng: np.random.Generator, max_steps: int) -> np.ndarray:
    """(L <= max_steps, 2) actions that end where they started, looking the same way, so the last
    step's view is the one before the script (unless a wall stopped the walk): the two moves of
    the evaluation's memory measures (`yume_env.eval.loop_closure`).

    - a loop, where it fits (half the time): W x w, turn 180 degrees, W x w, turn another 180;
    - else turn away and back, standing: k turns one way, k the other (k in [2, 18]).
    """
    turn = int(rng.choice([_RIGHT, _LEFT]))
    if max_steps >= 2 * HALF_TURN and rng.random() < 0.5:
        walk = int(rng.integers(0, min(6, (max_steps - 2 * HALF_TURN) // 2) + 1))
        leg = [(_W, _STILL)] * walk + [(_NONE, turn)] * HALF_TURN
        return np.array(leg * 2, dtype=np.int64)
    if max_steps < 4:
        raise ValueError(f"a revisit needs clips of at least 4 steps, got {max_steps}")
    k = int(rng.integers(2, min(HALF_TURN, max_steps // 2) + 1))
    back = _LEFT if turn == _RIGHT else _RIGHT
    return np.array([(_NONE, turn)] * k + [(_NONE, back)] * k, dtype=np.int64)


_CAMERA_OF_TURN_TILT = np.full((3, 3), 0, dtype=np.int64)  # [turn + 1, tilt + 1] -> camera index
for _cam, (_yaw, _pitch) in enumerate(((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1))):
    _CAMERA_OF_TURN_TILT[_yaw + 1, _pitch + 1] = _cam


def seek_action(x, z, yaw, pitch, beacon):
    """(B, 2) actions that turn toward the beacon (B, 2: x, z) and walk to it, levelling the pitch.

    Works on numpy arrays and on torch tensors (returns the same kind)."""
    xp = torch if torch.is_tensor(x) else np
    bearing = xp.arctan2(beacon[:, 0] - x, beacon[:, 1] - z) - yaw
    bearing = xp.remainder(bearing + np.pi, 2 * np.pi) - np.pi
    turn = (
        (bearing > np.deg2rad(8)).astype(int) - (bearing < -np.deg2rad(8)).astype(int)
        if xp is np
        else (bearing > np.deg2rad(8)).long() - (bearing < -np.deg2rad(8)).long()
    )
    tilt = (
        (pitch < -np.deg2rad(4)).astype(int) - (pitch > np.deg2rad(4)).astype(int)
        if xp is np
        else (pitch < -np.deg2rad(4)).long() - (pitch > np.deg2rad(4)).long()
    )
    table = _CAMERA_OF_TURN_TILT if xp is np else torch.as_tensor(_CAMERA_OF_TURN_TILT, device=x.device)
    cams = table[turn + 1, tilt + 1]
    keys = xp.abs(bearing) < np.deg2rad(45)
    keys = keys.astype(np.int64) if xp is np else keys.long()  # W once roughly facing it
    return xp.stack([keys, cams], 1)


@dataclass
class EventPlan:
    """Which clips get an event, which event, and when it starts."""

    probability: float = 0.4  # share of clips with an event
    from_start: float = 0.5  # of those, share active from the first frame (else starting mid-clip)
    # relative weights of the events drawn, e.g. (("ghost", 4.0),); events not named weigh 1
    mix: tuple[tuple[str, float], ...] = ()
    # mid-clip events start before this step (None: anywhere in the clip); long clips read mostly at
    # their start keep their onsets where they are read
    latest_start: int | None = None

    def __post_init__(self):
        self.mix = tuple((str(name), float(w)) for name, w in dict(self.mix).items())
        unknown = [name for name, _ in self.mix if name not in EVENTS]
        if unknown:
            raise ValueError(f"event mix names {unknown}; the simulator's events are {list(EVENTS)}")
        if any(w < 0 for _, w in self.mix) or not any(self.weights()):
            raise ValueError(f"event mix weights must be >= 0 with one above 0, got {dict(self.mix)}")

    def weights(self) -> list[float]:
        """The draw weight of each event, in `EVENTS` order."""
        mix = dict(self.mix)
        return [mix.get(name, 1.0) for name in EVENTS]

    def sample(self, rng: np.random.Generator, n: int, steps: int) -> list[tuple[str, int]]:
        """Per clip (text, start step): start 0 = active from reset; -1 = no event."""
        names = list(EVENTS)
        w = np.asarray(self.weights())
        plan = []
        for _ in range(n):
            if rng.random() >= self.probability:
                plan.append(("", -1))
                continue
            # without a mix: the uniform draw the shipped runs were rendered with
            pick = rng.integers(len(names)) if not self.mix else rng.choice(len(names), p=w / w.sum())
            phrases = EVENTS[names[pick]]
            text = phrases[rng.integers(len(phrases))]
            last = steps if self.latest_start is None else max(2, min(steps, int(self.latest_start)))
            start = 0 if (rng.random() < self.from_start or steps < 2) else int(rng.integers(1, last))
            plan.append((text, start))
        return plan


# ---------------------------------------------------------------------------------------- clips


@dataclass
class Clips:
    """`n` clips of `steps` env steps; frame 0 is the start view, then `sub_frames` frames per step."""

    frames: torch.Tensor  # uint8 (n, 1 + steps * sub_frames, H, W, 3)
    actions: torch.Tensor  # int64 (n, steps, A): one integer per component of the world's actions
    events: list[list[str]]  # the event text active during each step (the chunk's caption event)
    distance: torch.Tensor | None  # float32 (n, steps): beacon distance after each step (the simulator)
    reached: torch.Tensor | None  # bool (n, steps): within the reach radius after each step (the simulator)
    sub_frames: int
    # bool (n, steps * sub_frames, H, W): the ghost's pixels in frames 1.. (frame 0 is never a
    # target); rendered on request (SimClipSource(ghost_masks=True)), else None
    ghost: torch.Tensor | None = None
    rewards: torch.Tensor | None = None  # float32 (n, steps): the recorded env's reward of each step
    terminated: torch.Tensor | None = None  # bool (n, steps): the recorded episode ended at that step

    @property
    def steps(self) -> int:
        return int(self.actions.shape[1])

    def to(self, device) -> "Clips":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Clips(
            move(self.frames),
            move(self.actions),
            self.events,
            move(self.distance),
            move(self.reached),
            self.sub_frames,
            move(self.ghost),
            move(self.rewards),
            move(self.terminated),
        )


class SimClipSource:
    """Renders `Clips` with the simulator (see the module docstring)."""

    def __init__(
        self,
        height: int = 64,
        width: int = 64,
        sub_frames: int = 2,
        device: str | torch.device = "cpu",
        policy: ActionPolicy | None = None,
        events: EventPlan | None = None,
        backend: str = "auto",
        ghost_masks: bool = False,
    ):
        self.height, self.width, self.sub_frames = int(height), int(width), int(sub_frames)
        self.ghost_masks = bool(ghost_masks)  # also render Clips.ghost
        self.device = torch.device(device)
        self.policy = policy or ActionPolicy()
        self.events = events or EventPlan()
        if backend == "auto":  # the torch renderer pays off on a GPU; numpy is faster on a CPU
            backend = "batch" if (self.device.type == "cuda" and _batch_simulator() is not None) else "numpy"
        if backend not in ("batch", "numpy"):
            raise ValueError(f"backend must be 'auto', 'batch' or 'numpy', got {backend!r}")
        if backend == "batch" and _batch_simulator() is None:
            raise ImportError("backend='batch' needs yume_env.sim.batch.BatchSimulator, which is not available")
        self.backend = backend
        self._sims: list = []

    def replace(
        self, *, policy: ActionPolicy | None = None, events: EventPlan | None = None, ghost_masks: bool | None = None
    ) -> "SimClipSource":
        """A source like this one with another action policy, event plan or ghost-mask setting
        (this one is unchanged)."""
        return SimClipSource(
            self.height,
            self.width,
            self.sub_frames,
            self.device,
            policy or self.policy,
            events or self.events,
            self.backend,
            self.ghost_masks if ghost_masks is None else ghost_masks,
        )

    def render(self, n: int, steps: int, seed: int) -> Clips:
        rng = np.random.default_rng(seed)
        actions = self.policy.sample(rng, n, steps)
        seekers = rng.random(n) < self.policy.seek_fraction
        seekers &= ~self.policy.add_revisits(rng, actions)  # a seeker would steer off the script
        plan = self.events.sample(rng, n, steps)
        world_seeds = rng.integers(0, 2**31 - 1, size=n)
        if self.backend == "batch":
            return self._render_batch(actions, seekers, plan, world_seeds)
        return self._render_numpy(actions, seekers, plan, world_seeds)

    # one numpy Simulator per camera (CPU; used where the batch renderer is absent)
    def _render_numpy(self, actions, seekers, plan, world_seeds) -> Clips:
        from yume_env.sim import Simulator

        n, steps = actions.shape[:2]
        while len(self._sims) < n:
            self._sims.append(Simulator(self.height, self.width, self.sub_frames, seed=0))
        T = 1 + steps * self.sub_frames
        frames = np.empty((n, T, self.height, self.width, 3), dtype=np.uint8)
        dist = np.zeros((n, steps), dtype=np.float32)
        reached = np.zeros((n, steps), dtype=bool)
        events = [[""] * steps for _ in range(n)]
        ghost = np.zeros((n, T - 1, self.height, self.width), dtype=bool) if self.ghost_masks else None
        for i in range(n):
            sim = self._sims[i]
            text, start = plan[i]
            frames[i, 0] = sim.reset(seed=int(world_seeds[i]), event=text if start == 0 else "")
            for s in range(steps):
                if start > 0 and s == start:
                    sim.set_event(text)
                if seekers[i]:
                    actions[i, s] = seek_action(sim.x, sim.z, sim.yaw, sim.pitch, sim.beacon[:, :2])[0]
                out = sim.step(actions[i, s], ghost_mask=self.ghost_masks)
                frames[i, 1 + s * self.sub_frames : 1 + (s + 1) * self.sub_frames] = out.frames
                if ghost is not None:
                    ghost[i, s * self.sub_frames : (s + 1) * self.sub_frames] = out.ghost_mask
                dist[i, s] = out.info["beacon_distance"]
                reached[i, s] = out.info["beacon_distance"] <= sim.reach_radius
                events[i][s] = sim.event
        return Clips(
            torch.from_numpy(frames).to(self.device),
            torch.from_numpy(actions).to(self.device),
            events,
            torch.from_numpy(dist).to(self.device),
            torch.from_numpy(reached).to(self.device),
            self.sub_frames,
            None if ghost is None else torch.from_numpy(ghost).to(self.device),
        )

    # all cameras in one torch BatchSimulator (on self.device: the GPU when training there)
    def _render_batch(self, actions, seekers, plan, world_seeds) -> Clips:
        BatchSimulator = _batch_simulator()
        n, steps = actions.shape[:2]
        sim = self._sims[0] if self._sims and self._sims[0].batch == n else None
        if sim is None:
            sim = BatchSimulator(n, self.height, self.width, self.sub_frames, device=self.device, seed=0)
            self._sims = [sim]
        sim.rng = np.random.default_rng(int(world_seeds[0]))  # the batch's worlds follow from its seed
        first = sim.reset(events=[text if start == 0 else "" for text, start in plan])
        acts = torch.as_tensor(actions, device=self.device)
        seek = torch.as_tensor(seekers, device=self.device)
        frames = [first[:, None]]
        dist, reached, events, ghost = [], [], [], []
        for s in range(steps):
            starting = [i for i, (text, start) in enumerate(plan) if start == s and s > 0]
            if starting:
                sim.set_event([plan[i][0] for i in starting], starting)
            if bool(seek.any()):
                auto = seek_action(sim.x, sim.z, sim.yaw, sim.pitch, sim.beacon)
                acts[:, s] = torch.where(seek[:, None], auto, acts[:, s])
            out = sim.step(acts[:, s], ghost_mask=self.ghost_masks)
            frames.append(out.frames)
            ghost.append(out.ghost_mask)
            dist.append(out.beacon_distance)
            reached.append(out.beacon_distance <= sim.reach_radius)
            events.append(out.events)
        return Clips(
            torch.cat(frames, 1),
            acts,
            [[events[s][i] for s in range(steps)] for i in range(n)],
            torch.stack(dist, 1).float(),
            torch.stack(reached, 1),
            self.sub_frames,
            torch.cat(ghost, 1) if self.ghost_masks else None,
        )


def _batch_simulator():
    try:
        from yume_env.sim.batch import BatchSimulator
    except ImportError:
        return None
    return BatchSimulator


class ClipPool:
    """Renders clips in large pools and serves each pool for several batches.

    The torch renderer costs about the same per call for 16 or 256 cameras on a GPU (it is bound
    by kernel launches), so rendering `pool_clips` at once and drawing `batch` clips from the pool
    for `pool_clips * reuse / batch` batches multiplies throughput. Still a pure function of the
    batch index: batch i reads pool i // batches_per_pool, rebuilt on demand after a resume.
    `encode(clips) -> tensor` (e.g. VAE latents) runs once per pool.
    """

    def __init__(
        self,
        source: SimClipSource,
        pool_clips: int,
        steps: int,
        batch: int,
        reuse: float,
        seed: int,
        rank: int = 0,
        encode: Callable[[Clips], Any] | None = None,
    ):
        if batch > pool_clips:
            raise ValueError(f"batch ({batch}) must not exceed pool_clips ({pool_clips})")
        self.source, self.pool_clips, self.steps, self.batch = source, int(pool_clips), int(steps), int(batch)
        self.batches_per_pool = max(1, int(round(pool_clips * reuse / batch)))
        self.seed, self.rank, self.encode = int(seed), int(rank), encode
        self._id: int | None = None
        self._pool: tuple[Clips, Any] | None = None

    def pool(self, pool_id: int) -> tuple[Clips, Any]:
        if self._id != pool_id:
            clips = self.source.render(self.pool_clips, self.steps, batch_seed(self.seed, pool_id, self.rank))
            self._pool = (clips, self.encode(clips) if self.encode is not None else None)
            self._id = pool_id
        return self._pool

    def draw(self, index: int) -> tuple[Clips, Any, torch.Tensor, torch.Generator]:
        """Batch `index`: (pool clips, pool encodings, the drawn clip indices, a generator seeded for it)."""
        clips, enc = self.pool(index // self.batches_per_pool)
        gen = torch.Generator(device=self.source.device).manual_seed(batch_seed(self.seed + 1, index, self.rank))
        pick = torch.randperm(self.pool_clips, generator=gen, device=gen.device)[: self.batch]
        return clips, enc, pick, gen


def select(clips: Clips, pick: torch.Tensor) -> Clips:
    """The clips at indices `pick`."""
    idx = pick.tolist()
    take = lambda t: None if t is None else t[pick]  # noqa: E731
    return Clips(
        clips.frames[pick],
        clips.actions[pick],
        [clips.events[i] for i in idx],
        take(clips.distance),
        take(clips.reached),
        clips.sub_frames,
        take(clips.ghost),
        take(clips.rewards),
        take(clips.terminated),
    )


class FolderClipSource:
    """`Clips` from a Sekai-layout folder (`yume_env.data.SekaiClipDataset`), the same interface as
    `SimClipSource.render` for the vae / pretrain / self-forcing stages.

    Windows of 1 + steps * sub_frames frames; the action of step s is the quantized action between
    its first frames; the event applies from the step whose frames show it. Folders carry no
    beacon labels, so distances are NaN and `reached` False (the reward stage needs the simulator).
    """

    def __init__(self, root: str, height: int, width: int, sub_frames: int = 2, device: str | torch.device = "cpu"):
        self.root, self.height, self.width, self.sub_frames = root, int(height), int(width), int(sub_frames)
        self.device = torch.device(device)
        self._datasets: dict[int, Any] = {}

    def dataset(self, steps: int):
        if steps not in self._datasets:
            from yume_env.data.dataset import SekaiClipDataset

            window = 1 + steps * self.sub_frames
            ds = SekaiClipDataset(self.root, window=window, stride=self.sub_frames, verify=False)
            if len(ds) == 0:
                raise ValueError(
                    f"{self.root} has no clip of at least {window} frames "
                    f"({steps} steps x {self.sub_frames} frames + 1); use shorter clips or more data"
                )
            self._datasets[steps] = ds
        return self._datasets[steps]

    def render(self, n: int, steps: int, seed: int) -> Clips:
        ds = self.dataset(steps)
        rng = np.random.default_rng(seed)
        items = [ds[int(i)] for i in rng.integers(0, len(ds), size=n)]
        frames = torch.stack([it["frames"] for it in items])
        if tuple(frames.shape[2:4]) != (self.height, self.width):
            raise ValueError(
                f"{self.root}: frames are {tuple(frames.shape[2:4])}, the model takes "
                f"({self.height}, {self.width}); regenerate the data at the model's resolution"
            )
        F_ = self.sub_frames
        actions = torch.stack([it["actions"][::F_][:steps] for it in items]).long()
        events = []
        for it in items:
            start = it["event_start"]
            events.append([it["event"] if (start >= 0 and start <= 1 + s * F_) else "" for s in range(steps)])
        return Clips(
            frames.to(self.device),
            actions.to(self.device),
            events,
            torch.full((n, steps), float("nan"), device=self.device),
            torch.zeros(n, steps, dtype=torch.bool, device=self.device),
            F_,
        )
