"""The vectorised renderer: one raycast per screen column, then per-pixel material ids.

How a frame is made (B cameras at once, numpy or torch through `Backend`):
1. Walls: each screen column's ray is marched through the 4 m grid with an all-at-once DDA (every
   x- and z-boundary crossing up to `MAX_RANGE`, sorted, cells looked up in a window of hashed cell
   heights around the camera); the first building hit gives the column's wall distance, height,
   facade and the coordinate along the wall (for windows).
2. Pitch is a vertical shift of the image (the classic raycaster "y-shearing"): pixel row r maps to
   the tangent of its elevation `a = y_ndc[r] + tan(pitch)`, so walls, ground and sky are closed-form
   per pixel: wall where -eye/D <= a < (h - eye)/D, floor-cast ground below, sky above.
3. Sprites (lamps, trees, beacon, ghost): the two nearest per column, shaped per pixel in metres.
4. Colour: each pixel gets a material id and a scalar shade; `materials.material_table` (which
   applies the events per camera) turns them into RGB; then distance haze/fog, light pools around
   lamps, and screen-space snow/rain.

Everything is float32 and resolution-independent (shapes in metres, effects in screen fractions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import materials as M
from . import sprites as S
from .backend import Backend
from .city import CELL, EYE_HEIGHT, LANDMARK_COLOUR, PERIOD, ROAD, STREET, block_kind, cell_info, hash_unit
from .events import EFFECTS

BIG = 1.0e4
HFOV_DEG = 80.0
MAX_RANGE = 64.0  # metres of wall raycast (beyond: skyline and haze)
SKYLINE_DEPTH = 150.0
LAMP_LOCAL = np.array([(1.0, 18.0), (11.0, 26.0), (18.0, 1.0), (26.0, 11.0)], dtype=np.float32)
POOL_RGB = np.array([1.0, 0.75, 0.35], dtype=np.float32)


@dataclass
class RenderState:
    """What the renderer needs per camera; every field has leading dimension B (float32 unless said)."""

    x: Any  # (B,) metres
    z: Any  # (B,)
    yaw: Any  # (B,) radians, > 0 = turned right (toward +x from +z)
    pitch: Any  # (B,) radians, > 0 = looking up
    seed: Any  # (B,) int64 world seed
    sun: Any  # (B, 3) unit vector toward the sun as (x, up, z)
    time: Any  # (B,) sub-frame counter (animates snow/rain)
    effects: Any  # (B, len(EFFECTS)) event intensities in [0, 1]
    beacon: Any  # (B, 2) beacon x, z
    beacon_on: Any  # (B,) > 0 draws the beacon
    ghost: Any  # (B, 2) ghost x, z


class Renderer:
    """Renders `RenderState`s at one resolution. `height`/`width` must be multiples of 16."""

    def __init__(self, height: int = 64, width: int = 64, backend: Backend | None = None):
        for name, v in (("height", height), ("width", width)):
            if not isinstance(v, (int, np.integer)) or v < 16 or v % 16:
                raise ValueError(f"{name} must be a positive multiple of 16 (e.g. 64, 128, 256), got {v!r}")
        self.b = b = backend or Backend("numpy")
        self.height, self.width = int(height), int(width)
        self.focal = (width / 2) / math.tan(math.radians(HFOV_DEG) / 2)
        x_ndc = (np.arange(width) + 0.5 - width / 2) / self.focal
        self.x_ndc = b.asarray(x_ndc.astype(np.float32))
        self.y_ndc = b.asarray(((height / 2 - (np.arange(height) + 0.5)) / self.focal).astype(np.float32))
        # DDA: every boundary crossing up to MAX_RANGE (per axis at most K), inside a window of radius R.
        max_t = MAX_RANGE / CELL
        reach = math.sqrt(1.0 + float(np.max(x_ndc**2)))
        self.K = int(math.ceil(max_t * reach)) + 1
        self.R = self.K + 1
        n = self.n = 2 * self.R + 1
        off = np.arange(n, dtype=np.int64) - self.R
        self.off_x = b.asarray(np.tile(off, n))  # flat window index = (dz + R) * n + (dx + R)
        self.off_z = b.asarray(np.repeat(off, n))
        self.k_range = b.asarray(np.arange(self.K, dtype=np.float32))
        self.k_range_i = b.arange(self.K)
        self._y_ndc_np = ((height / 2 - (np.arange(height) + 0.5)) / self.focal).astype(np.float32)
        self._cache: dict = {}
        self.lamp_local = LAMP_LOCAL
        self.pool_rgb = b.asarray(POOL_RGB)
        # A fixed per-pixel noise for the ghost's screen-door translucency.
        yy, xx = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
        self.noise = b.asarray(((xx * 37 + yy * 91 + (xx * yy) % 7) % 17 / 17.0).astype(np.float32))

    # ------------------------------------------------------------------------------------
    def _memo(self, name: str, keys, fn, torch_too: bool = False):
        """Reuse the last result of `fn` while its inputs `keys` are unchanged.

        The cell window, sprite table and colour table change only when the camera crosses a
        cell or the event changes; recomputing them is most of a frame's fixed cost on a CPU.
        With torch (batches, where some camera always moves) only `torch_too` tables are kept:
        comparing their small keys costs a device sync, rebuilding them costs far more.
        """
        if self.b.name != "numpy" and not torch_too:
            return fn()
        key = tuple(self.b.numpy(k).tobytes() for k in keys)
        hit = self._cache.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = fn()
        self._cache[name] = (key, value)
        return value

    def _ground_rows(self, st):
        """(r0, r1): rows >= r0 may show ground and rows < r1 may show sky, for every camera."""
        tanp = self.b.numpy(self.b.xp.tan(st.pitch)).reshape(-1)
        first = (self._y_ndc_np[None, :] >= -tanp[:, None]).sum(1)  # first ground row per camera
        return int(first.min()), int(first.max())

    def render(self, st: RenderState, ghost_mask: bool = False):
        """(B, H, W, 3) uint8 frames; with `ghost_mask`, also the (B, H, W) bool mask of the pixels
        the ghost covers (its drawn screen-door dots: what a trainer weighs to teach the sprite)."""
        b, xp = self.b, self.b.xp
        fx = {name: st.effects[:, i] for i, name in enumerate(EFFECTS)}
        sy, cy = xp.sin(st.yaw), xp.cos(st.yaw)
        dirx = sy[:, None] + self.x_ndc[None] * cy[:, None]  # (B, W) ray direction per column
        dirz = cy[:, None] - self.x_ndc[None] * sy[:, None]
        a_rows = self.y_ndc[None, :] + xp.tan(st.pitch)[:, None]  # (B, H) elevation tangent per row
        a = a_rows[:, :, None]

        wall = self._walls(st, dirx, dirz)
        mat, shade, depth, bmask = self._shade_walls(st, wall, a)
        ground = (a < 0) & ~bmask
        r0, r1 = self._ground_rows(st)  # ground is computed only below, sky only above the horizon
        pool = None
        if r0 < self.height:
            gmat, gdepth, pool = self._ground(st, a[:, r0:], dirx, dirz, fx)
            g = ground[:, r0:]
            mat[:, r0:] = xp.where(g, gmat, mat[:, r0:])
            shade[:, r0:] = xp.where(g, 1.0, shade[:, r0:])
            depth[:, r0:] = xp.where(g, gdepth, depth[:, r0:])
            if pool is not None:
                pool = b.cat([xp.zeros_like(depth[:, :r0]), xp.where(g, pool, 0.0)], 1)
        if r1 > 0:
            smat, sshade = self._sky(st, a[:, :r1], dirx, dirz, fx)
            sky = ~(bmask | ground)[:, :r1]
            mat[:, :r1] = xp.where(sky, smat, mat[:, :r1])
            shade[:, :r1] = xp.where(sky, sshade, shade[:, :r1])
            depth[:, :r1] = xp.where(sky, xp.where(smat == M.SKYLINE, SKYLINE_DEPTH, BIG), depth[:, :r1])
        mat, shade, depth = self._sprites(st, a, sy, cy, mat, shade, depth, fx)
        ghost = (mat == M.GHOST) if ghost_mask else None

        # Colour: one gather from the per-camera uint8 lookup table (material, shade, haze).
        lut = self._memo("lut", (st.effects, st.sun), lambda: M.colour_lut(b, st.effects, st.sun[:, 1]), torch_too=True)
        mix = self._haze(depth, fx)
        s_lvl = b.i(b.clip(shade * ((M.SHADE_LEVELS - 1) / M.SHADE_MAX) + 0.5, 0.0, M.SHADE_LEVELS - 1))
        h_lvl = b.i(mix * (M.HAZE_LEVELS - 1) + 0.5)
        mat = mat + (b.arange(mat.shape[0]) * M.N_MATERIALS)[:, None, None]
        col = b.gather_rgb(lut, (mat * M.SHADE_LEVELS + s_lvl) * M.HAZE_LEVELS + h_lvl)  # (B, H, W, 3) uint8
        if pool is not None or b.any(st.effects[:, [EFFECTS.index("snow"), EFFECTS.index("rain")]] > 0):
            col = b.f(col)
            if pool is not None:  # warm light pools under the lamps (fading with the haze)
                col = col + (pool * (1 - mix) * 170.0)[..., None] * self.pool_rgb
            col = b.to_u8(b.clip(self._precipitation(st, col, fx) + 0.5, 0.0, 255.0))
        return col if ghost is None else (col, ghost)

    # ------------------------------------------------------------------------------------
    def _walls(self, st, dirx, dirz):
        """First building hit per column: dict of (B, W) dist, height, colour, style, u, side, step."""
        b, xp = self.b, self.b.xp
        R, n, K = self.R, self.n, self.K
        px, pz = st.x / CELL, st.z / CELL
        cx, cz = b.i(xp.floor(px)), b.i(xp.floor(pz))
        heights, colours, styles = self._memo(
            "cells",
            (cx, cz, st.seed),
            lambda: cell_info(b, cx[:, None] + self.off_x[None], cz[:, None] + self.off_z[None], st.seed[:, None]),
        )
        dirx = xp.where(xp.abs(dirx) < 1e-6, 1e-6, dirx)
        dirz = xp.where(xp.abs(dirz) < 1e-6, 1e-6, dirz)
        ddx, ddz = xp.abs(1.0 / dirx), xp.abs(1.0 / dirz)
        fpx, fpz = (px - b.f(cx))[:, None], (pz - b.f(cz))[:, None]  # position inside the start cell
        sdx = xp.where(dirx < 0, fpx, 1.0 - fpx) * ddx  # t of the first x-boundary crossing
        sdz = xp.where(dirz < 0, fpz, 1.0 - fpz) * ddz
        # Every x-crossing k (time tx_k) enters cell (k + 1 x-steps, z-steps taken before tx_k), and
        # every z-crossing likewise: no sort needed, the first hit is the earliest occupied cell.
        tx = sdx[..., None] + self.k_range * ddx[..., None]  # (B, W, K)
        tz = sdz[..., None] + self.k_range * ddz[..., None]
        nz_x = b.i(b.clip(xp.ceil((tx - sdz[..., None]) / ddz[..., None]), 0.0, float(K)))
        nx_z = b.i(b.clip(xp.ceil((tz - sdx[..., None]) / ddx[..., None]), 0.0, float(K)))
        stepx = b.i(dirx >= 0) * 2 - 1
        stepz = b.i(dirz >= 0) * 2 - 1
        sx, sz = stepx[..., None], (stepz * n)[..., None]
        k1 = self.k_range_i + 1
        flat = b.cat([k1 * sx + nz_x * sz, nx_z * sx + k1 * sz], -1) + (R * n + R)  # (B, W, 2K)
        ts = b.cat([tx, tz], -1)
        h = b.gather_rows(heights, flat.reshape(flat.shape[0], -1)).reshape(flat.shape)
        hit = (h > 0) & (ts <= MAX_RANGE / CELL)
        first = b.argmin(xp.where(hit, ts, BIG), -1)  # (B, W, 1)
        has = b.take(hit, first, -1)[..., 0]
        t_hit = b.take(ts, first, -1)[..., 0]
        side = first[..., 0] < K  # an x-crossing: the wall faces +-x
        fhit = b.take(flat, first, -1)[..., 0]
        u = xp.where(side, fpz + t_hit * dirz, fpx + t_hit * dirx) * CELL
        return {
            "dist": xp.where(has, t_hit * CELL, BIG),
            "height": xp.where(has, b.gather_rows(heights, fhit), 0.0),
            "colour": b.gather_rows(colours, fhit),
            "style": b.gather_rows(styles, fhit),
            "u": u,
            "side": side,
            "stepx": stepx,
            "stepz": stepz,
        }

    def _shade_walls(self, st, wall, a):
        """Per pixel (B, H, W): material, shade, depth and the wall mask."""
        b, xp = self.b, self.b.xp
        sun = st.sun
        ndot = xp.where(wall["side"], -b.f(wall["stepx"]) * sun[:, None, 0], -b.f(wall["stepz"]) * sun[:, None, 2])
        sun_h = xp.sqrt(sun[:, 0] ** 2 + sun[:, 2] ** 2)[:, None] + 1e-3
        shade = (0.58 + 0.42 * b.clip(ndot / sun_h, 0.0, 1.0)) * (1.0 - 0.14 * b.f(wall["side"]))  # (B, W)
        D = wall["dist"][:, None, :]
        top = wall["height"][:, None, :]
        bmask = (a * D >= -EYE_HEIGHT) & (a * D < top - EYE_HEIGHT)
        hp = EYE_HEIGHT + a * D  # (B, H, W) height of the wall point each pixel sees
        spacing = 2.4 + 1.8 * wall["style"]
        fu = b.frac(wall["u"] / spacing)
        colwin = (xp.abs(fu - 0.5) < 0.17 + 0.12 * b.f(wall["style"] > 0.5))[:, None, :]
        fh = b.frac(hp * (1.0 / 3.0))
        window = colwin & (fh > 0.3) & (fh < 0.8) & (hp > 3.0) & (hp < top - 0.8)
        glass = xp.zeros_like(wall["colour"]) + M.GLASS
        night = st.effects[:, EFFECTS.index("night")]
        if b.any(night > 0):  # some windows are lit at night, hashed per window
            wi = b.i(xp.floor(wall["u"] / spacing))[:, None, :]
            fi = b.i(xp.floor(hp * (1.0 / 3.0)))
            lit = hash_unit(b, wi * 131 + wall["colour"][:, None, :], fi, st.seed[:, None, None], 11) < 0.6
            win_mat = xp.where(lit, M.LIT_WINDOW, M.GLASS)
        else:
            win_mat = glass[:, None, :]
        mat = xp.where(window, win_mat, wall["colour"][:, None, :])
        shade_px = xp.zeros_like(hp) + shade[:, None, :]
        if b.any(wall["colour"] == LANDMARK_COLOUR):  # dark bands on the landmark towers
            band = (wall["colour"] == LANDMARK_COLOUR)[:, None, :] & (b.frac(hp * (1.0 / 6.0)) < 0.14)
            shade_px = xp.where(band, shade_px * 0.5, shade_px)
        return mat, shade_px, xp.zeros_like(hp) + D, bmask

    def _ground(self, st, a, dirx, dirz, fx):
        """Floor-cast street: per pixel material, depth and lamp light pool (None without lights)."""
        b, xp = self.b, self.b.xp
        dg = EYE_HEIGHT / b.clip(-a, 1e-4, None)  # (B, H, 1) distance to the ground along the view axis
        qx = (st.x[:, None, None] + dg * dirx[:, None, :]) * (1.0 / PERIOD)  # ground point in periods
        qz = (st.z[:, None, None] + dg * dirz[:, None, :]) * (1.0 / PERIOD)
        fqx, fqz = xp.floor(qx), xp.floor(qz)
        lx, lz = (qx - fqx) * PERIOD, (qz - fqz) * PERIOD  # local metres in the period
        rx = (lx >= ROAD[0]) & (lx < ROAD[1])
        rz = (lz >= ROAD[0]) & (lz < ROAD[1])
        block = (lx >= STREET) & (lz >= STREET)
        # Kind of the 5x5 periods around the camera, looked up per pixel (parks and plazas).
        pi, pk = b.i(xp.floor(st.x / PERIOD)), b.i(xp.floor(st.z / PERIOD))
        off = b.arange(5) - 2
        kinds = block_kind(
            b, pi[:, None, None] + off[None, :, None], pk[:, None, None] + off[None, None, :], st.seed[:, None, None]
        )
        qi = b.clip(b.i(fqx) - pi[:, None, None] + 2, 0, 4)
        qk = b.clip(b.i(fqz) - pk[:, None, None] + 2, 0, 4)
        kind = b.gather_rows(kinds.reshape(kinds.shape[0], 25), qi * 5 + qk)
        lane = ((xp.abs(lx - 6.0) < 0.12) & (lz >= STREET) & (b.frac(lz * 0.25) < 0.5)) | (
            (xp.abs(lz - 6.0) < 0.12) & (lx >= STREET) & (b.frac(lx * 0.25) < 0.5)
        )
        cross = (rx & (lz >= 12.6) & (lz < 15.0) & (b.frac(lx) < 0.5)) | (
            rz & (lx >= 12.6) & (lx < 15.0) & (b.frac(lz) < 0.5)
        )
        mat = xp.where(rx | rz, M.ROAD, M.SIDEWALK)
        mat = xp.where(block, xp.where(kind == 1, M.GRASS, M.PLAZA), mat)
        mat = xp.where(lane, M.LANE, mat)
        mat = xp.where(cross, M.CROSSWALK, mat)
        pool = None
        lights = fx["lights"]
        if b.any(lights > 0):  # warm pools of light on the ground around each lamp post
            pool = xp.zeros_like(lx)
            for px, pz in self.lamp_local.tolist():
                d2 = (lx - px) ** 2 + (lz - pz) ** 2
                pool = pool + b.clip(1.0 - d2 * (1.0 / 9.0), 0.0, 1.0) ** 2
            pool = pool * lights[:, None, None]
        return mat, xp.zeros_like(lx) + dg, pool

    def _sky(self, st, a, dirx, dirz, fx):
        """Per pixel sky material (one per row: the gradient; or the distant skyline) and sun glow."""
        b, xp = self.b, self.b.xp
        sun = st.sun
        norm = xp.sqrt(1.0 + self.x_ndc[None, None, :] ** 2 + a * a)
        cosang = ((sun[:, 0, None] * dirx + sun[:, 2, None] * dirz)[:, None, :] + sun[:, 1, None, None] * a) / norm
        glow = b.clip((cosang - 0.96) * 25.0, 0.0, 1.0)
        clear = (1 - fx["night"]) * (1 - fx["snow"]) * (1 - fx["rain"])
        shade = 1.0 + (0.4 * glow * glow + b.f(cosang > 0.9985)) * clear[:, None, None]
        # A distant skyline of blocky silhouettes, hashed by azimuth.
        az = xp.arctan2(dirx, dirz)  # (B, W)
        bucket = b.i(xp.floor(az * (20.0 / math.pi)))
        sk = 0.02 + 0.09 * hash_unit(b, bucket, bucket * 0, st.seed[:, None], 9)
        skyline = a < sk[:, None, :]
        level = b.i(b.clip(a * M.SKY_SCALE, 0.0, M.SKY_LEVELS - 1))  # (B, rows, 1) sky gradient step
        mat = xp.where(skyline, M.SKYLINE, M.SKY0 + level)
        return mat, xp.where(skyline, 1.0, shade)

    def _sprites(self, st, a, sy, cy, mat, shade, depth, fx):
        """Draw the two nearest sprites of each column over the scene (far one first)."""
        b, xp = self.b, self.b.xp
        ghost_on = fx["ghost"]
        period = (xp.floor(st.x / PERIOD), xp.floor(st.z / PERIOD))
        pos, par = self._memo(
            "sprites",
            period + (st.seed, st.effects, st.beacon, st.beacon_on, st.ghost),
            lambda: S.sprite_table(b, st.x, st.z, st.seed, fx["lights"], st.beacon, st.beacon_on, st.ghost, ghost_on),
        )
        rx = pos[..., 0] - st.x[:, None]
        rz = pos[..., 1] - st.z[:, None]
        sdepth = rx * sy[:, None] + rz * cy[:, None]  # (B, S) distance along the view axis
        slat = rx * cy[:, None] - rz * sy[:, None]  # (B, S) lateral offset, > 0 right
        ok = (sdepth > 0.3) & (sdepth < MAX_RANGE) & (par[:, :, S.P_VALID] > 0)
        if b.name == "numpy":  # drop sprites behind, too far or absent for every camera (most of them)
            keep = np.nonzero(ok.any(0))[0]
            sdepth, slat, par, ok = sdepth[:, keep], slat[:, keep], par[:, keep], ok[:, keep]
        lateral = self.x_ndc[None, None, :] * sdepth[:, :, None] - slat[:, :, None]  # (B, S, W)
        cover = (xp.abs(lateral) < par[:, :, S.P_HALF_WIDTH, None]) & ok[:, :, None]
        dm = xp.where(cover, sdepth[:, :, None], BIG)
        i1 = b.argmin(dm, 1)  # (B, 1, W) nearest sprite per column
        dm2 = xp.where(b.arange(dm.shape[1])[None, :, None] == i1, BIG, dm)
        i2 = b.argmin(dm2, 1)
        W = self.width
        for idx, dmat in ((i2, dm2), (i1, dm)):
            d = b.take(dmat, idx, 1)  # (B, 1, W)
            present = d < BIG
            if not b.any(present):
                continue
            p = b.take(par, idx[:, 0, :, None], 1)  # (B, W, P)
            lat = b.take(lateral, idx, 1)  # (B, 1, W)
            # numpy: shade only the columns with a sprite and the rows it can reach (a minority).
            rows, cols = slice(None), slice(None)
            if b.name == "numpy":
                c = np.nonzero(present.any(axis=(0, 1)))[0]
                cols = slice(None) if len(c) > 0.7 * W else c
                d_min = float(d[present].min())
                top = float(
                    np.max(np.maximum(p[..., S.P_POLE_H], p[..., S.P_BLOB_H] + p[..., S.P_BLOB_RY])[present[:, 0]])
                )
                a_any = a[:, :, 0].max(0), a[:, :, 0].min(0)
                r = np.nonzero(
                    (a_any[0] >= -EYE_HEIGHT / d_min - 1e-3) & (a_any[1] <= (top - EYE_HEIGHT) / d_min + 1e-3)
                )[0]
                rows = slice(int(r[0]), int(r[-1]) + 1) if len(r) else slice(0, 0)
            d, lat, p = d[..., cols], lat[..., cols], p[:, cols]
            ghost = p[:, None, :, S.P_POLE_MAT] == M.GHOST  # (B, 1, Wc)
            mat_c, shade_c, depth_c = mat[:, rows][..., cols], shade[:, rows][..., cols], depth[:, rows][..., cols]
            hp = EYE_HEIGHT + a[:, rows] * d  # (B, Hc, Wc)
            pole = (xp.abs(lat) < p[:, None, :, S.P_POLE_W]) & (hp >= 0) & (hp < p[:, None, :, S.P_POLE_H])
            ex = lat / p[:, None, :, S.P_BLOB_RX]
            ey = (hp - p[:, None, :, S.P_BLOB_H]) / p[:, None, :, S.P_BLOB_RY]
            blob = (ex * ex + ey * ey) < 1.0
            inside = (pole | blob) & (d < depth_c)
            if b.any(ghost):  # the ghost is translucent: screen-door transparency
                noise = self.noise[rows][..., cols][None]
                inside = inside & (~ghost | (noise < 0.85 * ghost_on[:, None, None]))
            m = xp.where(blob, p[:, None, :, S.P_BLOB_MAT], p[:, None, :, S.P_POLE_MAT])
            freq = p[:, None, :, S.P_STRIPE_FREQ]
            if b.any(freq > 0):  # the beacon's bands
                stripe = pole & ~blob & (freq > 0) & (b.frac(hp * freq + 0.25) < 0.5)
                m = xp.where(stripe, p[:, None, :, S.P_STRIPE_MAT], m)
            mat_c = xp.where(inside, b.i(m), mat_c)
            shade_c = xp.where(inside, 1.0, shade_c)
            depth_c = xp.where(inside, xp.zeros_like(depth_c) + d, depth_c)
            if isinstance(cols, slice) and isinstance(rows, slice) and rows == slice(None):
                mat, shade, depth = mat_c, shade_c, depth_c
            else:
                for full, part in ((mat, mat_c), (shade, shade_c), (depth, depth_c)):
                    view = full[:, rows]  # a view: writing its columns writes `full`
                    view[..., cols] = part
        return mat, shade, depth

    def _haze(self, depth, fx):
        """(B, H, W) mix toward the haze colour with distance (a little always; thick in fog)."""
        b = self.b
        fog = fx["fog"][:, None, None]
        # Rational falloffs d / (d + L): exp is several times dearer per pixel on CPUs without AVX2.
        mix = 0.55 * depth / (depth + 140.0)
        if b.any(fog > 0):
            mix = mix * (1 - fog) + depth / (depth + 6.0) * fog
        return mix

    def _precipitation(self, st, col, fx):
        """Screen-space snowflakes and rain streaks that fall with time and slide when turning."""
        b, xp = self.b, self.b.xp
        H, W = self.height, self.width
        for name, cells_x, cells_y, speed, radius, density, rgb, strength in (
            ("snow", 12.0, 12.0, 0.35, 0.22, 0.35, (248, 248, 255), 1.0),
            ("snow", 22.0, 22.0, 0.22, 0.2, 0.3, (230, 230, 240), 0.8),
            ("rain", 30.0, 5.0, 1.3, 0.0, 0.45, (185, 195, 215), 0.7),
        ):
            amt = fx[name]
            if not b.any(amt > 0):
                continue
            shift = st.yaw * (cells_x / math.radians(HFOV_DEG))  # flakes slide across the view when turning
            u = b.arange(W, b.f32)[None, None, :] * (cells_x / W) + shift[:, None, None]
            v = b.arange(H, b.f32)[None, :, None] * (cells_y / H) - st.time[:, None, None] * speed
            cu, cv = b.i(xp.floor(u)), b.i(xp.floor(v))
            r = hash_unit(b, cu, cv, st.seed[:, None, None], 21 if radius else 23)
            ox = 0.2 + 0.6 * b.frac(r * 7.31)
            oy = 0.2 + 0.6 * b.frac(r * 3.77)
            du, dv = b.frac(u) - ox, b.frac(v) - oy
            if radius:
                mark = (r < density) & (du * du + dv * dv < radius * radius)
            else:
                mark = (r < density) & (xp.abs(du) < 0.09) & (xp.abs(dv) < 0.35)
            m = (b.f(mark) * (amt * strength)[:, None, None])[..., None]
            col = col * (1 - m) + b.asarray(np.array(rgb, dtype=np.float32)) * m
        return col
