"""Cached text conditioning: the 81 action captions once (on disk), each event text once (in memory).

The published Yume code concatenates action and event text and re-encodes it every chunk. Here
(as in the Yume1.5 paper) the action captions are a fixed vocabulary, embedded once per text
encoder and stored beside the checkpoint in `text_cache/<encoder>.safetensors`; an event text is
embedded the first time it is seen. A chunk's context is [action tokens, event tokens], zero-padded
(or cut) to the model's context length: for the tiny preset (MiniLM, one pooled token per text)
that is exactly 2 tokens. The empty event "" is zeros and never calls the encoder.

A conditioner can also come from a cache file alone (`TextConditioner.from_cache`), for machines
without the encoder's weights; texts outside the cache then raise an error that says so.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np
import torch

from yume_env.actions import NUM_ACTIONS, action_vocabulary
from yume_env.host_to_device import to_device
from yume_env.model.checkpoint import CheckpointError, load_safetensors, save_safetensors

if TYPE_CHECKING:
    from yume_env.model.text import TextEncoder

CACHE_DIR = "text_cache"
CACHE_FORMAT = "yume-env-text-cache/1"
MAX_EVENTS = 4096  # in-memory event cache size (least recently used texts are dropped first)
log = logging.getLogger(__name__)


class UnknownTextError(KeyError):
    """A text outside a cache-only conditioner's cache."""

    def __str__(self) -> str:  # KeyError would print the message's repr
        return str(self.args[0])


def check_event_text(text: object, what: str = "event") -> str:
    """`text` if it is an event text a text encoder can read: a str of valid Unicode. A lone
    surrogate (e.g. from text decoded with errors="surrogateescape") has no UTF-8 form, so every
    tokenizer fails on it; TypeError / ValueError naming `what` otherwise."""
    if not isinstance(text, str):
        raise TypeError(f'{what} must be a str ("" for none), got {type(text).__name__}')
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{what} {text!r} is not valid Unicode: it holds a lone surrogate {text[exc.start]!r} at index {exc.start}; "
            "pass properly decoded text (e.g. bytes.decode('utf-8', errors='replace'))"
        ) from None
    return text


def cache_path(folder: str | Path, encoder_name: str) -> Path:
    """`<model folder>/text_cache/<encoder>.safetensors`."""
    return Path(folder) / CACHE_DIR / f"{encoder_name}.safetensors"


def _pad_stack(items: Sequence[torch.Tensor], dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max((t.shape[0] for t in items), default=0)
    out = torch.zeros(len(items), longest, dim, dtype=items[0].dtype if items else torch.float32)
    for i, t in enumerate(items):
        out[i, : t.shape[0]] = t
    return out, torch.tensor([t.shape[0] for t in items], dtype=torch.int64)


def _unstack(padded: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
    return [padded[i, : int(n)].clone() for i, n in enumerate(lengths.tolist())]


class TextConditioner:
    """Context tensors for (action, event) pairs, encoding each text at most once.

    Build with `TextConditioner.build(encoder)`, `TextConditioner.open(folder, ...)` (reuse or rebuild
    the on-disk cache) or `TextConditioner.from_cache(path)` (no encoder). `encoder_calls` and
    `texts_encoded` count the encoder's work (tests and logs read them).
    """

    def __init__(
        self,
        *,
        name: str,
        model_id: str,
        dim: int,
        tokens_per_text: int | None,
        actions: list[torch.Tensor],
        events: dict[str, torch.Tensor] | None = None,
        encoder: "TextEncoder | None" = None,
        encoder_factory: "Callable[[], TextEncoder] | None" = None,
        source: Path | None = None,
    ):
        if len(actions) != NUM_ACTIONS:
            raise ValueError(f"need {NUM_ACTIONS} action embeddings, got {len(actions)}")
        self.name, self.model_id, self.dim, self.tokens_per_text = name, model_id, int(dim), tokens_per_text
        self.actions = actions  # per action: (n_tokens, dim)
        self.events: OrderedDict[str, torch.Tensor] = OrderedDict(events or {})
        self._encoder = encoder
        self._encoder_factory = encoder_factory
        self.source = source
        self._rows: tuple | None = None  # (actions, table, first rows, lengths) of `_action_rows`
        self._device_rows: tuple | None = None  # (key, table on a device) of `_device_table`
        self.encoder_calls = 0
        self.texts_encoded = 0

    # ---- building -----------------------------------------------------------------------------
    @classmethod
    def build(cls, encoder: "TextEncoder", events: Iterable[str] = ()) -> "TextConditioner":
        """Encodes the 81 action captions in one call (and `events`, if any, in one more)."""
        cond = cls(
            name=encoder.name,
            model_id=encoder.model_id,
            dim=encoder.dim,
            tokens_per_text=encoder.tokens_per_text,
            actions=[torch.zeros(0, encoder.dim)] * NUM_ACTIONS,
            encoder=encoder,
        )
        cond.actions = cond._encode(action_vocabulary())
        cond.add_events(events)
        return cond

    @classmethod
    def from_cache(
        cls, path: str | Path, encoder_factory: "Callable[[], TextEncoder] | None" = None
    ) -> "TextConditioner":
        """Loads a cache file (or the one cache inside `<folder>` or `<folder>/text_cache`).

        Without `encoder_factory` only cached texts can be used; others raise UnknownTextError (a KeyError) naming the file.
        """
        path = _find_cache_file(Path(path))
        tensors, meta = load_safetensors(path)
        if meta.get("format") != CACHE_FORMAT:
            raise CheckpointError(
                f"{path} is not a yume-env text cache (format {meta.get('format')!r}, expected {CACHE_FORMAT!r})"
            )
        try:
            vocab = json.loads(meta["actions"])
            event_texts = json.loads(meta["events"])
            tokens = meta["tokens_per_text"]
            cond = cls(
                name=meta["encoder"],
                model_id=meta["model_id"],
                dim=int(meta["dim"]),
                tokens_per_text=None if tokens == "none" else int(tokens),
                actions=_unstack(tensors["action_embeddings"], tensors["action_lengths"]),
                events=dict(zip(event_texts, _unstack(tensors["event_embeddings"], tensors["event_lengths"]))),
                encoder_factory=encoder_factory,
                source=path,
            )
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"{path} is an incomplete text cache ({exc!r}); delete it to rebuild it") from exc
        if vocab != action_vocabulary():
            raise CheckpointError(
                f"{path} caches other action captions than yume_env.actions.action_vocabulary(); delete it to rebuild it"
            )
        return cond

    @classmethod
    def open(
        cls,
        folder: str | Path,
        *,
        name: str,
        model_id: str,
        dim: int,
        encoder_factory: "Callable[[], TextEncoder]",
        write: bool = True,
    ) -> "TextConditioner":
        """Reuses `folder/text_cache/<name>.safetensors` when it was made by the same encoder
        (name, weights id, dim, action captions); otherwise builds it (loading the encoder) and,
        with `write`, stores it. The encoder itself is only loaded when a text needs encoding."""
        path = cache_path(folder, name)
        if path.is_file():
            try:
                cond = cls.from_cache(path, encoder_factory=encoder_factory)
                if (cond.name, cond.model_id, cond.dim) == (name, model_id, int(dim)):
                    return cond
                log.warning(
                    "text cache %s is for %s (dim %d), not %s (dim %d): rebuilding it",
                    path,
                    cond.model_id,
                    cond.dim,
                    model_id,
                    dim,
                )
            except CheckpointError as exc:
                log.warning("text cache %s unusable (%s): rebuilding it", path, exc)
        cond = cls.build(encoder_factory())
        cond._encoder_factory = encoder_factory
        if cond.dim != int(dim):
            raise ValueError(
                f"text encoder {name!r} gives {cond.dim}-d embeddings but the model expects text_dim {dim}"
            )
        if write:
            try:
                cond.save(folder)
            except OSError as exc:  # e.g. a read-only installed package: keep the in-memory cache
                warnings.warn(f"could not write the text cache {path} ({exc}); action embeddings stay in memory")
        return cond

    # ---- encoding -----------------------------------------------------------------------------
    @property
    def has_encoder(self) -> bool:
        return self._encoder is not None or self._encoder_factory is not None

    def _encode(self, texts: list[str]) -> list[torch.Tensor]:
        if self._encoder is None:
            if self._encoder_factory is None:
                where = f"the text cache {self.source}" if self.source else "this conditioner's cache"
                raise UnknownTextError(
                    f"text {texts[0]!r} is not in {where} and no {self.name!r} text encoder is available; "
                    f"use one of the cached events ({', '.join(repr(t) for t in list(self.events)[:8]) or 'none'}) "
                    "or build the cache where the encoder is installed"
                )
            self._encoder = self._encoder_factory()
        emb, mask = self._encoder.encode(texts)
        if emb.shape[-1] != self.dim:
            raise ValueError(f"text encoder gave {emb.shape[-1]}-d embeddings, the cache holds {self.dim}-d ones")
        self.encoder_calls += 1
        self.texts_encoded += len(texts)
        # kept in the encoder's dtype (umT5: bf16, half the cache size of float32); contexts are float32
        return [emb[i][mask[i]].clone() for i in range(len(texts))]

    def _empty(self) -> torch.Tensor:
        return torch.zeros(self.tokens_per_text or 0, self.dim)

    def add_events(self, texts: Iterable[str]) -> None:
        """Encodes (in one call) the texts not cached yet."""
        new = sorted({check_event_text(t).strip() for t in texts} - set(self.events) - {""})
        for text, emb in zip(new, self._encode(new) if new else []):
            self._remember(text, emb)

    def _remember(self, text: str, emb: torch.Tensor) -> None:
        self.events[text] = emb
        while len(self.events) > MAX_EVENTS:
            self.events.popitem(last=False)

    def event_tokens(self, text: str) -> torch.Tensor:
        """(n, dim) tokens of an event text; "" is zeros; encodes only texts never seen."""
        text = check_event_text(text).strip()
        if not text:
            return self._empty()
        if text not in self.events:
            self._remember(text, self._encode([text])[0])
        self.events.move_to_end(text)
        return self.events[text]

    def action_tokens(self, flat_action: int) -> torch.Tensor:
        if not 0 <= int(flat_action) < NUM_ACTIONS:
            raise ValueError(f"flat action must be in [0, {NUM_ACTIONS}), got {flat_action!r}")
        return self.actions[int(flat_action)]

    def context(
        self,
        flat_actions: Sequence[int],
        events: Sequence[str],
        length: int,
        captions: bool = True,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """(B, length, dim) float32: per world [action tokens, event tokens], zero-padded or cut;
        with captions=False [event tokens] alone (worlds whose actions are not Yume's).

        One gather for the whole batch from a table of the action tokens and the batch's distinct
        events (a few small ops per world made a batched env step launch-bound on a GPU). With
        `device`, the table stays there (built again only when the batch's events change) and only
        the gather's row indices travel, without a sync (`yume_env.host_to_device.to_device`)."""
        if len(flat_actions) != len(events):
            raise ValueError(f"got {len(flat_actions)} actions but {len(events)} events")
        acts = np.asarray(flat_actions, dtype=np.int64).reshape(-1)
        if not captions:
            acts = np.zeros_like(acts)
        bad = (acts < 0) | (acts >= NUM_ACTIONS)
        if bad.any():
            raise ValueError(
                f"flat action must be in [0, {NUM_ACTIONS}), got {flat_actions[int(np.flatnonzero(bad)[0])]!r}"
            )
        table, a_start, a_len = self._action_rows()
        texts = [e.strip() for e in events]
        row = {t: i for i, t in enumerate(dict.fromkeys(texts))}
        tokens = [self.event_tokens(t).float() for t in row]  # checked and cached here, on the host
        e_len = np.array([t.shape[0] for t in tokens], dtype=np.int64)
        e_start = len(table) + np.cumsum(e_len) - e_len  # event rows follow the action table
        which = np.array([row[t] for t in texts], dtype=np.int64)
        # the table row that context token p of each world reads: its action's tokens, then its
        # event's, then the zero row (the action table's last)
        p = np.arange(int(length))[None, :]
        la, le = (a_len[acts] if captions else np.zeros_like(acts))[:, None], e_len[which][:, None]
        rows = np.where(
            p < la, a_start[acts][:, None] + p, np.where(p < la + le, e_start[which][:, None] + p - la, len(table) - 1)
        )
        if device is None:
            return torch.cat([table, *tokens])[torch.from_numpy(rows)]
        return self._device_table(table, tuple(row), tokens, device)[to_device(rows, device, torch.long)]

    def _device_table(self, table: torch.Tensor, texts: tuple[str, ...], tokens: list, device) -> torch.Tensor:
        """[action table, the events' tokens] on `device`, kept while the same events (and actions) come."""
        key = (table, texts, str(torch.device(device)))
        cached = self._device_rows
        if cached is None or cached[0][0] is not table or cached[0][1:] != key[1:]:
            self._device_rows = cached = (key, to_device(torch.cat([table, *tokens]), device))
        return cached[1]

    def _action_rows(self) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """The 81 action captions' tokens as the rows of one float32 table (a copy of `actions`)
        followed by a zero row, with each caption's first row and token count; built once (again if
        `actions` is replaced)."""
        if self._rows is None or self._rows[0] is not self.actions:
            lengths = np.array([a.shape[0] for a in self.actions], dtype=np.int64)
            table = torch.cat([*(a.float() for a in self.actions), torch.zeros(1, self.dim)])
            self._rows = (self.actions, table, np.cumsum(lengths) - lengths, lengths)
        return self._rows[1:]

    # ---- saving -------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Writes `folder/text_cache/<name>.safetensors` (actions and every cached event), atomically."""
        path = cache_path(folder, self.name)
        actions, action_lengths = _pad_stack(self.actions, self.dim)
        texts = list(self.events)
        events, event_lengths = _pad_stack([self.events[t] for t in texts], self.dim)
        meta = {
            "format": CACHE_FORMAT,
            "encoder": self.name,
            "model_id": self.model_id,
            "dim": str(self.dim),
            "tokens_per_text": "none" if self.tokens_per_text is None else str(self.tokens_per_text),
            "actions": json.dumps(action_vocabulary()),
            "events": json.dumps(texts),
        }
        save_safetensors(
            path,
            {
                "action_embeddings": actions,
                "action_lengths": action_lengths,
                "event_embeddings": events,
                "event_lengths": event_lengths,
            },
            metadata=meta,
        )
        return path


def _find_cache_file(path: Path) -> Path:
    if path.is_file():
        return path
    for folder in (path / CACHE_DIR, path):
        if folder.is_dir():
            files = sorted(folder.glob("*.safetensors"))
            if len(files) == 1:
                return files[0]
            if len(files) > 1:
                raise ValueError(
                    f"{folder} holds several text caches ({', '.join(f.name for f in files)}); pass the file"
                )
    raise FileNotFoundError(
        f"no text cache at {path}: expected a file or a folder with {CACHE_DIR}/<encoder>.safetensors "
        "(written by save_pretrained or TextConditioner.save)"
    )
