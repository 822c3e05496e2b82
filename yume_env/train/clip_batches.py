"""What the training stages read from clips: the text context of a step, and the poses of its frames.

`ContextTable` turns (flat action, event text) pairs into the DiT's [action, event] context by
tensor indexing (equal to `TextConditioner.context`), so a batch costs no per-example host work;
`contexts` reads a clip batch's steps through it.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from yume_env.actions import NUM_ACTIONS
from yume_env.data.sim_clips import Clips
from yume_env.host_to_device import to_device
from yume_env.vocabulary import YUME, ActionVocabulary


class ContextTable:
    """Contexts by tensor indexing: the 81 action captions as one (81, length, dim) table and each
    event text once as a row of an event table, both kept on the device. Equal to
    `text.context(flat, events, length)`: [action tokens, event tokens], cut to `length`, zero-padded."""

    def __init__(self, text, length: int, device, captions: bool = True):
        self.text, self.length, self.device, self.captions = text, int(length), torch.device(device), bool(captions)
        self.dim = int(text.dim)
        # worlds whose actions have no captions (not Yume's vocabulary) read the event alone
        acts = (
            [text.action_tokens(a).float()[: self.length] for a in range(NUM_ACTIONS)]
            if captions
            else [torch.zeros(0, self.dim)]
        )
        self.actions = torch.stack([F.pad(a, (0, 0, 0, self.length - a.shape[0])) for a in acts]).to(self.device)
        self.action_len = torch.tensor([a.shape[0] for a in acts]).to(self.device)
        self.rows: dict[str, int] = {}
        self.events = torch.zeros(0, self.length, self.dim, device=self.device)
        self.event_len = torch.zeros(0, dtype=torch.long, device=self.device)

    def event_rows(self, events: list[str]) -> list[int]:
        new = [e for e in dict.fromkeys(events) if e not in self.rows]
        if new:  # rare: each event text is added once
            toks = [self.text.event_tokens(e).float()[: self.length] for e in new]
            pad = torch.stack([F.pad(x, (0, 0, 0, self.length - x.shape[0])) for x in toks]).to(self.device)
            self.events = torch.cat([self.events, pad])
            self.event_len = torch.cat([self.event_len, torch.tensor([x.shape[0] for x in toks]).to(self.device)])
            for e in new:
                self.rows[e] = len(self.rows)
        return [self.rows[e] for e in events]

    def __call__(self, flat: torch.Tensor, events: list[str]) -> torch.Tensor:
        """flat (B,) long on the device, events: B texts -> (B, length, dim) float32."""
        flat = flat.to(self.device) if self.captions else torch.zeros(len(events), dtype=torch.long, device=self.device)
        rows = to_device(self.event_rows(events), self.device, torch.long)
        ctx = self.actions[flat]  # (B, length, dim)
        pos = (
            torch.arange(self.length, device=self.device)[None, :] - self.action_len[flat][:, None]
        )  # event token index
        ok = (pos >= 0) & (pos < self.event_len[rows][:, None])
        ev = self.events[rows[:, None], pos.clamp(0, self.length - 1)]  # (B, length, dim)
        return torch.where(ok[..., None], ev, ctx)


_TABLES: dict[tuple, ContextTable] = {}


def context_table(text, length: int, device, captions: bool = True) -> ContextTable:
    """The (cached) table of a text conditioner for contexts of `length` tokens on `device`."""
    key = (id(text), int(length), str(torch.device(device)), bool(captions))
    table = _TABLES.get(key)
    if table is None or table.text is not text:
        table = _TABLES[key] = ContextTable(text, length, device, captions)
    return table


def flat_actions(clips: Clips, steps: list[int], vocabulary: ActionVocabulary = YUME) -> torch.Tensor:
    """(B,) flat actions (row-major over the vocabulary's components) of step `steps[i]` of clip i."""
    acts = clips.actions[
        torch.arange(len(steps), device=clips.actions.device), to_device(steps, clips.actions.device, torch.long)
    ]
    flat = torch.zeros(len(steps), dtype=torch.long, device=acts.device)
    for n, component in zip(vocabulary.nvec, acts.unbind(1)):
        flat = flat * n + component.long()
    return flat


def contexts(
    text, clips: Clips, steps: list[int], length: int, device, vocabulary: ActionVocabulary = YUME
) -> torch.Tensor:
    """(B, length, dim) [action caption, event] context for step `steps[i]` of clip i (the event
    alone for vocabularies without captions)."""
    steps = [int(s) for s in steps]
    events = [clips.events[i][s] for i, s in enumerate(steps)]
    table = context_table(text, length, device, captions=vocabulary.is_yume)
    return table(flat_actions(clips, steps, vocabulary).to(device), events)
