"""Latents of Sekai-layout clips, encoded once by a world's frozen VAE and cached on disk.

`LatentLibrary(roots, vae, model_config, cache_dir, info)` encodes every clip of the folders (or
finds it in the cache: `<cache>/<key>.safetensors`, written atomically, the key hashing the video
file's bytes, the VAE's weights and the frame size) and serves latents with an LRU; each
`ClipLatents` carries the per-chunk action and event (`chunk_conditioning`).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from yume_env.actions import NUM_CAMERAS
from yume_env.atomic import atomic_write

CACHE_FORMAT = "yume-env-latents/1"


def _save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Writes a safetensors file atomically (a temp file beside it, then renamed)."""
    from safetensors.torch import save_file

    atomic_write(
        path, lambda tmp: save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    )


def _barrier() -> None:
    """Waits for every process of a torchrun job (nothing outside one)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def _to_tensor(frames: np.ndarray, device) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, 3, T, H, W) in [-1, 1], what a VAE encodes."""
    return torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


def vae_fingerprint(vae: nn.Module) -> str:
    """A hash of the VAE's weights (names, shapes, dtypes, bytes): cached latents are reused only
    when the VAE that made them is the same."""
    h = hashlib.sha1()
    for name, t in sorted(vae.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:20]


def file_digest(path: str | os.PathLike) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:20]


def fit_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (T, H0, W0, 3) -> (T, height, width, 3): scaled to cover, then centre-cropped
    (real Sekai videos are 720p/1080p; the model has one frame size)."""
    T, H0, W0 = frames.shape[:3]
    if (H0, W0) == (height, width):
        return frames
    scale = max(height / H0, width / W0)
    h, w = max(height, round(H0 * scale)), max(width, round(W0 * scale))
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (h - height) // 2, (w - width) // 2
    x = x[:, :, top : top + height, left : left + width]
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def encode_frames(
    vae: nn.Module, frames: np.ndarray, temporal_compression: int, device, per_call: int = 64
) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> latents (C, N, h, w) float32: N = T for a 1x temporal VAE (encoded
    in groups of frames), else 1 + (T - 1) // tc (the causal Wan VAE, the clip cut to 1 + tc*k frames)."""
    tc = int(temporal_compression)
    if tc == 1:
        parts = [
            vae.encode(_to_tensor(frames[i : i + per_call][:, None], device))[:, :, 0]
            for i in range(0, len(frames), per_call)
        ]
        return torch.cat(parts).float().transpose(0, 1).contiguous().cpu()
    n = 1 + (len(frames) - 1) // tc * tc
    return vae.encode(_to_tensor(frames[None, :n], device))[0].float().contiguous().cpu()


@dataclass
class ClipLatents:
    """One clip as the stage sees it: its cached latents' file and per-chunk conditioning."""

    path: Path  # the latent file
    source: str  # the .mp4
    chunks: int  # number of target chunks (latents after the first, in chunks of F)
    actions: list[int]  # flat action of each chunk
    events: list[str]  # event text active during each chunk ("" for none)


def chunk_conditioning(
    actions: np.ndarray, event: str, event_start: int, chunks: int, frames_per_chunk: int
) -> tuple[list[int], list[str]]:
    """Per chunk k (pixel frames 1 + P*k .. P*(k+1), P = frames_per_chunk): the most frequent
    action of the transitions into those frames, and the event once its start frame is reached."""
    flat, events = [], []
    P = frames_per_chunk
    for k in range(chunks):
        moves = [int(a) * NUM_CAMERAS + int(c) for a, c in actions[P * k : P * (k + 1)]]
        flat.append(Counter(moves).most_common(1)[0][0])
        events.append(event if event and 0 <= event_start <= P * (k + 1) else "")
    return flat, events


class LatentLibrary:
    """Encodes (or finds in the cache) every clip of the folders; serves latents with an LRU."""

    def __init__(
        self,
        roots: Sequence[str | os.PathLike],
        vae: nn.Module,
        model_config,
        cache_dir: str | os.PathLike,
        info,
        progress: bool = True,
        keep: int = 256,
    ):
        from tqdm.auto import tqdm

        from yume_env.data import SekaiClipDataset

        c = model_config
        self.frames_per_chunk = c.latent_frames_per_chunk * c.temporal_compression
        self.cache_dir = Path(cache_dir)
        self.keep = int(keep)
        self._lru: OrderedDict[int, torch.Tensor] = OrderedDict()
        self.encoded = 0  # clips encoded by this process (0 when all came from the cache)
        fingerprint = vae_fingerprint(vae)
        datasets = []
        for root in roots:
            if not Path(root).is_dir():
                raise FileNotFoundError(
                    f"data folder {root} does not exist; make one with `yume-env data generate --out {root}`"
                )
            datasets.append(SekaiClipDataset(root, window=None, verify=False, cache=0))
        todo = [(ds, ci) for ds in datasets for ci in range(len(ds.clips))]
        if not todo:
            raise ValueError(
                f"no clips found under {list(map(str, roots))} (Sekai layout: <root>/<class>/<stem>.mp4 + .npy + .txt)"
            )
        self.clips: list[ClipLatents] = []
        plan = []
        for ds, ci in todo:
            clip = ds.clips[ci]
            key = hashlib.sha1(f"{file_digest(clip.path)}|{fingerprint}|{c.height}x{c.width}".encode()).hexdigest()[:24]
            plan.append((ds, ci, self.cache_dir / key[:2] / f"{key}.safetensors"))
        # each rank encodes its share of the missing clips, then everyone reads the cache
        mine = [p for i, p in enumerate(plan) if i % info.world_size == info.rank and not p[2].is_file()]
        for ds, ci, path in tqdm(mine, desc="encode clips", disable=not (progress and info.is_main), leave=False):
            frames = fit_frames(ds.clip_frames(ci), c.height, c.width)
            z = encode_frames(vae, frames, c.temporal_compression, next(vae.parameters()).device)
            _save(
                {"latents": z},
                path,
                metadata={
                    "format": CACHE_FORMAT,
                    "source": str(ds.clips[ci].path),
                    "vae": fingerprint,
                    "frames": str(len(frames)),
                },
            )
            self.encoded += 1
        _barrier()
        Fc = c.latent_frames_per_chunk
        for ds, ci, path in plan:
            clip = ds.clips[ci]
            n_lat = 1 + (clip.meta.duration - 1) // c.temporal_compression
            chunks = (n_lat - 1) // Fc
            if chunks < 1:
                continue  # too short for one target chunk after the first frame
            acts, evs = chunk_conditioning(
                clip.actions, clip.meta.event, clip.meta.event_start, chunks, self.frames_per_chunk
            )
            self.clips.append(ClipLatents(path, str(clip.path), chunks, acts, evs))
        if not self.clips:
            raise ValueError(
                f"every clip is shorter than 1 + {self.frames_per_chunk} frames (one chunk after the first frame)"
            )

    def events(self) -> list[str]:
        return sorted({e for clip in self.clips for e in clip.events if e})

    def latents(self, i: int) -> torch.Tensor:
        if i in self._lru:
            self._lru.move_to_end(i)
            return self._lru[i]
        from safetensors.torch import load_file

        z = load_file(str(self.clips[i].path))["latents"]
        self._lru[i] = z
        while len(self._lru) > self.keep:
            self._lru.popitem(last=False)
        return z
