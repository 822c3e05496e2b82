"""Recorded episodes in shards that stream: the format `yume-env data record` writes and training
reads (`ShardWriter`, `read_index`, `ShardReader`, `ShardDataset`).

A dataset folder holds `index.json` (what is in it: env, action space, frame size, fps, the shards
and their episodes; the only list readers trust) and `shard-NNNNNN.safetensors` files of whole
episodes: per episode `ep000012/frames` uint8 (T+1, S, S, 3), `actions` int64 (T, A) (zero-based,
A = 1 for Discrete, len(nvec) for MultiDiscrete), `rewards` float32 (T,), `terminated` and
`truncated` bool (T,). Shards are read lazily (memory-mapped: a window reads only its frames).
Writing is crash-safe: a shard is written under a hidden temp name and renamed, then the index is
replaced atomically; `ShardWriter` removes what a killed writer left when it reopens the folder.
Episode e is held out (`split_episodes`) when a fixed hash of e falls below `heldout_fraction`, so
recording more episodes never moves one between the splits. The format in full, with the index's
fields: docs/your_own_world.md.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from yume_env.atomic import atomic_write

FORMAT = "yume-env-shards"
VERSION = 1
INDEX = "index.json"
SHARD_BYTES = 32 * 2**20  # a shard is closed once its episodes hold this many bytes
FIELDS = ("frames", "actions", "rewards", "terminated", "truncated")
_HANDLES = 8  # open shard files kept per process


class ShardError(ValueError):
    """A shard dataset's index or shard is missing, damaged or inconsistent; the message names the file."""


# -- the index --------------------------------------------------------------------------------
def read_index(root: str | os.PathLike) -> dict:
    """The parsed, checked `index.json` of a shard dataset folder."""
    root = Path(root)
    path = root / INDEX
    if not root.is_dir():
        raise FileNotFoundError(
            f"shard dataset folder {root} does not exist; record one with "
            f"`yume-env data record --env ID --episodes N --size S --out {root}`"
        )
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: missing; {root} is not a shard dataset (record one with `yume-env data record ... --out {root}`)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ShardError(f"{path}: damaged index ({e}); delete the folder and record again") from None
    check_index(index, path)
    return index


def check_index(index, path) -> None:
    """Raises ShardError naming `path` when `index` is not a well-formed index of this format."""
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise ShardError(f'{path}: not a {FORMAT} index (no "format": "{FORMAT}")')
    if index.get("version") != VERSION:
        raise ShardError(
            f"{path}: format version {index.get('version')!r}, this yume-env reads version {VERSION}; "
            f"record the data again with this version"
        )
    missing = [k for k in ("env_id", "action_space", "frame_size", "episodes", "steps", "shards") if k not in index]
    if missing:
        raise ShardError(f"{path}: damaged index, missing {missing}")
    check_action_space(index["action_space"], path)
    try:
        first = 0
        for s in index["shards"]:
            if (
                s["first_episode"] != first
                or len(s["episode_steps"]) != s["episodes"]
                or sum(s["episode_steps"]) != s["steps"]
            ):
                raise ShardError(f"{path}: damaged index, shard {s['file']} has inconsistent episode counts")
            first += s["episodes"]
        if first != index["episodes"] or sum(s["steps"] for s in index["shards"]) != index["steps"]:
            raise ShardError(f"{path}: damaged index, the shards' episode or step counts do not add up")
    except (KeyError, TypeError) as e:
        raise ShardError(f"{path}: damaged index, bad shard entry ({type(e).__name__}: {e})") from None


def check_action_space(spec, where="action_space") -> None:
    """Raises ShardError when `spec` is not {"type": "discrete"|"multi_discrete", "nvec": [...], ...}."""
    ok = isinstance(spec, dict) and spec.get("type") in ("discrete", "multi_discrete")
    nvec = spec.get("nvec") if ok else None
    ok = ok and isinstance(nvec, list) and len(nvec) >= 1 and all(isinstance(n, int) and n >= 1 for n in nvec)
    ok = ok and (spec["type"] == "multi_discrete" or len(nvec) == 1)
    ok = ok and len(spec.get("start", nvec)) == len(nvec)
    if not ok:
        raise ShardError(
            f'{where}: bad action space {spec!r}; expected {{"type": "discrete" | "multi_discrete", '
            f'"nvec": [n, ...]}} (one n for discrete)'
        )


def make_action_space(spec: dict):
    """The Gymnasium space of an index's action space: Discrete(n, start) or MultiDiscrete(nvec, start=...)."""
    from gymnasium import spaces

    check_action_space(spec)
    start = spec.get("start", [0] * len(spec["nvec"]))
    if spec["type"] == "discrete":
        return spaces.Discrete(spec["nvec"][0], start=start[0])
    return spaces.MultiDiscrete(np.array(spec["nvec"], dtype=np.int64), start=np.array(start, dtype=np.int64))


def shard_name(number: int) -> str:
    return f"shard-{number:06d}.safetensors"


def episode_key(episode: int, field: str) -> str:
    return f"ep{episode:06d}/{field}"


# -- writing ----------------------------------------------------------------------------------
class ShardWriter:
    """Appends whole episodes to a shard dataset folder, creating it or continuing it.

    Episodes wait in memory until they hold `shard_bytes`, then go to disk as one shard (and on
    `flush()` / `close()` / leaving a `with` block). Reopening a folder keeps the episodes its index
    lists, removes temp files and unlisted shards of a killed run (`self.cleaned`), and refuses a
    folder recorded from another env, frame size or action space.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        env_id: str,
        action_space: dict,
        frame_size: int,
        fps: float | None = None,
        frames_from: str | None = None,
        source: dict | None = None,
        shard_bytes: int = SHARD_BYTES,
    ):
        check_action_space(action_space)
        self.root, self.shard_bytes, self.source = Path(root), int(shard_bytes), dict(source or {})
        self._pending: list[dict] = []
        self.nvec = np.array(action_space["nvec"], dtype=np.int64)
        if (self.root / INDEX).exists():
            self.index = read_index(self.root)
            self._check_same(env_id, action_space, frame_size)
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            self.index = {
                "format": FORMAT,
                "version": VERSION,
                "env_id": env_id,
                "action_space": action_space,
                "frame_size": int(frame_size),
                "frames_from": frames_from,
                "fps": None if fps is None else float(fps),
                "episodes": 0,
                "steps": 0,
                "shards": [],
            }
        self.cleaned = self._clean()
        self._write_index()

    def _check_same(self, env_id: str, action_space: dict, frame_size: int) -> None:
        have = self.index
        for what, old, new in (
            ("env", have["env_id"], env_id),
            ("frame size", have["frame_size"], int(frame_size)),
            ("action space", have["action_space"], action_space),
        ):
            if old != new:
                raise ShardError(
                    f"{self.root / INDEX}: this folder holds {what} {old!r}, not {new!r}; "
                    f"record into another --out folder (or delete this one)"
                )

    def _clean(self) -> list[str]:
        """Removes what a killed run left: temp shards and shards the index does not list."""
        listed = {s["file"] for s in self.index["shards"]}
        cleaned = []
        for p in sorted(self.root.iterdir()):
            temp = p.name.startswith((".shard-", f".{Path(INDEX).stem}.")) and ".tmp" in p.name
            stray = p.name.startswith("shard-") and p.suffix == ".safetensors" and p.name not in listed
            if (temp or stray) and p.is_file():
                p.unlink()
                cleaned.append(p.name)
        return cleaned

    @property
    def episodes(self) -> int:
        """Episodes in the folder, those still waiting in memory included."""
        return self.index["episodes"] + len(self._pending)

    def add_episode(self, frames, actions, rewards, terminated, truncated, seed: int | None = None) -> int:
        """Queues one episode (checked against the format); returns its episode index."""
        ep = self._check_episode(frames, actions, rewards, terminated, truncated)
        ep["seed"] = seed
        self._pending.append(ep)
        if sum(e["frames"].nbytes for e in self._pending) >= self.shard_bytes:
            self.flush()
        return self.episodes - 1

    def _check_episode(self, frames, actions, rewards, terminated, truncated) -> dict:
        S, A = self.index["frame_size"], len(self.nvec)
        frames = np.ascontiguousarray(frames)
        T = len(frames) - 1
        if frames.dtype != np.uint8 or frames.shape[1:] != (S, S, 3) or T < 1:
            raise ValueError(
                f"frames must be uint8 (T+1, {S}, {S}, 3) with T >= 1 steps, got {frames.dtype} {frames.shape}"
            )
        actions = np.ascontiguousarray(np.asarray(actions, dtype=np.int64).reshape(T, A))
        if ((actions < 0) | (actions >= self.nvec)).any():
            raise ValueError(f"actions must be zero-based, each column in [0, nvec) with nvec {self.nvec.tolist()}")
        ep = {"frames": frames, "actions": actions}
        for name, arr, dtype in (
            ("rewards", rewards, np.float32),
            ("terminated", terminated, np.bool_),
            ("truncated", truncated, np.bool_),
        ):
            arr = np.ascontiguousarray(np.asarray(arr, dtype=dtype))
            if arr.shape != (T,):
                raise ValueError(f"{name} must have shape ({T},) (one per step), got {arr.shape}")
            ep[name] = arr
        return ep

    def flush(self) -> None:
        """Writes the waiting episodes as one shard, then the index."""
        if not self._pending:
            return
        from safetensors.numpy import save

        first = self.index["episodes"]
        tensors = {episode_key(first + i, f): ep[f] for i, ep in enumerate(self._pending) for f in FIELDS}
        name = shard_name(len(self.index["shards"]))
        data = save(tensors)  # bytes, written by us so the file gets the usual permissions
        atomic_write(self.root / name, lambda tmp: Path(tmp).write_bytes(data))
        steps = [len(ep["actions"]) for ep in self._pending]
        self.index["shards"].append(
            {
                "file": name,
                "first_episode": first,
                "episodes": len(steps),
                "steps": sum(steps),
                "episode_steps": steps,
                "episode_returns": [float(ep["rewards"].sum()) for ep in self._pending],
                "seeds": [ep["seed"] for ep in self._pending],
                "source": self.source,
            }
        )
        self.index["episodes"] += len(steps)
        self.index["steps"] += sum(steps)
        self._pending = []
        self._write_index()

    def _write_index(self) -> None:
        text = json.dumps(self.index, indent=1, ensure_ascii=False)
        atomic_write(self.root / INDEX, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()  # waiting episodes are whole: keep them even when the recording stops on an error


# -- reading ----------------------------------------------------------------------------------
def split_episodes(num_episodes: int, heldout_fraction: float = 0.1) -> tuple[list[int], list[int]]:
    """(train, heldout) episode indices: `e` is held out when `episode_hash(e) < heldout_fraction`;
    with two or more episodes and none below it, the one with the smallest hash is held out."""
    if not 0.0 <= heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}")
    u = [episode_hash(e) for e in range(num_episodes)]
    held = {e for e in range(num_episodes) if u[e] < heldout_fraction}
    if not held and heldout_fraction > 0 and num_episodes >= 2:
        held = {min(range(num_episodes), key=u.__getitem__)}
    return [e for e in range(num_episodes) if e not in held], sorted(held)


def episode_hash(episode: int) -> float:
    """A fixed pseudo-random number in [0, 1) per episode index (splitmix64)."""
    z = (int(episode) + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return ((z ^ (z >> 31)) >> 11) / float(1 << 53)


class ShardReader:
    """Random access to the episodes of a shard dataset: `episode_steps(e)`, `read(e, start, frames)`.

    Opens shard files lazily, keeps a few open per process (reopened after pickling or a fork, so
    DataLoader workers each open their own), and reads only the slices asked for.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.index = read_index(self.root)
        self.shard_of: list[int] = []
        self.steps: list[int] = []
        for si, s in enumerate(self.index["shards"]):
            if not (self.root / s["file"]).is_file():
                raise ShardError(
                    f"{self.root / s['file']}: missing shard listed in {self.root / INDEX}; "
                    f"record again into this folder to replace it"
                )
            self.shard_of += [si] * s["episodes"]
            self.steps += s["episode_steps"]
        self._handles: OrderedDict[int, object] = OrderedDict()
        self._pid = os.getpid()

    @property
    def num_episodes(self) -> int:
        return len(self.steps)

    def episode_steps(self, episode: int) -> int:
        """T: the number of steps (frames - 1) of `episode`."""
        return self.steps[episode]

    def _open(self, si: int):
        from safetensors import safe_open

        if os.getpid() != self._pid:  # a forked worker: open files of its own
            self._handles, self._pid = OrderedDict(), os.getpid()
        if si in self._handles:
            self._handles.move_to_end(si)
            return self._handles[si]
        path = self.root / self.index["shards"][si]["file"]
        try:
            handle = safe_open(str(path), framework="numpy")
        except FileNotFoundError:
            raise ShardError(f"{path}: missing shard listed in {self.root / INDEX}") from None
        except Exception as e:  # safetensors raises its own error types for a damaged header
            raise ShardError(
                f"{path}: damaged shard ({type(e).__name__}: {e}); record again into a new folder"
            ) from None
        self._handles[si] = handle
        while len(self._handles) > _HANDLES:
            self._handles.popitem(last=False)
        return handle

    def read(self, episode: int, start: int = 0, frames: int | None = None) -> dict[str, np.ndarray]:
        """Frames start .. start+frames-1 of `episode` (all from `start` when None) and the frames-1
        steps between them: {"frames", "actions", "rewards", "terminated", "truncated"} as numpy."""
        T = self.episode_steps(episode)
        frames = T + 1 - start if frames is None else frames
        if not (0 <= start and frames >= 1 and start + frames <= T + 1):
            raise IndexError(f"frames {start}..{start + frames - 1} are outside episode {episode} (frames 0..{T})")
        si = self.shard_of[episode]
        handle = self._open(si)
        out = {}
        try:
            for f in FIELDS:
                stop = start + frames if f == "frames" else start + frames - 1
                out[f] = handle.get_slice(episode_key(episode, f))[start:stop]
        except Exception as e:  # a truncated shard or a missing key
            path = self.root / self.index["shards"][si]["file"]
            raise ShardError(
                f"{path}: damaged shard, cannot read episode {episode} ({type(e).__name__}: {e})"
            ) from None
        return out

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handles"] = OrderedDict()  # open files do not pickle; each process opens its own
        return state


try:
    from torch.utils.data import Dataset as _Dataset
except ImportError:  # numpy-only installs can still write and read shards
    _Dataset = object


class ShardDataset(_Dataset):
    """Windows of `window` frames (1 + steps) over the episodes of one split, as torch tensors.

    Item i: {"frames": uint8 (window, S, S, 3), "actions": int64 (window-1, A), "rewards": float32
    (window-1,), "terminated": bool (window-1,), "truncated": bool (window-1,), "episode": int,
    "start": int}. Windows start every `stride` frames; episodes shorter than the window give none.
    Nothing is loaded up front beyond the index; picklable for DataLoader workers.
    """

    def __init__(
        self, root: str | os.PathLike, window: int, split: str = "train", heldout_fraction: float = 0.1, stride: int = 1
    ):
        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        if int(window) < 2 or int(stride) < 1:
            raise ValueError(f"window must be at least 2 frames and stride at least 1, got {window}, {stride}")
        self.window, self.stride, self.split = int(window), int(stride), split
        self.reader = ShardReader(root)
        self.index = self.reader.index
        train, heldout = split_episodes(self.reader.num_episodes, heldout_fraction)
        self.episodes = train if split == "train" else heldout
        counts = [max(0, (self.reader.episode_steps(e) + 1 - self.window) // self.stride + 1) for e in self.episodes]
        self._ends = np.cumsum(counts, dtype=np.int64)

    @property
    def action_space(self) -> dict:
        return self.index["action_space"]

    @property
    def frame_size(self) -> int:
        return self.index["frame_size"]

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def locate(self, i: int) -> tuple[int, int]:
        """(episode, start frame) of window `i`."""
        if not 0 <= i < len(self):
            raise IndexError(f"window {i} out of range ({len(self)} windows)")
        k = int(np.searchsorted(self._ends, i, side="right"))
        before = int(self._ends[k - 1]) if k else 0
        return self.episodes[k], (i - before) * self.stride

    def __getitem__(self, i: int) -> dict:
        import torch

        episode, start = self.locate(int(i))
        arrays = self.reader.read(episode, start, self.window)
        item = {f: torch.from_numpy(np.ascontiguousarray(a)) for f, a in arrays.items()}
        item["episode"], item["start"] = episode, start
        return item
