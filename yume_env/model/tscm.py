"""TSCM temporal-spatial stream: which history latents become tokens, at which patch size.

The history (every latent frame before the current chunk, oldest first) is embedded with coarser
spatial patches the older it is. A *schedule* says how, as data:

- a list of `Tier`s, chosen by history length N (the published code switches layouts at
  N = 6, 22, 86, 342);
- each tier: an optional first-frame anchor (frame 0 kept alone at a fine kernel) and a list of
  `Band`s, newest first: "the newest 3 frames at kernel 2, the 2 before at kernel 4, ..., all
  remaining older frames at kernel 32 after a stride-4 pre-shrink";
- the oldest band may be thinned in time to at most `max_frames` frames, which bounds the token
  count (and the temporal RoPE positions) for any N.

`plan_history` applies a schedule in one loop and returns a `HistoryPlan` (per band: frame
indices, kernel, token grid, first temporal position). The DiT embeds the plan; nothing here
touches weights. Token order is oldest band first, then newer bands, then the current chunk;
the temporal RoPE index counts embedded frames, and spatial indices restart on every grid.

Preset "yume" reproduces the published layout exactly (stdstu12/YUME `wan23/modules/model.py`),
including its quirks: frame 0 is an anchor at kernel 2 (kernel 4 from N = 87 on); while N <= 6 the
newest band is a single frame; an empty oldest band (N <= 2) embeds the oldest frame of the next
newer band a second time; frames are zero-padded at the bottom/right to a multiple of the kernel.
Past N = 1,016 (where the published code fails) its oldest band is thinned in time to the 674
frames it has at N = 1,016, so the layout stays at 7,430 tokens at 44x80 and positions stay < 1,024.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Band:
    """A run of history frames embedded with one patch size.

    frames: how many frames (taken newest first, after the newer bands); None = every remaining
        older frame (the oldest band, always last in a tier).
    kernel: spatial patch side; frames are embedded by a (1, kernel, kernel) stride-kernel conv.
    pre_shrink: 1 = none; s > 1 = first a (1, s, s) stride-s latent-to-latent conv (the published
        `patch_embedding_2x_f`, s = 4).
    max_frames: oldest band only: keep at most this many frames, thinned in time (`thin_indices`).
    """

    frames: int | None
    kernel: int
    pre_shrink: int = 1
    max_frames: int | None = None


@dataclass(frozen=True)
class Tier:
    """The layout for history lengths up to `max_history` (None: any length)."""

    max_history: int | None
    first_frame_kernel: int | None  # frame 0 kept alone at this kernel; None = no anchor
    bands: tuple[Band, ...]  # newest first; the last has frames=None


@dataclass(frozen=True)
class Schedule:
    name: str
    tiers: tuple[Tier, ...]
    # Published quirk: an empty oldest band still embeds one frame (the oldest of the next newer band).
    empty_oldest_repeats: bool = False

    def tier(self, n_history: int) -> Tier:
        for t in self.tiers:
            if t.max_history is None or n_history <= t.max_history:
                return t
        raise ValueError(f"schedule {self.name!r} has no tier for {n_history} history latents")

    def kernels(self) -> set[tuple[int, int]]:
        """Every (kernel, pre_shrink) pair the schedule uses (the DiT builds one embedder per pair)."""
        out = set()
        for t in self.tiers:
            if t.first_frame_kernel:
                out.add((t.first_frame_kernel, 1))
            out.update((b.kernel, b.pre_shrink) for b in t.bands)
        return out


def _published_bands(*spec: tuple) -> tuple[Band, ...]:
    return tuple(Band(*s) for s in spec)


# The published layout (DESIGN.md section 2): tiers at N <= 6, 22, 86, 342, then everything else.
YUME = Schedule(
    name="yume",
    empty_oldest_repeats=True,
    tiers=(
        Tier(6, 2, _published_bands((1, 2), (None, 4))),
        Tier(22, 2, _published_bands((3, 2), (2, 4), (None, 8))),
        Tier(86, 2, _published_bands((3, 2), (2, 4), (16, 8), (None, 16))),
        Tier(342, 4, _published_bands((3, 2), (2, 4), (16, 8), (64, 16), (None, 32))),
        # 674 = 1016 - 342: the oldest band's length where the published code stops working.
        Tier(None, 4, _published_bands((3, 2), (2, 4), (16, 8), (64, 16), (256, 32), (None, 32, 4, 674))),
    ),
)

# The tiny preset's 8x8 latents: newest 4 frames at 16 tokens each, 8 older at 4, and the oldest
# thinned to 8 frames at 1 token each: at most 104 tokens, reached at N = 20 (10 chunks).
TINY = Schedule(
    name="tiny",
    tiers=(Tier(None, None, _published_bands((4, 2), (8, 4), (None, 8, 1, 8))),),
)

# The same 8x8 latents with a (1, 1, 1) current patch: the newest chunk (2 frames) at 64 tokens
# each, 4 older at 16, 8 older at 4, the oldest thinned to 8 frames at 1 token: at most 232 tokens.
TINY_FINE = Schedule(
    name="tiny-fine",
    tiers=(Tier(None, None, _published_bands((2, 1), (4, 2), (8, 4), (None, 8, 1, 8))),),
)

# Like tiny-fine, but the oldest band keeps 16 thinned frames at 4 tokens each (one per 32x32-pixel
# quadrant) instead of 8 at one token: a view seen 20-50 steps ago is still there to recall, not
# only its colour (docs/eval.md, *What the memory recalls*). At most 288 tokens.
TINY_RECALL = Schedule(
    name="tiny-recall",
    tiers=(Tier(None, None, _published_bands((2, 1), (4, 2), (8, 4), (None, 4, 1, 16))),),
)

SCHEDULES: dict[str, Schedule] = {s.name: s for s in (YUME, TINY, TINY_FINE, TINY_RECALL)}


def get_schedule(schedule: str | Schedule) -> Schedule:
    if isinstance(schedule, Schedule):
        return schedule
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown TSCM schedule {schedule!r}; choose one of {sorted(SCHEDULES)}")
    return SCHEDULES[schedule]


# ---------------------------------------------------------------------------- thinning in time
def _multiples(lo: int, hi: int, step: int) -> range:
    return range(-(-lo // step) * step, hi, step)


def thin_indices(lo: int, hi: int, budget: int | None) -> list[int]:
    """At most `budget` frame indices from [lo, hi), spread over the whole range.

    Keeps the multiples of the smallest power-of-two stride s that leaves <= budget frames, then
    fills up to exactly `budget` with the newest odd multiples of s/2. The result is *stable*:
    growing hi by one only ever adds the new frame and drops others for good, so a caller may
    discard any frame not in the current set (bounded storage for unbounded episodes).
    """
    if budget is None or hi - lo <= budget:
        return list(range(lo, hi))
    if budget < 1:
        raise ValueError(f"max_frames must be >= 1, got {budget}")
    stride = 1
    while len(_multiples(lo, hi, stride)) > budget:
        stride *= 2
    keep = list(_multiples(lo, hi, stride))
    need = budget - len(keep)
    if need:
        half = stride // 2
        odd = [i for i in _multiples(lo, hi, half) if i % stride]
        keep += odd[-need:]
    return sorted(keep)


# ---------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class BandPlan:
    """One embedded band: history frame indices (oldest first), patching, token grid, RoPE start."""

    frames: tuple[int, ...]
    kernel: int
    pre_shrink: int
    grid: tuple[int, int]  # tokens per frame (gh, gw)
    t0: int  # temporal RoPE position of the band's first frame

    @property
    def tokens(self) -> int:
        return len(self.frames) * self.grid[0] * self.grid[1]


@dataclass(frozen=True)
class HistoryPlan:
    n_history: int
    latent_hw: tuple[int, int]
    bands: tuple[BandPlan, ...]  # oldest first (sequence order)

    # cached: plans are shared (`plan_history` caches them) and read for every world at every step
    @functools.cached_property
    def tokens(self) -> int:
        return sum(b.tokens for b in self.bands)

    @functools.cached_property
    def next_t(self) -> int:
        """Temporal RoPE position of the current chunk's first frame (= embedded history frames)."""
        return sum(len(b.frames) for b in self.bands)

    @functools.cached_property
    def layout(self) -> tuple:
        """What the shapes of the embedded tokens depend on: plans of one layout embed together."""
        return self.latent_hw, tuple((len(b.frames), b.kernel, b.pre_shrink, b.t0) for b in self.bands)

    @property
    def frame_indices(self) -> list[int]:
        """Sorted distinct history frames the plan reads."""
        return sorted({i for b in self.bands for i in b.frames})


def _grid(latent_hw: tuple[int, int], kernel: int, pre_shrink: int) -> tuple[int, int]:
    # zero padding at bottom/right up to a multiple (published `convpadd`) -> ceil divisions
    return tuple(math.ceil(math.ceil(s / pre_shrink) / kernel) for s in latent_hw)  # type: ignore[return-value]


@functools.lru_cache(maxsize=4096)
def _plan(schedule: Schedule, n_history: int, latent_hw: tuple[int, int]) -> HistoryPlan:
    if n_history < 0:
        raise ValueError(f"n_history must be >= 0, got {n_history}")
    if n_history == 0:
        return HistoryPlan(0, latent_hw, ())
    tier = schedule.tier(n_history)
    start = 1 if tier.first_frame_kernel else 0
    end = n_history
    runs: list[tuple[tuple[int, ...], Band]] = []  # newest first
    for band in tier.bands:
        if band.frames is not None:
            lo = max(end - band.frames, 0)
            idx = tuple(range(lo, end))
            end = lo
        elif end > start:
            idx = tuple(thin_indices(start, end, band.max_frames))
        elif schedule.empty_oldest_repeats:
            idx = (min(end, n_history - 1),)
        else:
            idx = ()
        if idx:
            runs.append((idx, band))
    if tier.first_frame_kernel:
        runs.append(((0,), Band(1, tier.first_frame_kernel)))
    bands, t = [], 0
    for idx, band in reversed(runs):
        bands.append(BandPlan(idx, band.kernel, band.pre_shrink, _grid(latent_hw, band.kernel, band.pre_shrink), t))
        t += len(idx)
    return HistoryPlan(n_history, latent_hw, tuple(bands))


def plan_history(schedule: str | Schedule, n_history: int, latent_hw: tuple[int, int]) -> HistoryPlan:
    """The token layout of `n_history` history latents of size `latent_hw` under `schedule`."""
    return _plan(get_schedule(schedule), int(n_history), (int(latent_hw[0]), int(latent_hw[1])))


def history_token_count(schedule: str, n_history: int, latent_hw: tuple[int, int]) -> int:
    """Number of history tokens `schedule` makes of `n_history` latents of size `latent_hw`.

    >>> history_token_count("yume", 4, (44, 80))
    2200
    """
    return plan_history(schedule, n_history, latent_hw).tokens


def frames_to_keep(schedule: str | Schedule, n_history: int) -> list[int]:
    """History frame indices the layout reads at length n_history (sorted).

    Stable: frames_to_keep(n + 1) is a subset of frames_to_keep(n) plus frame n, so a caller
    may store only these frames (bounded memory) and pass them with `n_history` to the DiT.
    """
    return plan_history(schedule, n_history, (1, 1)).frame_indices


@functools.lru_cache(maxsize=4096)
def kept_count(schedule: str | Schedule, n_history: int) -> int:
    """len(frames_to_keep(schedule, n_history)): how many latents a bounded history stores."""
    return len(frames_to_keep(schedule, n_history))


@functools.lru_cache(maxsize=4096)
def band_columns(schedule: str | Schedule, n_history: int, stored: int) -> tuple[tuple[int, ...], ...] | None:
    """Per band of the layout at n_history, where its frames lie in a stored history of `stored`
    frames: the whole history (stored == n_history) or `frames_to_keep(n_history)`; None if it is
    neither. Cached: a batched step asks this for every world."""
    plan = plan_history(schedule, n_history, (1, 1))
    if stored == n_history:
        return tuple(b.frames for b in plan.bands)
    if stored != len(plan.frame_indices):
        return None
    where = {f: j for j, f in enumerate(plan.frame_indices)}
    return tuple(tuple(where[f] for f in b.frames) for b in plan.bands)


@functools.lru_cache(maxsize=4096)
def keep_positions(schedule: str | Schedule, n_history: int, n_new: int) -> tuple[int, ...]:
    """Where the frames kept at n_history + n_new lie in [the frames kept at n_history, then the
    n_new new ones]: what `append_history` takes. Histories of different lengths often take the
    same positions (once the oldest band is thinned), so they can be appended together."""
    old_idx = frames_to_keep(schedule, n_history)
    pos = {f: i for i, f in enumerate(old_idx)}
    pos.update({n_history + j: len(old_idx) + j for j in range(n_new)})
    return tuple(pos[f] for f in frames_to_keep(schedule, n_history + n_new))


def append_history(schedule: str | Schedule, kept: torch.Tensor, n_history: int, new: torch.Tensor) -> torch.Tensor:
    """Bounded history storage: add `new` latents (C, n, h, w) to `kept` (C, K, h, w), which holds
    `frames_to_keep(schedule, n_history)`, and return the frames kept at n_history + n.

    Also for G worlds of the same `n_history` at once: kept (G, C, K, h, w), new (G, C, n, h, w)."""
    old_count = len(frames_to_keep(schedule, n_history))
    if kept.shape[-3] != old_count:
        raise ValueError(
            f"kept holds {kept.shape[-3]} frames but frames_to_keep({n_history}) names {old_count}; "
            "pass the tensor this function returned last time"
        )
    take = torch.tensor(keep_positions(schedule, int(n_history), int(new.shape[-3])), dtype=torch.long)
    return torch.cat([kept, new], dim=-3).index_select(-3, take.to(kept.device))
