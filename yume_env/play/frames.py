"""Frames to and from the browser: PNG/JPEG bytes, data URLs, and uploaded start images.

The page shows frames as `data:` URLs pushed over Server-Sent Events, so the server never holds a
socket per image. PNG is lossless (the browser test compares the shown frames with a replay bit for
bit); JPEG keeps large worlds (e.g. Yume-5B's 704x1280) light on the wire.
"""

from __future__ import annotations

import base64
import binascii
import io

import imageio.v3 as iio
import numpy as np
from PIL import Image

FORMATS = {"png": ("image/png", ".png"), "jpeg": ("image/jpeg", ".jpg")}
# Frames wider or taller than this go out as JPEG under the "auto" format.
AUTO_PNG_MAX_SIDE = 256
MAX_UPLOAD_PIXELS = 40_000_000  # refuse decompression bombs before resizing


def choose_format(fmt: str, frame_size: tuple[int, int]) -> str:
    """'auto' -> 'png' for small worlds, 'jpeg' for large ones; 'png'/'jpeg' pass through."""
    if fmt == "auto":
        return "png" if max(frame_size) <= AUTO_PNG_MAX_SIDE else "jpeg"
    if fmt not in FORMATS:
        raise ValueError(f"frame format must be one of auto, {', '.join(FORMATS)}; got {fmt!r}")
    return fmt


def encode_frame(frame: np.ndarray, fmt: str = "png") -> bytes:
    """uint8 (H, W, 3) -> PNG or JPEG bytes.

    Pillow directly (imageio's own backend): about 0.5 ms for a 64x64 frame against 1.5-2 ms through
    imageio's plugin lookup; zlib level 1 costs a little size for a third less time.
    """
    buf = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
    if fmt == "jpeg":
        image.save(buf, format="JPEG", quality=90)
    else:
        image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def decode_frame(data: bytes) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 (H, W, 3)."""
    return to_rgb(iio.imread(data))


def to_data_url(data: bytes, fmt: str = "png") -> str:
    return f"data:{FORMATS[fmt][0]};base64," + base64.b64encode(data).decode("ascii")


def from_data_url(url: str) -> bytes:
    """'data:image/...;base64,XXXX' (or bare base64) -> bytes; ValueError with the reason otherwise."""
    if not isinstance(url, str):
        raise ValueError(
            f"image must be a base64 data URL string (data:image/png;base64,...), got {type(url).__name__}"
        )
    payload = url.split(",", 1)[1] if url.startswith("data:") and "," in url else url
    if url.startswith("data:") and ";base64" not in url.split(",", 1)[0]:
        raise ValueError("image data URL must be base64-encoded (data:image/png;base64,...)")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("image is not valid base64 (expected data:image/png;base64,...)") from None


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Grey, grey+alpha, RGB or RGBA uint8/uint16/float -> uint8 (H, W, 3)."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"image must be a 2-D picture (grey, RGB or RGBA), got an array of shape {arr.shape}")
    if arr.shape[-1] in (1, 2):
        arr = np.repeat(arr[..., :1], 3, axis=-1)
    arr = arr[..., :3]
    if arr.dtype == np.uint16:
        arr = (arr // 257).astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(np.asarray(arr, dtype=np.float64) * (255.0 if arr.max(initial=0) <= 1.0 else 1.0), 0, 255)
        arr = arr.round().astype(np.uint8)
    return np.ascontiguousarray(arr)


def fit_image(data: bytes, frame_size: tuple[int, int]) -> np.ndarray:
    """Decodes an uploaded picture and center-crops/resizes it to the world's (H, W): uint8 (H, W, 3)."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            w, h = probe.size
    except Exception:
        raise ValueError("the uploaded file is not a readable image (use PNG or JPEG)") from None
    if w * h > MAX_UPLOAD_PIXELS:
        raise ValueError(f"the uploaded image has {w}x{h} pixels; at most {MAX_UPLOAD_PIXELS} are accepted")
    try:
        pixels = iio.imread(data, index=0)
    except Exception:
        raise ValueError("the uploaded file is not a readable image (use PNG or JPEG)") from None
    image = to_rgb(pixels)
    th, tw = frame_size
    h, w = image.shape[:2]
    # crop to the target aspect ratio around the centre, then resize with antialiasing
    scale = min(w / tw, h / th)
    cw, ch = max(1, round(tw * scale)), max(1, round(th * scale))
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    crop = image[y0 : y0 + ch, x0 : x0 + cw]
    if crop.shape[:2] == (th, tw):
        return np.array(crop, dtype=np.uint8, copy=True)
    return np.asarray(Image.fromarray(crop).resize((tw, th), Image.Resampling.LANCZOS), dtype=np.uint8).copy()
