"""Upright objects drawn as camera-facing shapes: street lamps, trees, the beacon, the ghost.

Each sprite is a "pole" (a rectangle from the ground) plus a "blob" (an ellipse), in metres, so
one table describes a lamp (post + head), a tree (trunk + crown), the task beacon (a tall
striped pillar + glowing top) and the ghost (a robe + head). The renderer keeps the two nearest
sprites per screen column. Sprites have no collision.
"""

from __future__ import annotations

import numpy as np

from . import materials as M
from .backend import Backend
from .city import PERIOD, block_kind

LAMP, TREE, BEACON, GHOST = 0, 1, 2, 3

# Parameter columns of the sprite table.
(
    P_HALF_WIDTH,
    P_POLE_W,
    P_POLE_H,
    P_BLOB_H,
    P_BLOB_RX,
    P_BLOB_RY,
    P_POLE_MAT,
    P_BLOB_MAT,
    P_STRIPE_MAT,
    P_STRIPE_FREQ,
    P_VALID,
) = range(11)
N_PARAMS = 11

# Per type: column half width, pole half width/height, blob centre height/radii (metres),
# pole/blob/stripe materials, stripe frequency (per metre, 0 = none), valid.
TYPE_PARAMS = np.array(
    [
        [0.40, 0.08, 4.4, 4.5, 0.28, 0.20, M.LAMP_POLE, M.LAMP_HEAD, M.LAMP_POLE, 0.0, 1],
        [1.50, 0.17, 2.4, 3.8, 1.45, 1.65, M.TRUNK, M.CROWN, M.TRUNK, 0.0, 1],
        [0.80, 0.40, 8.0, 8.5, 0.75, 0.75, M.BEACON, M.BEACON_TOP, M.BEACON_STRIPE, 1.0, 1],
        [0.50, 0.34, 1.5, 1.78, 0.25, 0.28, M.GHOST, M.GHOST, M.GHOST, 0.0, 1],
    ],
    dtype=np.float32,
)

# Positions inside one 32 m period (local metres): lamps and trees alternate on both sidewalks
# of both streets; park trees fill park blocks.
LAMP_SPOTS = np.array([(1.0, 18.0), (11.0, 26.0), (18.0, 1.0), (26.0, 11.0)], dtype=np.float32)
STREET_TREE_SPOTS = np.array([(1.0, 26.0), (11.0, 18.0), (26.0, 1.0), (18.0, 11.0)], dtype=np.float32)
PARK_TREE_SPOTS = np.array([(17.0, 17.0), (17.0, 27.0), (27.0, 17.0), (27.0, 27.0), (22.0, 22.0)], dtype=np.float32)
_SPOTS = np.concatenate([LAMP_SPOTS, STREET_TREE_SPOTS, PARK_TREE_SPOTS])
_TYPES = np.array([LAMP] * 4 + [TREE] * 9)
_NEAR = np.array([(i, k) for i in (-1, 0, 1) for k in (-1, 0, 1)], dtype=np.int64)
_TABLE = np.tile(TYPE_PARAMS[_TYPES], (len(_NEAR), 1))  # (9 * 13, P)
_IS_PARK_TREE = np.tile(np.arange(len(_SPOTS)) >= 8, len(_NEAR))
_IS_LAMP = np.tile(_TYPES == LAMP, len(_NEAR))


def sprite_table(b: Backend, x, z, seed, lights, beacon_xz, beacon_on, ghost_xz, ghost_on):
    """Candidate sprites around each camera: positions (B, S, 2) and parameters (B, S, N_PARAMS).

    Looks at the 3x3 periods around the camera (up to about 48 m away), then the beacon and the
    ghost. `lights` (B,) in [0, 1] enlarges the glowing lamp heads; `*_on` (B,) > 0 draws them.
    """
    xp = b.xp
    B = x.shape[0]
    near = b.asarray(_NEAR)
    qi = b.i(xp.floor(x / PERIOD))[:, None] + near[None, :, 0]  # (B, 9)
    qk = b.i(xp.floor(z / PERIOD))[:, None] + near[None, :, 1]
    park = block_kind(b, qi, qk, seed[:, None]) == 1  # (B, 9)
    spots = b.asarray(_SPOTS)
    n = len(_SPOTS)
    sx = (b.f(qi)[:, :, None] * PERIOD + spots[None, None, :, 0]).reshape(B, -1)  # (B, 9 * 13)
    sz = (b.f(qk)[:, :, None] * PERIOD + spots[None, None, :, 1]).reshape(B, -1)
    params = b.asarray(_TABLE)[None] + xp.zeros_like(x)[:, None, None]
    park_s = (park[:, :, None] & (b.asarray(_IS_PARK_TREE).reshape(1, 9, n))).reshape(B, -1)
    valid = ~b.asarray(_IS_PARK_TREE)[None] | park_s
    params[:, :, P_VALID] = b.f(valid)
    grow = 1 + 1.2 * lights[:, None]
    lamp = b.asarray(_IS_LAMP)[None]
    params[:, :, P_BLOB_RX] = xp.where(lamp, params[:, :, P_BLOB_RX] * grow, params[:, :, P_BLOB_RX])
    params[:, :, P_BLOB_RY] = xp.where(lamp, params[:, :, P_BLOB_RY] * grow, params[:, :, P_BLOB_RY])

    extra = b.asarray(TYPE_PARAMS[[BEACON, GHOST]])[None] + xp.zeros_like(x)[:, None, None]
    extra[:, 0, P_VALID] = b.f(beacon_on > 0)
    extra[:, 1, P_VALID] = b.f(ghost_on > 0)
    pos = b.stack(
        [b.cat([sx, beacon_xz[:, :1], ghost_xz[:, :1]], 1), b.cat([sz, beacon_xz[:, 1:], ghost_xz[:, 1:]], 1)], -1
    )
    return pos, b.cat([params, extra], 1)
