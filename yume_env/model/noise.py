"""`WorldNoise`: every world's own stream of standard normal noise, drawn for all worlds at once.

    noise = WorldNoise([seed_0, seed_1, ...], device="cuda")   # one key per world, counters at 0
    eps = noise.draw((C, F, h, w))                              # float32 (N, C, F, h, w); counters += 1

Counter-based, like Philox in JAX or cuRAND: element j of world i's draw is a fixed function of
(key_i, counter_i, j), built from integer hashing (splitmix64's mixer) and Box-Muller. No generator
holds hidden state, so:

- batching never changes a world's noise: world i draws the same numbers alone or in a batch, in any
  row (bit for bit on one device: every float op is elementwise, on contiguous tensors);
- a world's stream is two integers (`state(i)` / `load_state(i, ...)`): snapshots store them;
- a draw is the same few dozen tensor ops for 1 or 1,024 worlds, on the worlds' device: no Python
  loop over worlds, no host copy, no host sync.

The integers are the same on every device; the floats after them (log, cos, sin) may differ in the
last bit between a CPU and a GPU, as any float kernel's do.
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import torch

_GOLDEN = 0x9E3779B97F4A7C15  # splitmix64's increment: 2**64 / golden ratio
_MIX1, _MIX2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB  # splitmix64's multipliers
_BITS = 24  # bits per uniform: float32 holds k * 2**-24 exactly for k <= 2**24
_UNIT = 2.0**-_BITS
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _signed(c: int) -> int:
    """A 64-bit constant as the int64 it is in two's complement (torch's int64 multiply wraps)."""
    return c - 2**64 if c >= 2**63 else c


def mix64_(x: torch.Tensor, scratch: torch.Tensor | None = None) -> torch.Tensor:
    """splitmix64's finalizer on int64, in place (int64 multiplies wrap): a bijection of 64-bit words
    that scatters every input bit. `scratch`: a spare tensor like `x` (big draws reuse one)."""
    t = torch.empty_like(x) if scratch is None else scratch
    for shift, multiplier in ((30, _MIX1), (27, _MIX2), (31, None)):
        torch.bitwise_right_shift(x, shift, out=t)
        t &= (1 << (64 - shift)) - 1  # a logical shift: torch's >> on int64 shifts the sign bit in
        x ^= t
        if multiplier is not None:
            x *= _signed(multiplier)
    return x


def _bits(x: torch.Tensor, low: int, out: torch.Tensor) -> torch.Tensor:
    """`_BITS` bits of int64 `x` from bit `low` up, as int64 in [0, 2**_BITS), written to `out`."""
    torch.bitwise_right_shift(x, low, out=out)
    return out.bitwise_and_(2**_BITS - 1)


class WorldNoise:
    """Standard normal noise for N worlds: world i's draws depend only on its `keys[i]` and `counters[i]`.

    keys: int64 (N,), one per world (its seed); counters: int64 (N,), the draws each world made since
    its key was set. Both live on the device the noise is drawn on. `draw(shape)` returns float32
    (N, *shape) and advances every counter by one. `rows` / `set_rows` take and write worlds (as
    `WorldState` does), `seed(i, key)` restarts world i's stream, `state(i)` / `load_state(i, ...)`
    read and write one world's stream as plain ints (for snapshots).
    """

    def __init__(
        self,
        keys: Sequence[int] | torch.Tensor,
        counters: Sequence[int] | torch.Tensor | None = None,
        device: torch.device | str | None = None,
    ):
        keys = torch.as_tensor(keys, dtype=torch.int64, device=device).reshape(-1).clone()
        if counters is None:
            counters = torch.zeros_like(keys)
        counters = torch.as_tensor(counters, dtype=torch.int64, device=keys.device).reshape(-1).clone()
        if counters.shape != keys.shape:
            raise ValueError(f"WorldNoise needs one counter per key, got {len(counters)} counters for {len(keys)} keys")
        self.keys, self.counters = keys, counters

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        return f"WorldNoise({len(self)} worlds on {self.device})"

    @property
    def device(self) -> torch.device:
        return self.keys.device

    def draw(self, shape: Sequence[int]) -> torch.Tensor:
        """float32 (N, *shape) standard normals, world i's from (keys[i], counters[i]); then counters += 1.

        Hash j of a world's draw (splitmix64 along its stream) gives two 24-bit uniforms, a radius and
        an angle: flat element j is radius * cos(angle) and element `pairs + j` radius * sin(angle).
        """
        shape = tuple(int(s) for s in shape)
        numel = math.prod(shape)
        pairs = (numel + 1) // 2  # Box-Muller makes two normals from each hash
        # each world's stream for this draw (key * golden, a bijection of int64, puts neighbouring keys
        # far apart, so their counters never meet), then one hash per pair of elements along it
        stream = mix64_(self.keys * _signed(_GOLDEN) + self.counters)
        steps = torch.arange(1, pairs + 1, dtype=torch.int64, device=self.device) * _signed(_GOLDEN)
        bits = stream[:, None] + steps  # (N, pairs); in place from here on: big draws allocate little
        scratch = torch.empty_like(bits)
        mix64_(bits, scratch)
        # two 24-bit uniforms from disjoint bits: u1 in (0, 1] (its log is finite), u2 in [0, 1) the angle
        radius = _bits(bits, 64 - _BITS, scratch).add_(1).float().mul_(_UNIT).log_().mul_(-2.0).sqrt_()
        normals = torch.empty((len(self), 2, pairs), dtype=torch.float32, device=self.device)
        angle = normals[:, 0].copy_(_bits(bits, 64 - 2 * _BITS, scratch)).mul_(2 * math.pi * _UNIT)
        torch.sub(angle, math.pi / 2, out=normals[:, 1])  # cos(angle - pi/2) = sin(angle)
        normals.cos_().mul_(radius[:, None])  # (N, 2, pairs): r cos, then r sin, of each pair's angle
        self.counters += 1
        return normals.reshape(len(self), 2 * pairs)[:, :numel].reshape(len(self), *shape)

    # ---- worlds ------------------------------------------------------------------------------
    def clone(self) -> "WorldNoise":
        return WorldNoise(self.keys, self.counters)

    def to(self, device: torch.device | str) -> "WorldNoise":
        return WorldNoise(self.keys, self.counters, device=device)

    def rows(self, idx: Sequence[int]) -> "WorldNoise":
        """The streams of worlds `idx` (a copy)."""
        idx = list(idx)
        return WorldNoise(self.keys[idx], self.counters[idx])

    def set_rows(self, idx: Sequence[int], other: "WorldNoise") -> None:
        """Makes the streams of `other` (one per index) those of worlds `idx`."""
        idx = list(idx)
        if len(other) != len(idx):
            raise ValueError(f"set_rows got {len(other)} streams for {len(idx)} worlds")
        self.keys[idx] = other.keys.to(self.device)
        self.counters[idx] = other.counters.to(self.device)

    def seed(self, i: int, key: int) -> None:
        """Restarts world i's stream at `key` (its counter at 0)."""
        self.load_state(i, {"key": key, "counter": 0})

    def state(self, i: int) -> dict:
        """World i's stream as plain ints: {"key": int, "counter": int} (a host sync: for snapshots, not steps)."""
        return {"key": int(self.keys[i]), "counter": int(self.counters[i])}

    def load_state(self, i: int, state: dict) -> None:
        """Sets world i's stream from `state(i)`'s dict; TypeError / ValueError naming the field if it is not one."""
        check_state(state)
        self.keys[i] = int(state["key"])
        self.counters[i] = int(state["counter"])


def check_state(state: object, where: str = "noise state") -> None:
    """Raises TypeError / ValueError naming the field unless `state` is {"key": int64, "counter": int64 >= 0}."""
    if not isinstance(state, dict) or set(state) != {"key", "counter"}:
        got = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise TypeError(f'{where} must be a dict {{"key": int, "counter": int}} (WorldNoise.state(i)), got {got}')
    for name in ("key", "counter"):
        value = state[name]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{where}: {name!r} must be an int, got {type(value).__name__}")
    if not _INT64_MIN <= state["key"] <= _INT64_MAX:
        raise ValueError(f"{where}: 'key' must fit in int64, got {state['key']}")
    if not 0 <= state["counter"] <= _INT64_MAX:
        raise ValueError(f"{where}: 'counter' must be in [0, 2**63), got {state['counter']}")
