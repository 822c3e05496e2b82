"""The text cache a training run carries: the 81 action captions, every event paraphrase of
`yume_env.sim.events.EVENTS`, and "" (zeros), embedded once by the model's text encoder.

GPU machines without the MiniLM package train from this file alone
(`TextConditioner.from_cache`); build it where the encoder is installed:

    yume-env train text-cache --out text_cache.safetensors
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from yume_env.model.text import build_text_encoder
from yume_env.model.text_cache import TextConditioner
from yume_env.sim.events import EVENTS


def event_texts() -> list[str]:
    """Every paraphrase of every simulator event."""
    return [p for phrases in EVENTS.values() for p in phrases]


def build_text_cache(out: str | os.PathLike, encoder: str = "minilm") -> Path:
    """Encodes the vocabulary and writes the cache file `out` (atomically); returns its path."""
    cond = TextConditioner.build(build_text_encoder(encoder), events=event_texts())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        written = cond.save(tmp)
        os.replace(written, out)
    os.chmod(out, 0o644)
    return out


def load_text_cache(path: str | os.PathLike) -> TextConditioner:
    """A conditioner from a cache file, checked to hold every event paraphrase."""
    cond = TextConditioner.from_cache(path)
    missing = [t for t in event_texts() if t not in cond.events]
    if missing:
        raise ValueError(
            f"text cache {path} lacks {len(missing)} event texts (e.g. {missing[0]!r}); "
            "rebuild it with `yume-env train text-cache --out FILE`"
        )
    return cond


def copy_into_model_folder(cond: TextConditioner, folder: str | os.PathLike) -> Path:
    """Writes the cache as `folder/text_cache/<encoder>.safetensors`."""
    return cond.save(folder)


__all__ = ["build_text_cache", "load_text_cache", "event_texts", "copy_into_model_folder"]
