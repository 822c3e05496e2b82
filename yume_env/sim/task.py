"""Start states: where the camera spawns, where the beacon stands, where the ghost appears.

All numpy and vectorised over B cameras (used by both simulators at reset/event time only).
The camera spawns on a street, looking along it; the beacon stands 6-15 m ahead, within the view
(bearing within +-20 deg), on free ground with a clear line of sight. The street axis itself is
always free, so a straight-ahead fallback always exists.
"""

from __future__ import annotations

import numpy as np

from .backend import NUMPY
from .city import PERIOD, STREET, is_free

SPAWN_PERIODS = 6  # spawn within +-6 periods (~200 m) of the origin: float32 poses stay exact to 1e-5 m
BEACON_RANGE = (6.0, 15.0)
BEACON_BEARING = np.deg2rad(20.0)
BEACON_RADIUS = 0.8
REACH_RADIUS = 1.5


def clear_path(x0, z0, x1, z1, seed, radius: float = 0.3, spacing: float = 0.5) -> np.ndarray:
    """(B,) True where the straight segment (x0,z0)->(x1,z1) keeps `radius` from every building."""
    n = int(np.ceil(np.max(np.hypot(x1 - x0, z1 - z0)) / spacing)) + 1
    s = np.linspace(0.0, 1.0, n)[None, :]
    xs = x0[:, None] + (x1 - x0)[:, None] * s
    zs = z0[:, None] + (z1 - z0)[:, None] * s
    return is_free(NUMPY, xs, zs, seed[:, None], radius).all(axis=1)


def spawn(rng: np.random.Generator, seed: np.ndarray):
    """(x, z, yaw) float64 arrays of B cameras standing on a street, looking along it."""
    B = seed.shape[0]
    pi = rng.integers(-SPAWN_PERIODS, SPAWN_PERIODS + 1, B)
    pk = rng.integers(-SPAWN_PERIODS, SPAWN_PERIODS + 1, B)
    across = rng.uniform(3.0, STREET - 3.0, B)
    along = rng.uniform(STREET + 1.0, PERIOD - 1.0, B)
    z_street = rng.random(B) < 0.5  # walk along a street that runs along z (else along x)
    x = np.where(z_street, pi * PERIOD + across, pi * PERIOD + along)
    z = np.where(z_street, pk * PERIOD + along, pk * PERIOD + across)
    axis = np.where(z_street, 0.0, np.pi / 2) + np.where(rng.random(B) < 0.5, 0.0, np.pi)
    yaw = axis + rng.uniform(-0.2, 0.2, B)
    yaw = np.remainder(yaw + np.pi, 2 * np.pi) - np.pi
    return x, z, yaw, axis


def place_beacon(rng: np.random.Generator, seed, x, z, yaw, axis, tries: int = 24):
    """(B, 2) beacon positions in view, 6-15 m ahead, on free ground with a clear line of sight."""
    B = seed.shape[0]
    d = rng.uniform(*BEACON_RANGE, (B, tries))
    bearing = yaw[:, None] + rng.uniform(-BEACON_BEARING, BEACON_BEARING, (B, tries))
    bx = x[:, None] + d * np.sin(bearing)
    bz = z[:, None] + d * np.cos(bearing)
    ok = is_free(NUMPY, bx, bz, seed[:, None], BEACON_RADIUS)
    for j in range(tries):
        rows = ok[:, j]
        if rows.any():
            ok[rows, j] &= clear_path(x[rows], z[rows], bx[rows, j], bz[rows, j], seed[rows])
    first = np.argmax(ok, axis=1)
    found = ok[np.arange(B), first]
    # Fallback: straight down the street axis (always free).
    fd = rng.uniform(*BEACON_RANGE, B)
    fx, fz = x + fd * np.sin(axis), z + fd * np.cos(axis)
    out = np.stack([np.where(found, bx[np.arange(B), first], fx), np.where(found, bz[np.arange(B), first], fz)], -1)
    return out


def place_ghost(seed, x, z, yaw):
    """(B, 2) ghost positions straight ahead, as far as 5 m if the way is clear (else nearer)."""
    out = np.stack([x + 1.5 * np.sin(yaw), z + 1.5 * np.cos(yaw)], -1)
    for d in (2.0, 3.0, 4.0, 5.0):
        gx, gz = x + d * np.sin(yaw), z + d * np.cos(yaw)
        ok = clear_path(x, z, gx, gz, seed, radius=0.2)
        out[ok] = np.stack([gx, gz], -1)[ok]
    return out


def sun_direction(rng: np.random.Generator, B: int) -> np.ndarray:
    """(B, 3) unit vectors toward the sun as (x, up, z): random azimuth, 25-55 deg elevation."""
    az = rng.uniform(0, 2 * np.pi, B)
    el = np.deg2rad(rng.uniform(25, 55, B))
    return np.stack([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)], -1).astype(np.float32)
