"""The endless procedural city: a street grid of building blocks, defined by integer hashes.

Nothing is stored: the height, colour and window style of any cell come from a hash of its
coordinates and the world seed, so the city is endless and identical wherever it is queried
(numpy or torch, CPU or GPU). Units are metres; the ground is the plane height 0.

Layout of one period (32 m x 32 m, i.e. 8 x 8 cells of 4 m), local coordinates (lx, lz) in [0, 32):
- lx < 12 or lz < 12: street corridor (sidewalk [0, 2.5), road [2.5, 9.5), sidewalk [9.5, 12)),
- the 20 m x 20 m block: four building lots of hashed sizes and heights (most blocks), a park
  (grass and trees, walkable), or a landmark plaza with a tall gold tower in its middle.
"""

from __future__ import annotations

import numpy as np

from .backend import Backend

CELL = 4.0  # metres per grid cell
PERIOD_CELLS = 8
STREET_CELLS = 3
PERIOD = CELL * PERIOD_CELLS  # 32 m
STREET = CELL * STREET_CELLS  # 12 m
ROAD = (2.5, 9.5)  # road band inside the street corridor (the rest is sidewalk)
EYE_HEIGHT = 1.6

PARK_P = 0.12  # share of blocks that are parks
LANDMARK_P = 0.08  # share of blocks that are landmark plazas
LANDMARK_HEIGHT = 48.0
LANDMARK_COLOUR = 10  # palette index of the landmark tower

# Facade albedos (RGB in [0, 1]); strong contrasts so buildings read at 64x64.
PALETTE = np.array(
    [
        (0.62, 0.27, 0.20),  # brick red
        (0.82, 0.74, 0.56),  # beige
        (0.70, 0.70, 0.73),  # light grey
        (0.33, 0.40, 0.58),  # slate blue
        (0.90, 0.86, 0.74),  # cream
        (0.78, 0.46, 0.30),  # terracotta
        (0.24, 0.53, 0.53),  # teal
        (0.40, 0.40, 0.43),  # dark grey
        (0.80, 0.63, 0.26),  # mustard
        (0.55, 0.68, 0.50),  # pale green
        (0.96, 0.80, 0.36),  # landmark gold
    ],
    dtype=np.float32,
)
N_FACADES = len(PALETTE) - 1

_M32 = 0xFFFFFFFF


def hash_ints(b: Backend, a, c, seed, salt: int):
    """A 32-bit integer hash of int64 arrays (a, c, seed) and a constant salt; same in numpy and torch.

    All products stay below 2**63 (inputs < 2**31), so no library-specific overflow behaviour matters.
    """
    h = (a * 374761393 + c * 668265263 + seed * 1442695041 + (salt * 2654435761 & _M32)) & _M32
    h = ((h ^ (h >> 16)) * 0x45D9F3B) & _M32
    h = ((h ^ (h >> 16)) * 0x45D9F3B) & _M32
    return h ^ (h >> 16)


def hash_unit(b: Backend, a, c, seed, salt: int):
    """`hash_ints` mapped to float32 in [0, 1)."""
    return b.f(hash_ints(b, a, c, seed, salt) & 0xFFFFFF) * (1.0 / 16777216.0)


def block_kind(b: Backend, pi, pk, seed):
    """0 = buildings, 1 = park, 2 = landmark plaza, for period indices (pi, pk)."""
    u = hash_unit(b, pi, pk, seed, 1)
    return b.i(u < PARK_P) + 2 * b.i((u >= PARK_P) & (u < PARK_P + LANDMARK_P))


def cell_info(b: Backend, ix, iz, seed):
    """Per grid cell: (height m, facade palette index, window style in [0, 1)).

    ix, iz, seed: int64 arrays that broadcast together. Height 0 means free (street, park, plaza).
    """
    xp = b.xp
    pi, pk = ix // PERIOD_CELLS, iz // PERIOD_CELLS
    li, lk = ix - pi * PERIOD_CELLS, iz - pk * PERIOD_CELLS
    street = (li < STREET_CELLS) | (lk < STREET_CELLS)
    kind = block_kind(b, pi, pk, seed)
    # Four lots per block: split each axis after 2 or 3 of the block's 5 cells.
    split = hash_ints(b, pi, pk, seed, 2)
    sx = STREET_CELLS + 2 + (split & 1)
    sz = STREET_CELLS + 2 + ((split >> 1) & 1)
    lot_x = pi * 2 + b.i(li >= sx)
    lot_z = pk * 2 + b.i(lk >= sz)
    floors = 3 + b.f(hash_ints(b, lot_x, lot_z, seed, 3) % 8)  # 3..10 floors of 3 m
    height = floors * 3.0
    colour = hash_ints(b, lot_x, lot_z, seed, 4) % N_FACADES
    style = hash_unit(b, lot_x, lot_z, seed, 5)
    tower = (kind == 2) & (li >= 4) & (li <= 6) & (lk >= 4) & (lk <= 6)
    height = xp.where(tower, LANDMARK_HEIGHT, height)
    colour = xp.where(tower, LANDMARK_COLOUR, colour)
    free = street | (kind == 1) | ((kind == 2) & ~tower)
    height = xp.where(free, 0.0, height)
    return b.f(height), colour, style


def is_free(b: Backend, x, z, seed, radius: float = 0.0):
    """True where a disc of `radius` metres at (x, z) touches no building (checks its 4 corners).

    x, z: float arrays of one shape; seed broadcasts against them. One `cell_info` call for all
    corners (this runs every sub-frame, so small-array call overhead matters on the CPU).
    """
    if radius == 0.0:
        h, _, _ = cell_info(b, b.i(b.xp.floor(x / CELL)), b.i(b.xp.floor(z / CELL)), seed)
        return h <= 0.0
    off = b.asarray(np.array([-radius, radius, -radius, radius], dtype=np.float64))
    offz = b.asarray(np.array([-radius, -radius, radius, radius], dtype=np.float64))
    cx = b.i(b.xp.floor((x[..., None] + off) / CELL))
    cz = b.i(b.xp.floor((z[..., None] + offz) / CELL))
    seed = b.expand_dims(seed, -1) if hasattr(seed, "ndim") and seed.ndim else seed
    h, _, _ = cell_info(b, cx, cz, seed)
    return (h <= 0.0).all(-1) if b.name == "numpy" else (h <= 0.0).all(dim=-1)
