"""Weight streaming: keep a DiT's blocks in (pinned) CPU memory and bring each to the GPU only for its forward.

Yume-5B's DiT is 10 GB in bf16; its 30 blocks are 97% of it. `BlockStreamer` leaves the small
parts (embeddings, head, TSCM embedders) on the GPU and hooks every block: before block i runs,
its weights are on the GPU (copied on a side stream, started while block i-1 computed); after it
ran, they are dropped again. At most `prefetch + 1` blocks are resident, ~0.35 GB each, so the
DiT needs ~1.3 GB of GPU memory instead of 10 GB, at the price of one host-to-device copy of the
weights per forward (PCIe-bound: about 0.4 s per forward at 25 GB/s).
"""

from __future__ import annotations

import torch
from torch import nn


class BlockStreamer:
    """Streams `model.blocks` (an nn.ModuleList) to `device`; the rest of `model` moves there once.

    Works on any device pair (on CPU it only swaps storages, which the tests use); the overlap of
    copies and compute needs CUDA. `remove()` detaches the hooks and leaves the blocks on the CPU.
    """

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device,
        prefetch: int = 1,
        keep_resident: tuple[str, ...] = ("memory",),
        entry_points: tuple[str, ...] = ("history_kv", "cross_attn.context_kv"),
    ):
        self.device = torch.device(device)
        # Small submodules of each block that stay on the device: the channel-stream read
        # (`memory`, ~6 MB a block) is also used outside the block's forward (`update_memory`).
        self.keep_resident = tuple(keep_resident)
        self.blocks = list(model.blocks)
        self.prefetch = max(0, int(prefetch))
        cuda = self.device.type == "cuda"
        # The CPU copies of each block's tensors (pinned, so copies can run asynchronously).
        self._host: list[dict[str, torch.Tensor]] = []
        for blk in self.blocks:
            host = {}
            for name, t in _tensors(blk, self.keep_resident, resident=True):
                t.data = t.data.to(self.device)
            for name, t in self._streamed(blk):
                data = t.data.cpu()
                host[name] = data.pin_memory() if cuda else data
                t.data = host[name]
            self._host.append(host)
        block_ids = {id(b) for b in self.blocks}
        for name, child in model.named_children():
            if id(child) not in block_ids and name != "blocks":
                child.to(self.device)
        for name, p in list(model.named_parameters(recurse=False)) + list(model.named_buffers(recurse=False)):
            p.data = p.data.to(self.device)
        self._stream = torch.cuda.Stream(self.device) if cuda else None
        self._ready: dict[int, torch.cuda.Event | None] = {}
        self._handles = []
        for i, blk in enumerate(self.blocks):
            self._handles.append(blk.register_forward_pre_hook(self._make_pre(i)))
            self._handles.append(blk.register_forward_hook(self._make_post(i)))
        # Block methods the DiT calls outside the block's forward (text K/V once per event, the
        # last block's history K/V once per chunk): forward hooks never see them, so each is
        # wrapped to bring its block's weights over for the call.
        self._patched: list[tuple[nn.Module, str]] = []
        for i, blk in enumerate(self.blocks):
            for path in entry_points:
                owner_path, _, method = path.rpartition(".")
                owner = blk.get_submodule(owner_path) if owner_path else blk
                if hasattr(owner, method):
                    setattr(owner, method, self._make_entry(i, getattr(owner, method)))
                    self._patched.append((owner, method))

    # ------------------------------------------------------------------ hooks
    def _load(self, i: int) -> None:
        if i in self._ready or i >= len(self.blocks):
            return
        blk, host = self.blocks[i], self._host[i]
        if self._stream is None:
            for name, t in self._streamed(blk):
                t.data = host[name].to(self.device)
            self._ready[i] = None
            return
        with torch.cuda.stream(self._stream):
            for name, t in self._streamed(blk):
                t.data = host[name].to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self._stream)
        self._ready[i] = event

    def _make_pre(self, i: int):
        def pre(module, args):
            self._load(i)
            event = self._ready[i]
            if event is not None:
                main = torch.cuda.current_stream(self.device)
                main.wait_event(event)
                for _, t in self._streamed(module):
                    t.data.record_stream(main)  # allocated on the side stream, used on this one
            for j in range(i + 1, i + 1 + self.prefetch):
                self._load(j % len(self.blocks))  # wraps: the next forward starts at block 0
            return None

        return pre

    def _make_post(self, i: int):
        def post(module, args, output):
            for name, t in self._streamed(module):
                t.data = self._host[i][name]
            self._ready.pop(i, None)
            return None

        return post

    def _make_entry(self, i: int, method):
        pre, post = self._make_pre(i), self._make_post(i)

        def call(*args, **kwargs):
            pre(self.blocks[i], args)
            try:
                return method(*args, **kwargs)
            finally:
                post(self.blocks[i], args, None)

        return call

    def resident_blocks(self) -> int:
        """How many blocks have their weights on the device now."""
        return len(self._ready)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for owner, method in self._patched:
            delattr(owner, method)  # the instance attribute shadowed the class's method
        self._patched.clear()

    def _streamed(self, block: nn.Module):
        return _tensors(block, self.keep_resident, resident=False)


def _tensors(module: nn.Module, keep: tuple[str, ...] = (), resident: bool = False):
    """(name, tensor) of a block; with `keep`, only those under (resident=True) or outside the kept submodules."""
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        inside = any(name == k or name.startswith(k + ".") for k in keep)
        if inside == resident:
            yield name, t
