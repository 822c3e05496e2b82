"""The per-camera colour tables: every pixel is (material id, shade level, haze level) -> RGB.

Materials carry the events (snow, rain, night, lights), applied once per camera to a table of
~90 colours instead of to every pixel. Ids >= SKY0 are the sky gradient, by elevation level.
`colour_lut` then expands the table over quantized shade and haze levels into a uint8 lookup
table, so a frame is one gather: no float RGB arrays per pixel (the dearest part on a CPU).
"""

from __future__ import annotations

import numpy as np

from .backend import Backend
from .city import PALETTE
from .events import EFFECTS

N_FACADE = len(PALETTE)  # ids 0..10: facades (10 = landmark gold)
GLASS, LIT_WINDOW = 11, 12
ROAD, SIDEWALK, GRASS, PLAZA, LANE, CROSSWALK = 13, 14, 15, 16, 17, 18
SKYLINE = 19
LAMP_POLE, LAMP_HEAD, TRUNK, CROWN, BEACON, BEACON_STRIPE, BEACON_TOP, GHOST = range(20, 28)
SKY0 = 28
SKY_LEVELS = 64  # sky gradient steps between the horizon and the zenith colour
SKY_SCALE = 1.6 * (SKY_LEVELS - 1)  # elevation tangent -> sky level (the zenith colour from tan = 1/1.6)
N_MATERIALS = SKY0 + SKY_LEVELS
SHADE_LEVELS, SHADE_MAX = 32, 2.0  # shade in [0, SHADE_MAX] (walls < 1, the sun's glow > 1)
HAZE_LEVELS = 32  # haze/fog mix in [0, 1]

_BASE = np.zeros((SKY0, 3), dtype=np.float32)
_BASE[:N_FACADE] = PALETTE
_BASE[GLASS] = (0.16, 0.22, 0.32)
_BASE[LIT_WINDOW] = (1.0, 0.85, 0.45)
_BASE[ROAD] = (0.23, 0.23, 0.25)
_BASE[SIDEWALK] = (0.63, 0.61, 0.57)
_BASE[GRASS] = (0.30, 0.56, 0.22)
_BASE[PLAZA] = (0.78, 0.72, 0.62)
_BASE[LANE] = (0.95, 0.85, 0.35)
_BASE[CROSSWALK] = (0.93, 0.93, 0.93)
_BASE[SKYLINE] = (0.56, 0.62, 0.72)
_BASE[LAMP_POLE] = (0.20, 0.22, 0.25)
_BASE[LAMP_HEAD] = (0.80, 0.80, 0.72)
_BASE[TRUNK] = (0.36, 0.24, 0.14)
_BASE[CROWN] = (0.17, 0.46, 0.15)
_BASE[BEACON] = (1.00, 0.30, 0.05)
_BASE[BEACON_STRIPE] = (1.00, 0.88, 0.25)
_BASE[BEACON_TOP] = (1.00, 0.97, 0.60)
_BASE[GHOST] = (0.90, 0.94, 1.00)

# How much each material keeps its brightness at night (1 = emissive).
_EMISSIVE = np.zeros(SKY0, dtype=np.float32)
_EMISSIVE[[BEACON, BEACON_STRIPE]] = 0.6
_EMISSIVE[BEACON_TOP] = 1.0
_EMISSIVE[GHOST] = 0.6
_GROUND = np.zeros(SKY0, dtype=bool)
_GROUND[[ROAD, SIDEWALK, GRASS, PLAZA, LANE, CROSSWALK]] = True

LAMP_GLOW = np.array([1.0, 0.86, 0.45], dtype=np.float32) * 1.25
SKY_HORIZON = np.array([0.80, 0.87, 0.95], dtype=np.float32)
SKY_ZENITH = np.array([0.30, 0.54, 0.88], dtype=np.float32)
NIGHT_SKY = np.array([0.03, 0.04, 0.10], dtype=np.float32)
SNOW = np.array([0.92, 0.93, 0.97], dtype=np.float32)
STORM_GREY = 0.62
NIGHT_DARK = 0.85  # share of light lost at night by non-emissive materials


def material_table(b: Backend, effects, sun_up):
    """(B, N_MATERIALS, 3) float32 colours in [0, 1] for each camera's events and sun.

    effects: (B, len(EFFECTS)); sun_up: (B,) sine of the sun elevation.
    """
    xp = b.xp
    fx = {name: effects[:, i][:, None, None] for i, name in enumerate(EFFECTS)}
    base = b.asarray(_BASE)[None]  # (1, M, 3)
    ground = b.asarray(_GROUND)[None, :, None]
    t = base + xp.zeros_like(fx["snow"])
    # Ground: lit by the sun's elevation, whitened by snow, darkened (wet) by rain.
    g = t * (0.75 + 0.35 * sun_up[:, None, None])
    g = g * (1 - 0.7 * fx["snow"]) + b.asarray(SNOW) * (0.7 * fx["snow"])
    g = g * (1 - 0.35 * fx["rain"])
    t = xp.where(ground, g, t)
    t = t * (1 - 0.4 * fx["rain"] * (1 - b.f(ground)))
    # Lamp heads glow with the lights.
    ids = b.arange(SKY0)[None, :, None]
    lit = fx["lights"]
    t = xp.where(ids == LAMP_HEAD, t * (1 - lit) + b.asarray(LAMP_GLOW) * lit, t)
    emissive = b.asarray(_EMISSIVE)[None, :, None] + xp.where(ids == LAMP_HEAD, lit, 0.0)
    # Night: everything non-emissive darkens; windows light up.
    dark = 1 - NIGHT_DARK * fx["night"]
    t = t * (dark + (1 - dark) * b.clip(emissive, 0.0, 1.0))
    t = xp.where(
        ids == LIT_WINDOW, t[:, GLASS : GLASS + 1] * (1 - fx["night"]) + b.asarray(_BASE[LIT_WINDOW]) * fx["night"], t
    )
    t = xp.where(ids == SKYLINE, t * (1 - fx["night"]) + b.asarray(NIGHT_SKY) * (0.6 * fx["night"]), t)
    # Sky rows: the day gradient, night, then storm grey for snow and rain.
    s = (b.arange(SKY_LEVELS, b.f32) / (SKY_LEVELS - 1))[None, :, None]  # (1, SKY_LEVELS, 1)
    sky = b.asarray(SKY_HORIZON) * (1 - s) + b.asarray(SKY_ZENITH) * s
    n = fx["night"]
    sky = sky * (1 - n) + b.asarray(NIGHT_SKY) * n
    grey = 0.45 * fx["snow"] + 0.6 * fx["rain"]
    sky = sky * (1 - grey) + STORM_GREY * (1 - 0.8 * n) * grey
    t = xp.where(ids == SKYLINE, t * (1 - grey) + STORM_GREY * 0.85 * grey * dark, t)
    return b.cat([t, sky], 1)


def colour_lut(b: Backend, effects, sun_up):
    """(B * N_MATERIALS * SHADE_LEVELS * HAZE_LEVELS, 4) uint8 RGB0: index ((B_i * N + mat) * S + shade) * H + haze.

    Four bytes per entry so a frame can gather whole 32-bit words (`Backend.gather_rgb`), many times
    faster in numpy than gathering 3-byte rows.
    """
    table = material_table(b, effects, sun_up)  # (B, N, 3)
    shade = b.arange(SHADE_LEVELS, b.f32) * (SHADE_MAX / (SHADE_LEVELS - 1))
    haze = (b.arange(HAZE_LEVELS, b.f32) / (HAZE_LEVELS - 1))[None, None, None, :, None]
    lit = table[:, :, None, None, :] * shade[None, None, :, None, None]  # (B, N, S, 1, 3)
    target = haze_colour(b, effects)[:, None, None, None, :]
    lut = b.to_u8(b.clip((lit * (1 - haze) + target * haze) * 255.0 + 0.5, 0.0, 255.0)).reshape(-1, 3)
    return b.cat([lut, b.zeros((lut.shape[0], 1), b.u8)], 1)


def haze_colour(b: Backend, effects):
    """(B, 3) colour distant things fade into: sky horizon by day, dark blue at night, grey in fog."""
    n = effects[:, EFFECTS.index("night")][:, None]
    f = effects[:, EFFECTS.index("fog")][:, None]
    g = (0.45 * effects[:, EFFECTS.index("snow")] + 0.6 * effects[:, EFFECTS.index("rain")])[:, None]
    day = b.asarray(SKY_HORIZON)[None] * (1 - g) + STORM_GREY * g
    c = day * (1 - n) + b.asarray(NIGHT_SKY) * n
    fog = b.asarray(np.array([0.78, 0.80, 0.82], dtype=np.float32))[None] * (1 - 0.75 * n)
    return c * (1 - f) + fog * f
