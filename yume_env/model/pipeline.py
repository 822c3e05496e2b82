"""`WorldModel`: text conditioner + DiT (with TSCM memory) + sampler + VAE, stepping many worlds at once.

    model = WorldModel.from_pretrained(default_world_path())       # or a Yume-5B folder
    state = model.init_state(start_frames)                          # uint8 (T, H, W, 3), T >= 1
    model.set_event(state, "a ghost suddenly appears")              # takes effect at the next chunk
    out = model.step([state], np.array([[1, 0]]), torch.Generator().manual_seed(0))
    out.frames                                                      # uint8 (B, F, H, W, 3)

One `step` is one chunk for B worlds in one batched DiT call (histories may differ in length):
embed each world's history (TSCM bands) once, run `config.sample_steps` Euler steps from seeded
noise (history clean at timestep 0, no CFG), append the chunk to each world's bounded history and
channel-stream sums, and stream-decode it with each world's VAE cache. Actions condition through
their cached caption embeddings ([action, event] context). Nothing here imports gymnasium.

Folders (diffusers style, written by `save_pretrained`, read by `from_pretrained`):
`config.json`, `dit.safetensors`, `vae.safetensors`, optional `task_head.safetensors`,
`start_frames.npz` (frames uint8 (K, H, W, 3), events str (K,)), `text_cache/<encoder>.safetensors`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from yume_env.actions import NUM_CAMERAS, NUM_KEYS
from yume_env.model import pose_memory, sampler, spread, tscm
from yume_env.model.recall import RecallBank, has_entries, sharp_frames
from yume_env.model.config import WorldModelConfig
from yume_env.model.dit import WanDiT, build_dit, host_tensor
from yume_env.model.task_head import TaskHead
from yume_env.model.text import ENCODER_CLASSES, build_text_encoder
from yume_env.model.text_cache import TextConditioner
from yume_env.model.vae import build_vae, frames_to_tensor, split_cache, stack_caches, tensor_to_frames
from yume_env.model.world_state import WorldState
from yume_env.model import checkpoint as ckpt

__all__ = ["WorldModel", "WorldState", "StepOutput", "PUBLISHED_DIT_FILE", "PUBLISHED_VAE_FILE"]

CONFIG_FILE, DIT_FILE, VAE_FILE = "config.json", "dit.safetensors", "vae.safetensors"
TASK_HEAD_FILE, START_FRAMES_FILE = "task_head.safetensors", "start_frames.npz"
PUBLISHED_DIT_FILE, PUBLISHED_VAE_FILE = "diffusion_pytorch_model.safetensors", "Wan2.2_VAE.pth"
_FIX = "pass a folder written by WorldModel.save_pretrained (or the published Yume-5B folder)"


@dataclass
class StepOutput:
    frames: np.ndarray  # uint8 (B, F, H, W, 3)
    latents: torch.Tensor  # (B, C, F_latent, h, w), normalised VAE latents of the chunk
    timings: dict[str, float] = field(default_factory=dict)  # seconds: text, history, dit, memory, decode


class WorldModel:
    """The learned world. Build with `from_config` (random) or `from_pretrained` (a folder)."""

    def __init__(
        self,
        config: WorldModelConfig,
        dit: WanDiT,
        vae: torch.nn.Module,
        text: TextConditioner | Callable[[], TextConditioner],
        task_head: TaskHead | None = None,
        start_frames: dict[str, np.ndarray] | None = None,
    ):
        self.config = config
        # eval mode for stepping (which runs under no_grad); trainers call .train() on the parts
        self.dit = dit.eval()
        self.vae = vae.eval()
        self._text = text
        self.task_head = None if task_head is None else task_head.eval()
        self.start_frames = start_frames

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        config: WorldModelConfig,
        seed: int = 0,
        device: str | torch.device = "cpu",
        text: TextConditioner | None = None,
    ) -> "WorldModel":
        """Random weights from `seed` (torch's global RNG is left untouched). The text conditioner
        (config.text_encoder) is built on first use unless `text` is given."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            dit = build_dit(config, device="cpu")
            vae = build_vae(config.vae, config.latent_channels)
        model = cls(config, dit, vae, text if text is not None else _lazy_conditioner(config))
        return model.to(device)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ) -> "WorldModel":
        """Opens one of our folders, or the published Yume-5B folder (`diffusion_pytorch_model.safetensors`
        + `Wan2.2_VAE.pth` + umT5), through `yume_env.model.wan.folder.load_published_folder`.

        That function, `load_published_folder(path, device, dtype)`, returns a mapping (or an object
        with these attributes): `config` (WorldModelConfig of the folder, yume-5b sizes), `dit` (a
        WanDiT with the published weights; channel-stream gates at zero), `vae` (a VAE with this
        package's interface: encode, decode_chunk(latents, cache) -> (frames, cache), decode, and
        optionally start_stream / stack_caches / split_cache for non-dict caches) and `text_encoder`
        (a TextEncoder, e.g. `UMT5TextEncoder.from_folder(path)`, or a zero-argument callable
        returning one, so umT5 loads only if a text is missing from `text_cache/umt5.safetensors`).
        """
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"model folder {path} does not exist; {_FIX}")
        if (path / PUBLISHED_DIT_FILE).is_file() and (path / PUBLISHED_VAE_FILE).is_file():
            return cls._from_published(path, device, dtype)
        config_file = ckpt.require_file(path, CONFIG_FILE, _FIX)
        raw = ckpt.read_json(config_file)
        try:
            config = WorldModelConfig.from_dict({k: v for k, v in raw.items() if not k.startswith("_")})
        except (TypeError, ValueError) as exc:
            raise ckpt.CheckpointError(f"{config_file} is not a valid WorldModelConfig: {exc}") from exc
        dit = build_dit(config, device="meta")
        ckpt.load_module(dit, ckpt.require_file(path, DIT_FILE, _FIX), config_file=config_file, dtype=dtype)
        vae = build_vae(config.vae, config.latent_channels)
        ckpt.load_module(vae, ckpt.require_file(path, VAE_FILE, _FIX), config_file=config_file)
        head = _load_task_head(path / TASK_HEAD_FILE) if (path / TASK_HEAD_FILE).is_file() else None
        start = _load_start_frames(path / START_FRAMES_FILE, config) if (path / START_FRAMES_FILE).is_file() else None
        spec = _encoder_class(config.text_encoder, config_file)
        text = TextConditioner.open(
            path, name=config.text_encoder, model_id=spec.model_id, dim=config.text_dim,
            encoder_factory=lambda: build_text_encoder(config.text_encoder, path),
        )
        model = cls(config, dit, vae, text, head, start)
        return model.to(device, dtype)

    @classmethod
    def _from_published(cls, path: Path, device, dtype) -> "WorldModel":
        from yume_env.model.wan.folder import load_published_folder  # lazy: the 5B path only

        parts = load_published_folder(path, device=device, dtype=dtype)
        get = (lambda k: parts[k]) if isinstance(parts, dict) else (lambda k: getattr(parts, k))
        config, encoder = get("config"), get("text_encoder")
        factory = encoder if callable(encoder) and not hasattr(encoder, "encode") else (lambda: encoder)
        spec = _encoder_class(config.text_encoder, path)
        text = TextConditioner.open(path, name=config.text_encoder, model_id=spec.model_id, dim=config.text_dim,
                                    encoder_factory=factory)
        return cls(config, get("dit"), get("vae"), text)

    def save_pretrained(self, path: str | Path) -> Path:
        """Writes the folder atomically (built beside it, then swapped in)."""

        def write(tmp: Path) -> None:
            from yume_env import __version__

            ckpt.write_json(tmp / CONFIG_FILE, {**self.config.to_dict(), "_class_name": "WorldModel",
                                                "_yume_env_version": __version__})
            ckpt.save_safetensors(tmp / DIT_FILE, self.dit.state_dict(), {"format": "pt"})
            ckpt.save_safetensors(tmp / VAE_FILE, self.vae.state_dict(), {"format": "pt", "type": str(self.config.vae.get("type"))})
            if self.task_head is not None:
                ckpt.save_safetensors(tmp / TASK_HEAD_FILE, self.task_head.state_dict(), self.task_head.metadata())
            if self.start_frames is not None:
                ckpt.write_npz(tmp / START_FRAMES_FILE, frames=np.asarray(self.start_frames["frames"], dtype=np.uint8),
                               events=np.asarray(self.start_frames["events"], dtype=str))
            self.text.save(tmp)

        return ckpt.save_folder(path, write)

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> "WorldModel":
        """Moves the modules (the DiT also to `dtype`; the VAE and task head stay float32 on CPU)."""
        self.dit.to(device=device, dtype=dtype)
        self.vae.to(device=device, dtype=dtype if torch.device(device).type != "cpu" else None)
        if self.task_head is not None:
            self.task_head.to(device)
        return self

    def __repr__(self) -> str:
        c = self.config
        return (f"WorldModel({c.height}x{c.width}, dim {c.dim} x {c.num_layers} blocks, vae {c.vae.get('type')}, "
                f"text {c.text_encoder}, {c.sample_steps} steps, task head {'yes' if self.task_head else 'no'}, "
                f"device {self.device})")

    # ---- properties ------------------------------------------------------------------------------
    @property
    def text(self) -> TextConditioner:
        if not isinstance(self._text, TextConditioner):
            self._text = self._text()
        return self._text

    @property
    def device(self) -> torch.device:
        return self.dit.device

    @property
    def frame_size(self) -> tuple[int, int]:
        return int(self.config.height), int(self.config.width)

    @property
    def frames_per_step(self) -> int:
        """Pixel frames per chunk (the stream is primed at init, so every chunk decodes to this many)."""
        return int(self.config.latent_frames_per_chunk) * int(self.config.temporal_compression)

    # ---- worlds ----------------------------------------------------------------------------------
    @torch.no_grad()
    def init_state(self, frames: np.ndarray, actions: np.ndarray | None = None, event: str = "") -> WorldState:
        """A world whose history is `frames` uint8 (T, H, W, 3), T >= 1 (encoded by the VAE).

        `actions` int (T-1, 2) are the moves between the frames (each one sub-move of a step). History
        tokens carry no action conditioning (as in Yume), only the chunk being generated does; a
        world with pose memory dead-reckons the frames' poses from them (none given: no move).
        """
        frames = np.asarray(frames)
        H, W = self.frame_size
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (H, W, 3) or len(frames) < 1:
            raise ValueError(f"frames must be uint8 (T >= 1, {H}, {W}, 3), got {frames.dtype} {frames.shape}")
        if actions is not None:
            _check_actions(actions, len(frames) - 1, "init_state actions")
        latents = self.vae.encode(frames_to_tensor(frames[None], device=self.device))  # (1, C, t, h, w)
        state = WorldState(
            history=latents.new_zeros(latents.shape[1], 0, *latents.shape[-2:]), n_history=0, memory=None,
            vae_cache=_vae_fn(self.vae, "start_stream", lambda z: self.vae.decode_chunk(z, None)[1])(latents),
        )
        poses = None
        if self.config.pose_memory:
            state.poses = latents.new_zeros(4, 0, 1, 1)
            moves = torch.as_tensor(np.asarray(actions if actions is not None else np.zeros((len(frames) - 1, 2)),
                                               dtype=np.int64).reshape(-1, 2), device=self.device)
            pose, rows = latents.new_zeros(1, 4), [latents.new_zeros(1, 4)]
            for a in moves:  # each transition is one sub-move of an env step
                pose = pose_memory.advance(pose, a[None], self.frames_per_step, moves=1)[:, 0]
                rows.append(pose)
            poses = torch.cat(rows)[None]  # (1, T, 4)
        if self.config.recall_frames:
            state.recall = RecallBank.empty(1, latents[0, :, 0])
        self._append([state], latents, poses)
        self.set_event(state, event)
        return state

    def set_event(self, state: WorldState, text: str) -> None:
        """Sets the event text for the next chunks ("" for none); encodes it now if it is new."""
        if not isinstance(text, str):
            raise TypeError(f"event must be a str (\"\" for none), got {type(text).__name__}")
        self.text.event_tokens(text)
        if text.strip() != state.event:
            state.chunks_since_event = 0
        state.event = text.strip()

    def _append(self, states: list[WorldState], latents: torch.Tensor, poses: torch.Tensor | None = None,
                banks: RecallBank | None = None) -> None:
        """Adds each world's new latents (B, C, n, h, w) to its bounded history and channel-stream
        sums: one channel-stream update for all worlds, one history append per group of worlds
        that keep the same frames (per-world small ops made a batched step launch-bound on a GPU).
        `poses` (B, n, 4): the new latents' poses, kept like the latents (models with pose memory).
        `banks`: the worlds' recall banks already stacked by this step (`_recalled`), to offer to."""
        c = self.config
        memories = self.dit.update_memories([s.memory for s in states], latents) if c.memory_enabled else None
        if c.recall_frames:  # before the append below replaces the stored histories it reads
            self._offer_recall(states, latents, poses, banks)
        groups: dict[tuple, list[int]] = {}
        for i, s in enumerate(states):
            # grouped by the positions kept, not by length: once the oldest band is thinned, histories
            # of many lengths keep the same positions (distinct lengths grow with staggered resets)
            take = tscm.keep_positions(c.tscm_schedule, s.n_history, latents.shape[2])
            groups.setdefault((take, tuple(s.history.shape)), []).append(i)
        for members in groups.values():
            kept = torch.stack([states[i].history.to(latents) for i in members])
            if len(members) == len(states):
                new = latents
            elif len(members) == 1:
                new = latents[members[0]:members[0] + 1]
            else:
                new = latents[host_tensor(members, latents.device)]
            # equal positions and shapes make the append the same for every member (each one's kept
            # count was checked by encode_history), so the first member's length stands for the group
            grown = tscm.append_history(c.tscm_schedule, kept, states[members[0]].n_history, new)
            for i, history in zip(members, grown.unbind(0)):  # B views in one op
                states[i].history = history
            if poses is not None:  # (G, 4, K, 1, 1): kept and dropped exactly like the latents
                new_poses = poses[host_tensor(members, poses.device)].transpose(1, 2)[..., None, None]
                kept_poses = torch.stack([states[i].poses.to(new_poses) for i in members])
                grown = tscm.append_history(c.tscm_schedule, kept_poses, states[members[0]].n_history, new_poses)
                for i, p in zip(members, grown.unbind(0)):
                    states[i].poses = p
        for i, state in enumerate(states):
            state.n_history += latents.shape[2]
            if memories is not None:
                state.memory = memories[i]
            state.history_tokens = tscm.history_token_count(c.tscm_schedule, state.n_history, c.latent_hw)
            if c.recall_frames and has_entries(state.n_history, c.tscm_schedule):  # the recalled views' tokens
                p = c.patch_size[1]
                state.history_tokens += c.recall_frames * -(-c.latent_hw[0] // p) * -(-c.latent_hw[1] // p)

    def _offer_recall(self, states: list[WorldState], latents: torch.Tensor, poses: torch.Tensor,
                      banks: RecallBank | None = None) -> None:
        """Offers each world's bank the latents that leave the schedule's sharp window with this append
        (`recall.py`): the newest stored latents are complete, so they are read from the stored tail
        and the new latents (B, C, n, h, w), poses (B, n, 4). Worlds that read the same slots go
        together (once past the sharp window, all of them), a few ops per group, not per world.
        `banks`: all worlds' banks stacked already (a group of every world inserts into it, no copy)."""
        sharp, n = sharp_frames(self.config.tscm_schedule), latents.shape[2]
        _require_banks(states)
        groups: dict[tuple, list[int]] = {}
        for i, s in enumerate(states):
            lo, hi = max(0, s.n_history - sharp), max(0, s.n_history + n - sharp)
            if hi > lo:
                kept = min(s.n_history, sharp)  # the stored tail covers latents n_history - kept ..
                start = s.n_history - kept
                groups.setdefault((kept, lo - start, hi - lo, s.history.shape[1]), []).append(i)
        for (kept, first, count, stored), members in groups.items():
            idx = host_tensor(members, latents.device) if len(members) < len(states) else None
            new_lat = latents if idx is None else latents[idx]
            new_pos = poses if idx is None else poses[idx]
            tail = torch.cat([torch.stack([states[i].history[:, stored - kept:] for i in members]).to(latents), new_lat], 2)
            tail_poses = torch.cat([torch.stack([states[i].poses[:, stored - kept:, 0, 0] for i in members])
                                    .transpose(1, 2).to(poses), new_pos], 1)
            whole = banks is not None and len(members) == len(states)  # members are in world order
            bank = banks if whole else RecallBank.stack([states[i].recall for i in members])
            for t in range(first, first + count):
                bank.insert(tail[:, :, t], tail_poses[:, t])
            for i, own in zip(members, bank.unbind()):
                states[i].recall = own

    def _recalled(self, states: list[WorldState], target: torch.Tensor
                  ) -> tuple[list[tuple[torch.Tensor, torch.Tensor] | None], RecallBank | None]:
        """Per world, the views its bank recalls for the chunk whose last frame has pose target[i]
        (latents (C, R, h, w), pose features (R, F)), or None while its bank is empty; and the
        stacked banks read (a copy, for `_append` to offer the new latents to), None if none was."""
        _require_banks(states)
        has = [has_entries(s.n_history, self.config.tscm_schedule) for s in states]
        if not any(has):
            return [None] * len(states), None
        banks = RecallBank.stack([s.recall for s in states])
        latents, feats = banks.recall(target, self.config.recall_frames)  # gathered copies: later inserts leave them
        return [(lat, f) if h else None for lat, f, h in zip(latents.unbind(0), feats.unbind(0), has)], banks

    @torch.no_grad()
    def step(
        self,
        states: Sequence[WorldState],
        actions: np.ndarray | torch.Tensor,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
    ) -> StepOutput:
        """One chunk for each world (one batched forward); updates `states` in place.

        actions: int (B, 2) (key, camera). generator: one for the batch (drawn in world order),
        one per world, or None (torch's global RNG). A seed fixes the output; batching does not
        change it (a batch equals the same worlds stepped one by one with the same generators).
        """
        c, dev = self.config, self.device
        states = list(states)
        if not states or not all(isinstance(s, WorldState) for s in states):
            raise ValueError(f"step needs a non-empty list of WorldState (from init_state), got {type(states).__name__}")
        acts = _check_actions(actions, len(states), "step actions")
        clock = _Clock()
        flat = [int(k) * NUM_CAMERAS + int(cam) for k, cam in acts]
        context = self.text.context(flat, [s.event for s in states], c.text_tokens).to(dev)
        clock.tick("text")
        memory = [None if s.memory is None else s.memory.to(dev) for s in states]
        new_poses, features = self._poses(states, acts) if c.pose_memory else (None, None)
        recalled, banks = self._recalled(states, new_poses[:, -1]) if c.recall_frames else (None, None)
        history = self.dit.encode_history(
            [s.history.to(dev) for s in states], memory, context=context, n_history=[s.n_history for s in states],
            poses=features, recall=recalled,
        )
        clock.tick("history")
        h, w = c.latent_hw
        noise = sampler.initial_noise([(c.latent_channels, c.latent_frames_per_chunk, h, w)] * len(states), generator, dev)

        # the flat actions, for DiTs with a learned action embedding (other DiTs take no `action`)
        kw = {"action": torch.tensor(flat, device=dev)} if getattr(self.dit, "action_embedding", None) is not None else {}

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.dit(x, t, context, history, memory, **kw).float()

        latents = sampler.sample(velocity, noise, sampler.sigma_schedule(c.sample_steps, c.shift))
        if c.spread_gain_max > 1.0:  # before the append: the reference is the chunk before this one
            active = [s.chunks_since_event >= spread.EVENT_SETTLE_CHUNKS for s in states]
            if any(active):
                reference = spread.reference_spread([s.history for s in states], c.latent_frames_per_chunk)
                latents = spread.keep_spread(latents, reference.to(latents.device), c.spread_gain_max,
                                             active=None if all(active) else host_tensor(active, latents.device))
        clock.tick("dit")
        self._append(states, latents, new_poses, banks)
        for state in states:
            state.step_count += 1
            state.chunks_since_event += 1
        clock.tick("memory")
        cache = _vae_fn(self.vae, "stack_caches", stack_caches)([s.vae_cache for s in states])
        pixels, cache = self.vae.decode_chunk(latents, cache)
        for state, part in zip(states, _vae_fn(self.vae, "split_cache", split_cache)(cache, len(states))):
            state.vae_cache = part
        frames = tensor_to_frames(pixels)
        clock.tick("decode")
        return StepOutput(frames, latents, clock.times)

    def _poses(self, states: list[WorldState], acts: np.ndarray) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The new chunk's frame poses (B, F, 4), dead-reckoned from each world's last pose, and
        each world's history pose features (K_i, POSE_FEATURES) seen from the chunk's last frame."""
        missing = [i for i, s in enumerate(states) if s.poses is None]
        if missing:
            raise ValueError(f"worlds {missing} have no poses: this model has pose memory; make its states with "
                             "init_state of this model")
        dev = self.device
        # grouped by the number of poses kept: a few ops per group, not per world (worlds reset at
        # different steps keep different counts; per-world ops made a batched GPU step host-bound)
        groups: dict[int, list[int]] = {}
        for i, s in enumerate(states):
            groups.setdefault(s.poses.shape[1], []).append(i)
        kept = [torch.stack([states[i].poses for i in members]).to(dev)[:, :, :, 0, 0].transpose(1, 2)
                for members in groups.values()]  # (G, K, 4) per group
        last = torch.cat([poses[:, -1] for poses in kept])  # (B, 4) in group order: back to world order
        if len(groups) > 1:
            order = [i for members in groups.values() for i in members]
            last = last[host_tensor(np.argsort(order).tolist(), dev)]
        new = pose_memory.advance(last, torch.as_tensor(acts, device=dev), self.frames_per_step)
        target, features = new[:, -1], [None] * len(states)
        for members, poses in zip(groups.values(), kept):
            whole = len(members) == len(states)
            rows = pose_memory.relative_features(poses, target if whole else target[host_tensor(members, dev)])
            for i, f in zip(members, rows.unbind(0)):
                features[i] = f
        return new, features

    @torch.no_grad()
    def predict_task(self, latents: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """The task head's {"distance": (B,), "reached_logit": (B,)} for chunk latents (B, C, F, h, w),
        or None when the model has no task head."""
        if self.task_head is None:
            return None
        return self.task_head(latents.to(next(self.task_head.parameters()).device))


# ---- helpers --------------------------------------------------------------------------------------
class _Clock:
    def __init__(self):
        self.times: dict[str, float] = {}
        self._last = time.perf_counter()

    def tick(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name] = now - self._last
        self._last = now


def _require_banks(states: list[WorldState]) -> None:
    missing = [i for i, s in enumerate(states) if s.recall is None]
    if missing:
        raise ValueError(f"worlds {missing} have no recall bank: this model recalls views; make its states with "
                         "init_state of this model")


def _vae_fn(vae: Any, name: str, default: Callable) -> Callable:
    """A VAE's own cache method if it has one (VAEs outside VideoVAE), else the dict default."""
    return getattr(vae, name, default)


def _check_actions(actions: Any, n: int, what: str) -> list[tuple[int, int]]:
    arr = np.asarray(actions.cpu() if isinstance(actions, torch.Tensor) else actions)
    if arr.shape != (n, 2) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must be integers of shape ({n}, 2) (key, camera), got {arr.dtype} {arr.shape}")
    bad = (arr[:, 0] < 0) | (arr[:, 0] >= NUM_KEYS) | (arr[:, 1] < 0) | (arr[:, 1] >= NUM_CAMERAS)
    if bad.any():
        raise ValueError(
            f"{what}: key must be in [0, {NUM_KEYS}) and camera in [0, {NUM_CAMERAS}), got {arr[bad][0].tolist()} "
            f"at row {int(np.flatnonzero(bad)[0])}"
        )
    return [(int(k), int(c)) for k, c in arr]


def _encoder_class(name: str, where: Path):
    if name not in ENCODER_CLASSES:
        raise ckpt.CheckpointError(f"{where}: unknown text_encoder {name!r}; expected one of {sorted(ENCODER_CLASSES)}")
    return ENCODER_CLASSES[name]


def _lazy_conditioner(config: WorldModelConfig) -> Callable[[], TextConditioner]:
    def build() -> TextConditioner:
        encoder = build_text_encoder(config.text_encoder)
        if encoder.dim != config.text_dim:
            raise ValueError(f"text encoder {config.text_encoder!r} gives {encoder.dim}-d embeddings, config.text_dim is {config.text_dim}")
        return TextConditioner.build(encoder)

    return build


def _load_task_head(path: Path) -> TaskHead:
    tensors, meta = ckpt.load_safetensors(path)
    head = TaskHead.from_metadata(meta, str(path))
    ckpt.check_state_dict(head.state_dict(), tensors, path)
    head.load_state_dict(tensors)
    return head


def _load_start_frames(path: Path, config: WorldModelConfig) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            frames, events = data["frames"], data["events"] if "events" in data else None
    except (ValueError, KeyError, OSError, EOFError) as exc:
        raise ckpt.CheckpointError(f"{path} is not a readable start_frames.npz with 'frames' ({exc})") from exc
    want = (config.height, config.width, 3)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != want:
        raise ckpt.CheckpointError(f"{path}: frames must be uint8 (K, {want[0]}, {want[1]}, 3), got {frames.dtype} {frames.shape}")
    events = np.full(len(frames), "", dtype=str) if events is None else events.astype(str)
    if events.shape != (len(frames),):
        raise ckpt.CheckpointError(f"{path}: events must be ({len(frames)},) strings, got shape {events.shape}")
    return {"frames": frames, "events": events}

