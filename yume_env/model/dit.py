"""`WanDiT`: the Wan2.2 TI2V-style diffusion transformer with both TSCM streams.

Data flow for one chunk (B worlds, each with its own history):

1. `encode_history(history)`: each world's history latents are cut into bands by the TSCM schedule
   (`tscm.plan_history`), each band patchified with its own kernel, given 3-axis RoPE positions,
   and padded to the batch with a key mask -> `HistoryContext`. In "causal" mode each block's
   history keys/values are also computed once (here or at the first forward) and reused for
   every denoising step of the chunk.
2. `forward(x, timestep, context, history, memory)`: the current chunk (B, C, F, h, w) is
   patchified at `config.patch_size` ((1, 2, 2) for Yume-5B); history tokens run at timestep 0 and current tokens at `timestep`;
   blocks attend over history + current ("global") or current -> history + current ("causal");
   current tokens also read the channel-stream memory; the head unpatchifies the current chunk.
3. `update_memory(state, new_latents)`: adds latents to a world's channel-stream state, O(new).

Parameter names equal the published Yume-5B state dict; the channel stream's parameters
(`memory_embedding.*`, `blocks.N.memory.*`) are extra (`extra_state_dict_keys`); the optional learned
action embedding (`action_embedding.*`) exists only with `config.action_embedding` (off for Yume-5B).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from yume_env.host_to_device import to_device
from yume_env.model import sampler
from yume_env.model.config import WorldModelConfig
from yume_env.model.dit_blocks import Head, RMSNorm, WanBlock, linear_f32, sinusoidal_embedding
from yume_env.model.pose_memory import PoseEmbedding
from yume_env.model.rope import layout_positions, rope_freqs
from yume_env.model.rows import group_rows, row_index, take_rows
from yume_env.model.tscm import Band, BandPlan, band_columns, get_schedule, plan_history
from yume_env.model.tscm_memory import MemoryBatch, MemoryRead, MemoryState, stack_memory


@dataclass
class HistoryContext:
    """Embedded history of a batch of worlds (from `WanDiT.encode_history`).

    tokens (B, H, dim) zero-padded; freqs (B, H, head_dim/2) complex RoPE rotations; valid (B, H)
    key mask; lengths: history tokens per world; next_t: temporal RoPE position of each world's
    current chunk; memory: channel-stream states passed to encode_history (used when forward gets
    none). Per-chunk caches (filled when gradients are off, keyed by the text context tensor
    itself: the same object hits, comparing values would wait for the GPU): the blocks' history
    keys/values ("causal" mode) and the blocks' text keys/values.
    """

    tokens: torch.Tensor
    freqs: torch.Tensor
    valid: torch.Tensor
    lengths: list[int]
    next_t: list[int]
    memory: list[MemoryState | None] | None = None
    noise_level: torch.Tensor | None = None  # (B,) in [0, 1]: how noisy each world's history is (None: clean)
    kv_cache: list[tuple[torch.Tensor, torch.Tensor]] | None = field(default=None, repr=False)
    kv_cache_context: torch.Tensor | None = field(default=None, repr=False)
    text_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = field(default=None, repr=False)
    text_kv_context: torch.Tensor | None = field(default=None, repr=False)
    step_cache: dict = field(default_factory=dict, repr=False)  # current-chunk RoPE, stacked memory

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    @property
    def max_tokens(self) -> int:
        return self.tokens.shape[1]

    @property
    def padded(self) -> bool:
        return min(self.lengths, default=0) != self.max_tokens


def embedder_name(kernel: int, pre_shrink: int, base: int) -> str:
    """Published names: kernel 2 -> patch_embedding, 4 -> patch_embedding_2x, ..., pre-shrink
    stride 4 -> patch_embedding_2x_f."""
    if pre_shrink > 1:
        return f"patch_embedding_{pre_shrink // base}x_f"
    return "patch_embedding" if kernel == base else f"patch_embedding_{kernel // base}x"


class WanDiT(nn.Module):
    """Wan2.2 TI2V DiT with TSCM memory; build with `build_dit(config)`. See the module docstring
    for the per-chunk call sequence and `docs/model_dit.md` for the design."""

    def __init__(self, config: WorldModelConfig):
        super().__init__()
        self.config = c = config
        self.schedule = get_schedule(c.tscm_schedule)
        pt, ph, pw = c.patch_size
        if ph != pw:
            raise ValueError(f"TSCM bands need a square spatial patch, got patch_size {c.patch_size}")
        self.patch_embedding = nn.Conv3d(c.latent_channels, c.dim, kernel_size=c.patch_size, stride=c.patch_size)
        self.text_embedding = nn.Sequential(
            nn.Linear(c.text_dim, c.dim), nn.GELU(approximate="tanh"), nn.Linear(c.dim, c.dim)
        )
        self.time_embedding = nn.Sequential(nn.Linear(c.freq_dim, c.dim), nn.SiLU(), nn.Linear(c.dim, c.dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(c.dim, c.dim * 6))
        mem = (
            (lambda: MemoryRead(c.dim, c.memory_channels, c.memory_heads, c.memory_head_dim, c.eps))
            if c.memory_enabled
            else (lambda: None)
        )
        self.blocks = nn.ModuleList(
            WanBlock(c.dim, c.ffn_dim, c.num_heads, c.qk_norm, c.cross_attn_norm, c.eps, mem())
            for _ in range(c.num_layers)
        )
        self.head = Head(c.dim, c.latent_channels, c.patch_size, c.eps)
        # TSCM history embedders, one per (kernel, pre_shrink) of the schedule, under published names.
        for kernel, shrink in sorted(self.schedule.kernels()):
            if kernel != ph:
                name = embedder_name(kernel, 1, ph)
                if not hasattr(self, name):
                    self.add_module(name, nn.Conv3d(c.latent_channels, c.dim, (1, kernel, kernel), (1, kernel, kernel)))
            if shrink > 1:
                self.add_module(
                    embedder_name(kernel, shrink, ph),
                    nn.Conv3d(c.latent_channels, c.latent_channels, (1, shrink, shrink), (1, shrink, shrink)),
                )
        self.memory_embedding = (
            nn.Conv3d(c.latent_channels, c.memory_channels, c.patch_size, c.patch_size) if c.memory_enabled else None
        )
        # a learned embedding of the flat action (key * 9 + camera), added to the time embedding of
        # the current chunk: a direct control signal next to the caption (not in the published model)
        self.action_embedding = nn.Embedding(c.vocabulary.size, c.dim) if c.action_embedding else None
        # each history frame's pose relative to the chunk's, added to the frame's tokens (pose_memory.py)
        self.pose_embedding = PoseEmbedding(c.dim) if c.pose_memory else None
        # the newest history frame, embedded at the position of each current token (the frame
        # stacking of DIAMOND and GameNGen: copying what stays in view is a local operation), with
        # the history's noise level (not in the published model)
        self.frame_embedding = (
            nn.Conv3d(c.latent_channels, c.dim, c.patch_size, c.patch_size) if c.frame_conditioning else None
        )
        self.frame_level = nn.Linear(c.freq_dim, c.dim) if c.frame_conditioning else None
        if not self.patch_embedding.weight.is_meta:  # meta tensors hold no values to initialise
            self.init_weights()

    # ------------------------------------------------------------------ weights
    @torch.no_grad()
    def init_history_embedders(self, names: set[str] | None = None) -> None:
        """History embedders from the current patch embedding: a kernel-k conv is the patch conv
        resampled to k (a kernel-k token starts as the mean of the tokens it covers), a pre-shrink
        conv a per-channel mean. `names`: only these embedders (e.g. the ones a new schedule adds
        to a trained DiT, `yume_env.model.retarget`); None: all."""
        base = self.config.patch_size[1]
        for kernel, shrink in self.schedule.kernels():
            name = embedder_name(kernel, 1, base)
            if kernel != base and (names is None or name in names):
                conv = getattr(self, name)
                w = F.interpolate(
                    self.patch_embedding.weight, size=(1, kernel, kernel), mode="trilinear", align_corners=False
                )
                conv.weight.copy_(w * (base / kernel) ** 2)
                conv.bias.copy_(self.patch_embedding.bias)
            name = embedder_name(kernel, shrink, base)
            if shrink > 1 and (names is None or name in names):
                conv = getattr(self, name)
                eye = torch.eye(conv.weight.shape[0], device=conv.weight.device, dtype=conv.weight.dtype)
                conv.weight.copy_(eye[:, :, None, None, None].expand_as(conv.weight) / shrink**2)
                conv.bias.zero_()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Set every parameter (so `to_empty` + `init_weights` gives a complete model): Wan's
        initialisation; coarser history embedders start as the base patch embedding stretched over
        their kernel (published `upsample_conv3d_weights_auto`, scaled to the larger area), the
        pre-shrink as an average pool, memory gates at zero."""
        dim = self.config.dim
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.LayerNorm, RMSNorm)):
                if getattr(m, "weight", None) is not None:
                    nn.init.ones_(m.weight)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
        for mod in [blk.modulation for blk in self.blocks] + [self.head.modulation]:
            nn.init.normal_(mod, std=dim**-0.5)  # Wan: randn / sqrt(dim)
        nn.init.xavier_uniform_(self.patch_embedding.weight.flatten(1))
        nn.init.zeros_(self.patch_embedding.bias)
        for seq in (self.text_embedding, self.time_embedding):
            for m in seq.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=0.02)
        nn.init.zeros_(self.head.head.weight)
        self.init_history_embedders()
        if self.memory_embedding is not None:
            nn.init.xavier_uniform_(self.memory_embedding.weight.flatten(1))
            nn.init.zeros_(self.memory_embedding.bias)
            for blk in self.blocks:
                nn.init.zeros_(blk.memory.gate)
        if self.pose_embedding is not None:  # zero output: unchanged until it learns
            self.pose_embedding.reset_parameters()
        if self.action_embedding is not None:  # zero: a fresh model is unchanged until it learns
            nn.init.zeros_(self.action_embedding.weight)
        if self.frame_embedding is not None:  # zero: unchanged until it learns
            for m in (self.frame_embedding, self.frame_level):
                nn.init.zeros_(m.weight)
                nn.init.zeros_(m.bias)

    def extra_state_dict_keys(self) -> list[str]:
        """Keys the published Yume-5B files lack (the channel stream), so loaders may accept
        published files without them (they keep their zero-gate initialisation)."""
        return [k for k in self.state_dict() if k.startswith("memory_embedding.") or ".memory." in k]

    def published_state_dict_keys(self) -> list[str]:
        extra = set(self.extra_state_dict_keys())
        return [k for k in self.state_dict() if k not in extra]

    @property
    def dtype(self) -> torch.dtype:
        return self.patch_embedding.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.patch_embedding.weight.device

    # ------------------------------------------------------------------ embeddings
    def _time(self, timestep: torch.Tensor, action: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """timestep (N,) -> time embedding (N, dim) and modulation (N, 6, dim), float32.
        action (N,) flat actions (or -1: none) add the learned action embedding, when the model has one."""
        te, tp = self.time_embedding, self.time_projection
        e = linear_f32(te[2], F.silu(linear_f32(te[0], sinusoidal_embedding(self.config.freq_dim, timestep))))
        if action is not None and self.action_embedding is not None:
            a = action.to(e.device).long()
            e = e + self.action_embedding(a.clamp_min(0)).float() * (a >= 0)[:, None]
        e0 = linear_f32(tp[1], F.silu(e)).unflatten(1, (6, self.config.dim))
        return e, e0

    def _context(self, context: torch.Tensor) -> torch.Tensor:
        L, n = context.shape[1], self.config.text_tokens
        if L > n:
            raise ValueError(f"context has {L} tokens but the model takes at most text_tokens={n}")
        if L < n:  # the published model zero-pads the text to its full length and attends to it
            context = F.pad(context, (0, 0, 0, n - L))
        return self.text_embedding(context.to(self.dtype))

    def _embed_band(self, frames: torch.Tensor, band: BandPlan) -> torch.Tensor:
        """frames (G, C, n, h, w) of G worlds -> (G, n * gh * gw, dim) tokens with the band's kernel."""
        base = self.config.patch_size[1]
        x = frames.to(self.dtype)
        if band.pre_shrink > 1:
            x = _pad_to(x, band.pre_shrink)
            x = getattr(self, embedder_name(band.kernel, band.pre_shrink, base))(x)
        x = getattr(self, embedder_name(band.kernel, 1, base))(_pad_to(x, band.kernel))
        return x.flatten(2).transpose(1, 2)

    # ------------------------------------------------------------------ TSCM temporal-spatial stream
    def encode_history(
        self,
        history: torch.Tensor | list[torch.Tensor],
        memory: list[MemoryState | None] | None = None,
        context: torch.Tensor | None = None,
        n_history: list[int] | None = None,
        poses: torch.Tensor | list[torch.Tensor] | None = None,
        recall: tuple | list[tuple[torch.Tensor, torch.Tensor] | None] | None = None,
        noise_level: torch.Tensor | None = None,
        stored: list[int] | None = None,
    ) -> HistoryContext:
        """Embed each world's history latents.

        history: a list of (C, N_i, h, w) per world (N_i may be 0 and may differ), or the batched
        form `History` keeps: (B, C, K, h, w) with world i's `stored[i]` latents in its first columns.
        poses: per world (N_i, POSE_FEATURES) features of each stored history frame's pose seen
        from the chunk being generated (`pose_memory.relative_features`), as a list or batched
        (B, K, POSE_FEATURES), for DiTs with `config.pose_memory` (ignored by others); None: no pose.

        recall: the views recalled by pose (`yume_env.model.recall`), per world None or (latents
        (C, R, h, w), their pose features (R, POSE_FEATURES)), or batched as (latents (B, C, R, h, w),
        features (B, R, F), has: list[bool] of the worlds that recall); embedded at the current
        patch size with their pose, at temporal positions -R..-1, after the TSCM bands.

        n_history: true history lengths when a world holds only `tscm.frames_to_keep(schedule,
        n_history[i])` (bounded storage, see `tscm.append_history`); default: the history is full.
        context (B, L, text_dim): in "causal" mode, precompute the blocks' history keys/values now
        (otherwise at the first forward, which has the context anyway).
        noise_level (B,) in [0, 1]: the flow noise level of each world's history (training adds
        noise to the history so the world learns to correct its own imperfect frames); history tokens
        run at timestep noise_level * 1000. None: clean history at timestep 0, as published.

        Worlds are embedded per distinct (length, stored frames) and layout, a few ops per band and
        layout whatever the number of worlds.
        """
        dim, hd = self.config.dim, self.config.head_dim
        latents, stored, poses, recall = self._batched_history(history, stored, poses, recall)
        B, device = latents.shape[0], latents.device
        n_history = list(stored) if n_history is None else [int(n) for n in n_history]
        has = [False] * B if recall is None else [bool(h) for h in recall[2]]
        with_pose = poses is not None and self.pose_embedding is not None
        # one layout per distinct (length, stored, recalls); worlds of equal layout and columns embed together
        layouts: dict[tuple, list] = {}
        for (n, k, r), members in group_rows(n_history, stored, has):
            plan = plan_history(self.schedule, n, tuple(latents.shape[-2:]))
            cols = band_columns(self.schedule, n, k)
            if cols is None:
                raise ValueError(
                    f"a history of {n} latents stores {k} frames; expected {n} (full) or "
                    f"{len(plan.frame_indices)} (frames_to_keep({n}))"
                )
            layouts.setdefault((plan.layout, cols, r), [plan, []])[1].append(members)
        lengths = np.zeros(B, dtype=np.int64)
        next_t = np.zeros(B, dtype=np.int64)
        group_out = []  # (members, index, tokens (G, T, dim), positions (T, 3)) per layout
        for (_, cols, r), (plan, parts) in layouts.items():
            members = np.sort(np.concatenate(parts))
            index = row_index(members, B, device)
            rows = take_rows(latents, index)
            row_poses = take_rows(poses, None if index is None else index.to(poses.device)) if with_pose else None
            t_parts = []
            for band, band_cols in zip(plan.bands, cols):
                toks = self._embed_band(rows[:, :, _as_index(band_cols, rows.shape[2])], band)
                if with_pose:  # one vector per frame, on each of its gh * gw tokens
                    # a fresh copy, as a gathered one would be: a strided or offset view can take
                    # another matmul path and round differently
                    feats = row_poses[:, _as_index(band_cols, row_poses.shape[1])].to(device).clone()
                    emb = self.pose_embedding(feats.to(toks.dtype))
                    toks = toks + emb.repeat_interleave(band.grid[0] * band.grid[1], dim=1)
                t_parts.append(toks)
            grids = tuple((b.t0, len(b.frames), *b.grid) for b in plan.bands)
            if r:
                toks, grid = self._embed_recall(take_rows(recall[0], index), take_rows(recall[1], index))
                t_parts.append(toks)
                grids += (grid,)
            group_toks = (
                torch.cat(t_parts, 1) if t_parts else torch.zeros(len(members), 0, dim, dtype=self.dtype, device=device)
            )
            group_out.append((members, index, group_toks, layout_positions(grids, device)))
            lengths[members] = group_toks.shape[1]
            next_t[members] = plan.next_t
        H = int(lengths.max(initial=0))
        if len(group_out) == 1 and group_out[0][1] is None:  # one layout: the group is the batch
            _, _, tokens, pos = group_out[0]
            pos = pos.expand(B, -1, -1)
        else:  # one scatter per layout into the zero-padded batch
            dtype = group_out[0][2].dtype if group_out else self.dtype
            tokens = torch.zeros(B, H, dim, dtype=dtype, device=device)
            pos = torch.zeros(B, H, 3, dtype=torch.long, device=device)
            for members, index, group_toks, group_pos in group_out:
                index = to_device(members, device, torch.long) if index is None else index
                T = group_toks.shape[1]
                tokens[index, :T] = group_toks.to(dtype)
                pos[index, :T] = group_pos
        lengths_list = lengths.tolist()
        valid = torch.arange(H, device=device)[None, :] < to_device(lengths_list, device, torch.long)[:, None]
        freqs = rope_freqs(pos, hd, self.config.rope_theta)
        ctx = HistoryContext(tokens, freqs, valid, lengths_list, next_t.tolist(), memory, noise_level)
        if context is not None and self.config.history_attention != "global" and H:
            self._history_kv(ctx, context)
        return ctx

    def _batched_history(self, history, stored, poses, recall):
        """The list form of `encode_history`'s inputs as its batched form: latents (B, C, K, h, w),
        stored frames per world, poses (B, K, F) or None, recall (latents, features, has) or None."""
        C = self.config.latent_channels
        if torch.is_tensor(history):
            if history.dim() != 5 or history.shape[1] != C:
                raise ValueError(f"history must be (B, C={C}, K, h, w), got {tuple(history.shape)}")
            stored = [history.shape[2]] * history.shape[0] if stored is None else list(stored)
        else:
            for i, lat in enumerate(history):
                if lat.dim() != 4 or lat.shape[0] != C:
                    raise ValueError(f"history[{i}] must be (C={C}, N, h, w), got {tuple(lat.shape)}")
            stored = [lat.shape[1] for lat in history]
            K = max(stored, default=0)
            history = torch.stack([F.pad(lat, (0, 0, 0, 0, 0, K - lat.shape[1])) for lat in history])
            if poses is not None:
                poses = torch.stack([F.pad(p.to(history.device), (0, 0, 0, K - p.shape[0])) for p in poses])
        if recall is not None and not isinstance(recall, tuple):
            has = [r is not None for r in recall]
            if not any(has):
                recall = None
            else:
                ref = next(r for r in recall if r is not None)
                lat = torch.stack([(ref if r is None else r)[0] for r in recall])
                feats = torch.stack([(ref if r is None else r)[1].to(lat.device) for r in recall])
                recall = (lat, feats, has)
        return history, stored, poses, recall

    def _embed_recall(self, latents: torch.Tensor, feats: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """Recalled views of G worlds, latents (G, C, R, h, w) and pose features (G, R, F) -> tokens
        (G, R * gh * gw, dim) at the current patch size plus their pose embedding, and their RoPE
        grid (t0, R, gh, gw): temporal positions before the oldest band's."""
        if self.pose_embedding is None:
            raise ValueError("recalled views carry their pose: this DiT has no pose memory (config.pose_memory)")
        # fresh copies, as stacked ones would be: strided or offset views can round differently
        latents, feats = latents.clone(), feats.to(latents.device).clone()
        R, base = latents.shape[2], self.config.patch_size[1]
        toks = self._embed_band(latents, Band(R, base))
        gh, gw = -(-latents.shape[3] // base), -(-latents.shape[4] // base)
        toks = toks + self.pose_embedding(feats.to(toks.dtype)).repeat_interleave(gh * gw, dim=1)
        return toks, (-R, R, gh, gw)

    def _history_kv(self, history: HistoryContext, context: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Causal and direct modes: every block's rotated history keys/values, cached on `history`
        per context. Causal runs the history tokens through the blocks; direct projects each block's
        from the embedded tokens."""
        if history.kv_cache is not None and history.kv_cache_context is context:
            return history.kv_cache
        B, H = history.batch_size, history.max_tokens
        if history.noise_level is None:
            _, e0 = self._time(torch.zeros(1, device=history.tokens.device))
            mod = e0.unsqueeze(0).expand(B, 1, 6, self.config.dim)
        else:
            _, e0 = self._time(history.noise_level.to(history.tokens.device).float() * 1000.0)
            mod = e0.unsqueeze(1)  # (B, 1, 6, dim)
        x = history.tokens.float()
        if self.config.history_attention == "direct":
            cache = [blk.history_kv(x, mod, history.freqs) for blk in self.blocks]
            if not torch.is_grad_enabled():
                history.kv_cache, history.kv_cache_context = cache, context
            return cache
        text_kv = self._text_kv(context, history)
        mask = _history_mask(history.valid) if history.padded else None
        cache = []
        for blk, tkv in zip(self.blocks[:-1], text_kv):
            x, kv = blk(x, mod, (H,), history.freqs, tkv, mask=mask)
            cache.append(kv)
        cache.append(self.blocks[-1].history_kv(x, mod, history.freqs))
        if not torch.is_grad_enabled():  # a cached graph could not be backpropagated twice
            history.kv_cache, history.kv_cache_context = cache, context
        return cache

    def _text_kv(
        self, context: torch.Tensor, history: HistoryContext | None
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every block's cross-attention keys/values of the text; cached on `history` per context."""
        if history is not None and history.text_kv is not None and history.text_kv_context is context:
            return history.text_kv
        emb = self._context(context)
        text_kv = [blk.cross_attn.context_kv(emb) for blk in self.blocks]
        if history is not None and not torch.is_grad_enabled():
            history.text_kv, history.text_kv_context = text_kv, context
        return text_kv

    # ------------------------------------------------------------------ TSCM channel stream
    def memory_tokens(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (C, n, h, w) -> memory tokens (n * h/2 * w/2, memory_channels)."""
        m = self.memory_embedding(latents.unsqueeze(0).to(self.dtype))
        return m.flatten(2).transpose(1, 2)[0]

    def empty_memory(self) -> MemoryState:
        c = self.config
        kv = torch.zeros(c.num_layers, c.memory_heads, c.memory_head_dim, c.memory_head_dim, device=self.device)
        return MemoryState(kv, torch.zeros(c.num_layers, c.memory_heads, c.memory_head_dim, device=self.device))

    def update_memory(self, memory: MemoryState | None, new_latents: torch.Tensor) -> MemoryState:
        """A new state with `new_latents` (C, n, h, w) added; cost O(n), `memory` is not modified."""
        if self.memory_embedding is None:
            raise ValueError("this model was built with memory_enabled=False; it has no channel-stream memory")
        if new_latents.dim() != 4 or new_latents.shape[0] != self.config.latent_channels:
            raise ValueError(
                f"new_latents must be (C={self.config.latent_channels}, n, h, w), got {tuple(new_latents.shape)}"
            )
        base = memory if memory is not None else self.empty_memory()
        if new_latents.shape[1] == 0:
            return base.clone()
        m = self.memory_tokens(new_latents)
        sums = [blk.memory.summarize(m) for blk in self.blocks]
        kv = base.kv + torch.stack([s[0] for s in sums])
        k_sum = base.k_sum + torch.stack([s[1] for s in sums])
        return MemoryState(kv, k_sum, base.n_latents + new_latents.shape[1], base.n_tokens + m.shape[0])

    def update_memories(
        self, memories: MemoryBatch | list[MemoryState | None], new_latents: torch.Tensor
    ) -> MemoryBatch | list[MemoryState]:
        """`update_memory` for B worlds at once: new_latents (B, C, n, h, w) added to a `MemoryBatch`
        (returns a new one: what `History` keeps) or to B per-world states (returns B new states).
        A few batched ops whatever B; `memories` are not modified."""
        if new_latents.dim() != 5:
            raise ValueError(f"new_latents must be (B, C, n, h, w), got {tuple(new_latents.shape)}")
        B, n = new_latents.shape[0], new_latents.shape[2]
        if len(memories) != B:
            raise ValueError(f"{len(memories)} memories for {B} worlds")
        kv, k_sum, _, tokens = self._summaries(new_latents, [n] * B)  # (B, L, ...)
        if isinstance(memories, MemoryBatch):
            return MemoryBatch(
                memories.kv + kv.transpose(0, 1).to(memories.kv),
                memories.k_sum + k_sum.transpose(0, 1).to(memories.k_sum),
                [m + n for m in memories.n_latents],
                [m + t for m, t in zip(memories.n_tokens, tokens)],
            )
        if any(m is not None for m in memories):
            empty = self.empty_memory()
            kv = kv + torch.stack([(empty if m is None else m).kv.to(kv) for m in memories])
            k_sum = k_sum + torch.stack([(empty if m is None else m).k_sum.to(k_sum) for m in memories])
        return [
            MemoryState(kv_b, ks_b, (0 if m is None else m.n_latents) + n, (0 if m is None else m.n_tokens) + t)
            for kv_b, ks_b, m, t in zip(kv.unbind(0), k_sum.unbind(0), memories, tokens)
        ]

    def memory_summaries(self, latents: torch.Tensor, lengths: torch.Tensor | list[int]) -> list[MemoryState]:
        """Fresh channel-stream states of B worlds at once: world b holds `latents[b, :, :lengths[b]]`
        of latents (B, C, N, h, w). Equal to `[update_memory(None, latents[b, :, :lengths[b]])]`
        (up to float summation order) in a few batched ops instead of B small ones; the states are
        views into batched tensors, and gradients flow through them."""
        kv, k_sum, n_latents, n_tokens = self._summaries(latents, lengths)
        return [MemoryState(*x) for x in zip(kv.unbind(0), k_sum.unbind(0), n_latents, n_tokens)]

    def _summaries(
        self, latents: torch.Tensor, lengths: torch.Tensor | list[int]
    ) -> tuple[torch.Tensor, torch.Tensor, list[int], list[int]]:
        """`memory_summaries` as tensors: kv (B, L, H, dk, dv), k_sum (B, L, H, dk), latents and
        tokens per world."""
        c = self.config
        if self.memory_embedding is None:
            raise ValueError("this model was built with memory_enabled=False; it has no channel-stream memory")
        if latents.dim() != 5 or latents.shape[1] != c.latent_channels:
            raise ValueError(f"latents must be (B, C={c.latent_channels}, N, h, w), got {tuple(latents.shape)}")
        B, _, N = latents.shape[:3]
        if torch.is_tensor(lengths) and lengths.device.type != "cpu":
            lengths, n_host = lengths.long().reshape(-1), None
        else:
            n_host = [int(n) for n in torch.as_tensor(lengths).reshape(-1).tolist()]
            lengths = to_device(n_host, latents.device, torch.long)
        if lengths.shape[0] != B:
            raise ValueError(f"lengths holds {lengths.shape[0]} entries for {B} worlds")
        pt = c.patch_size[0]
        if N == 0 or pt != 1:  # a temporal patch would mix frames across the length cut
            states = [self.update_memory(None, latents[b, :, : int(n)]) for b, n in enumerate(lengths.tolist())]
            return (
                torch.stack([m.kv for m in states]),
                torch.stack([m.k_sum for m in states]),
                [m.n_latents for m in states],
                [m.n_tokens for m in states],
            )
        m = self.memory_embedding(latents.to(self.dtype))  # (B, Cm, N, h', w')
        per_frame = m.shape[3] * m.shape[4]
        mask = torch.arange(N, device=latents.device)[None, :] < lengths[:, None]  # (B, N)
        mask = mask[:, :, None].expand(B, N, per_frame).reshape(B, N * per_frame)
        m = m.flatten(2).transpose(1, 2)  # (B, N * h' * w', Cm), frame-major like the mask
        sums = [blk.memory.summarize_batch(m, mask) for blk in self.blocks]
        kv = torch.stack([s[0] for s in sums], 1)  # (B, L, H, dk, dv)
        k_sum = torch.stack([s[1] for s in sums], 1)
        if n_host is None:  # counts only; one transfer, no per-world sync
            n_host = [int(n) for n in lengths.cpu().tolist()]
        return kv, k_sum, n_host, [n * per_frame for n in n_host]

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        context: torch.Tensor,
        history: HistoryContext | None = None,
        memory: list[MemoryState | None] | None = None,
        use_history_cache: bool = True,
        action: torch.Tensor | None = None,
        frame: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Velocity (eps - x0) for the current chunk x (B, C, F, h, w) at `timestep` (B,) in
        [0, 1000], text `context` (B, L, text_dim); "sample" worlds return the clean chunk, the
        blocks' output F preconditioned as `sampler.preconditioning` says. `memory` defaults to
        `history.memory`. use_history_cache=False (causal mode) recomputes the history with the chunk, each call (direct
        mode reads the history's projected keys/values either way).
        action (B,) flat actions key * 9 + camera: added through the learned action embedding of
        the current chunk's time embedding (models with `config.action_embedding`; else ignored).
        frame (B, C, 1, h, w): the newest history frame, for models with `config.frame_conditioning`
        (its noise level is the history's, `history.noise_level`); with `config.frame_residual` the
        preconditioning denoises the change from that frame, so a fresh DiT returns the frame."""
        c = self.config
        B, C, Fr, h, w = x.shape
        if C != c.latent_channels:
            raise ValueError(f"x must have {c.latent_channels} latent channels, got {C}")
        timestep = torch.as_tensor(timestep, device=x.device).reshape(-1).expand(B)
        if c.prediction == "sample":  # preconditioned: F reads the scaled (residual) input
            t = (timestep.float() / 1000.0).view(B, 1, 1, 1, 1)
            base = frame.float() if c.frame_residual else torch.zeros((), device=x.device)
            y_t = x.float() - (1.0 - t) * base  # the noised change from `base`
            c_in, c_skip, c_out = sampler.preconditioning(t)
            x = c_in * y_t
        cur = self.patch_embedding(x.to(self.dtype))
        if self.frame_embedding is not None:
            if frame is None:
                raise ValueError(
                    "this DiT stacks the newest history frame on the chunk (frame_conditioning): pass frame="
                )
            cur = cur + self.frame_embedding(frame.to(self.dtype)).expand(-1, -1, cur.shape[2], -1, -1)
        grid = cur.shape[2:]
        cur = cur.flatten(2).transpose(1, 2).float()  # (B, S, dim)
        S = cur.shape[1]
        has_hist = history is not None and history.max_tokens > 0
        if history is not None and history.batch_size != B:
            raise ValueError(f"history holds {history.batch_size} worlds but x holds {B}")
        freqs = self._current_freqs(history, tuple(grid), B, x.device)

        level = history.noise_level if history is not None else None
        hist_t = torch.zeros(1, device=x.device) if level is None else level.to(x.device).float() * 1000.0
        n_hist = hist_t.shape[0]  # rows of history modulation: one (clean) or one per world
        act = None
        if action is not None and self.action_embedding is not None:  # history rows get none
            action = torch.as_tensor(action, device=x.device).reshape(-1).long().expand(B)
            act = torch.cat([action.new_full((n_hist,), -1), action])
        e, e0 = self._time(torch.cat([hist_t, timestep.float()]), act)
        e_hist, e_cur = e0[:n_hist], e0[n_hist:]
        if self.frame_level is not None:  # the stacked frame's noise level, on every current token
            shift = linear_f32(self.frame_level, sinusoidal_embedding(c.freq_dim, hist_t.expand(B)))
            cur = cur + shift[:, None, :]
        text_kv = self._text_kv(context, history)
        if memory is None and history is not None:
            memory = history.memory
        mem = self._stacked_memory(memory, history, x.device) if c.memory_enabled else None

        if not has_hist:
            for i, blk in enumerate(self.blocks):
                cur, _ = blk(cur, e_cur.unsqueeze(1), (S,), freqs, text_kv[i], memory=_layer(mem, i))
        elif c.history_attention == "direct" or (c.history_attention == "causal" and use_history_cache):
            cache = self._history_kv(history, context)
            mask = None
            if history.padded:
                mask = torch.cat([history.valid, history.valid.new_ones(B, S)], 1)[:, None, None, :]
            for i, blk in enumerate(self.blocks):
                cur, _ = blk(
                    cur,
                    e_cur.unsqueeze(1),
                    (S,),
                    freqs,
                    text_kv[i],
                    kv_prefix=cache[i],
                    mask=mask,
                    memory=_layer(mem, i),
                )
        else:
            H = history.max_tokens
            seq = torch.cat([history.tokens.float(), cur], 1)
            freqs_s = torch.cat([history.freqs, freqs], 1)
            mod = torch.stack([e_hist.expand(B, 6, c.dim), e_cur], 1)  # (B, 2, 6, dim)
            mask = (
                _joint_mask(history.valid, S, causal=c.history_attention == "causal")
                if (history.padded or c.history_attention == "causal")
                else None
            )
            for i, blk in enumerate(self.blocks):
                seq, _ = blk(seq, mod, (H, S), freqs_s, text_kv[i], mask=mask, memory=_layer(mem, i), memory_start=H)
            cur = seq[:, H:]

        out = self.unpatchify(self.head(cur, e[n_hist:]), grid)
        if c.prediction == "sample":  # the clean chunk: base + c_skip * y_t + c_out * F
            out = base + c_skip * y_t + c_out * out.float()
        return out

    def _current_freqs(self, history: HistoryContext | None, grid: tuple[int, ...], B: int, device) -> torch.Tensor:
        """RoPE rotations of the current chunk's tokens (the same for every denoising step)."""
        key = ("freqs", grid)
        if history is not None and key in history.step_cache:
            return history.step_cache[key]
        t0 = to_device(history.next_t if history is not None else [0] * B, device, torch.long)
        pos = layout_positions(((0, *grid),), device).unsqueeze(0).repeat(B, 1, 1)
        pos[..., 0] += t0[:, None]
        freqs = rope_freqs(pos, self.config.head_dim, self.config.rope_theta)
        if history is not None:
            history.step_cache[key] = freqs
        return freqs

    def _stacked_memory(self, memory, history: HistoryContext | None, device):
        """The worlds' memory as (kv, k_sum) per layer: a `MemoryBatch` as it is; per-world states
        stacked, reused across the chunk's steps while the same state objects are passed
        (`update_memory` always makes new ones)."""
        if isinstance(memory, MemoryBatch):
            return memory.kv.to(device), memory.k_sum.to(device)
        cached = history.step_cache.get("memory") if history is not None else None
        if (
            cached is not None
            and memory is not None
            and len(cached[0]) == len(memory)
            and all(a is b for a, b in zip(cached[0], memory))
        ):
            return cached[1]
        mem = stack_memory(memory)
        if mem is not None:
            mem = (mem[0].to(device), mem[1].to(device))
        if history is not None and not torch.is_grad_enabled():
            history.step_cache["memory"] = (tuple(memory or ()), mem)
        return mem

    def unpatchify(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """(B, F*gh*gw, pt*ph*pw*C) -> (B, C, F*pt, gh*ph, gw*pw)."""
        pt, ph, pw = self.config.patch_size
        f, gh, gw = grid
        B, C = x.shape[0], self.config.latent_channels
        x = x.view(B, f, gh, gw, pt, ph, pw, C)
        return x.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(B, C, f * pt, gh * ph, gw * pw)


def _as_index(cols: tuple[int, ...], n: int) -> slice | list[int]:
    """A run of consecutive frames as a slice (a view, no gather), else the index list."""
    if cols and tuple(cols) == tuple(range(cols[0], cols[0] + len(cols))):
        return slice(cols[0], cols[0] + len(cols))
    return list(cols)


def _layer(mem: tuple[torch.Tensor, torch.Tensor] | None, i: int):
    return None if mem is None else (mem[0][i], mem[1][i])


def _pad_to(x: torch.Tensor, k: int) -> torch.Tensor:
    """Zero-pad (B, C, F, H, W) at bottom/right to multiples of k (published `convpadd`)."""
    ph, pw = (-x.shape[-2]) % k, (-x.shape[-1]) % k
    return F.pad(x, (0, pw, 0, ph)) if ph or pw else x


def _history_mask(valid: torch.Tensor) -> torch.Tensor:
    """History-only attention mask (B, 1, H, H): valid keys; padding queries see only themselves
    (so their rows stay finite; nothing valid ever attends to them)."""
    H = valid.shape[1]
    eye = torch.eye(H, dtype=torch.bool, device=valid.device)
    return (valid[:, None, :] | (eye & ~valid[:, :, None]))[:, None]


def _joint_mask(valid: torch.Tensor, S: int, causal: bool) -> torch.Tensor:
    """Mask for [history | current]: no query sees padding keys ((B, 1, 1, H+S) in global mode);
    in causal mode history queries do not see current keys ((B, 1, H+S, H+S))."""
    B, H = valid.shape
    if not causal:  # padding queries still see the current tokens, so every row stays finite
        return torch.cat([valid, valid.new_ones(B, S)], 1)[:, None, None, :]
    hist_rows = torch.cat([_history_mask(valid)[:, 0], valid.new_zeros(B, H, S)], 2)
    cur_rows = torch.cat([valid[:, None, :].expand(B, S, H), valid.new_ones(B, S, S)], 2)
    return torch.cat([hist_rows, cur_rows], 1)[:, None]


def build_dit(config: WorldModelConfig, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> WanDiT:
    """Build a randomly initialised `WanDiT` on `device` in `dtype` (default float32).

    device="meta" allocates nothing (for loading a checkpoint with `load_state_dict(...,
    assign=True)` or inspecting shapes). Otherwise the model is laid out on meta, allocated once
    directly in `dtype` on `device` (no float32 copy of a 5B model on the way) and initialised there.
    """
    with torch.device("meta"):
        model = WanDiT(config)
    if dtype is not None:
        model = model.to(dtype)
    if str(device) != "meta":
        model.to_empty(device=device)
        model.init_weights()
    return model
