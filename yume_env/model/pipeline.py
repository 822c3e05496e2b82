"""`WorldModel`: text conditioner + DiT (with TSCM memory) + sampler + VAE, stepping many worlds at once.

    model = WorldModel.from_pretrained(default_world_path())       # or a Yume-5B folder
    state = model.init_state(start_frames)                          # uint8 (T, H, W, 3), T >= 1
    model.set_event(state, "a ghost suddenly appears")              # takes effect at the next chunk
    out = model.step(state, np.array([[1, 0]]), torch.Generator().manual_seed(0))
    out.frames                                                      # uint8 (B, F, H, W, 3) numpy
    out.pixels                                                      # the same, a tensor on the model's device

One `step` is one chunk for a batch of worlds (`WorldState`, histories may differ in length): the
text context of each world's action and event, the chunk's dead-reckoned poses (`yume_env.motion`),
the world step (`world_step.step_chunk`: read the history, sample the chunk from seeded noise,
remember it), and the stream decode with each world's VAE cache. Nothing here imports gymnasium.

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

from yume_env import motion
from yume_env.host_to_device import to_device
from yume_env.model import checkpoint as ckpt
from yume_env.model import sampler, spread
from yume_env.model.codecs import build_vae
from yume_env.model.config import SAMPLING_FIELDS, WorldModelConfig
from yume_env.model.dit import WanDiT, build_dit
from yume_env.model.history import History
from yume_env.model.noise import WorldNoise
from yume_env.model.paths import resolve_model_path
from yume_env.model.task_head import TaskHead
from yume_env.model.text import ENCODER_CLASSES, build_text_encoder
from yume_env.model.text_cache import TextConditioner
from yume_env.model.vae import frames_to_tensor, split_cache, stack_caches, tensor_to_pixels
from yume_env.model.world_state import SETTLED, WorldState
from yume_env.model.world_step import step_chunk

__all__ = ["WorldModel", "WorldState", "StepOutput", "PUBLISHED_DIT_FILE", "PUBLISHED_VAE_FILE"]

CONFIG_FILE, DIT_FILE, VAE_FILE = "config.json", "dit.safetensors", "vae.safetensors"
TASK_HEAD_FILE, START_FRAMES_FILE = "task_head.safetensors", "start_frames.npz"
PUBLISHED_DIT_FILE, PUBLISHED_VAE_FILE = "diffusion_pytorch_model.safetensors", "Wan2.2_VAE.pth"
_FIX = "pass a folder written by WorldModel.save_pretrained (or the published Yume-5B folder)"


@dataclass
class StepOutput:
    """One chunk of B worlds. `pixels` stays on the model's device; `frames` is its host copy, made
    on first use (so a caller that keeps frames on the device never copies them)."""

    pixels: torch.Tensor  # uint8 (B, F, H, W, 3) on the model's device
    latents: torch.Tensor  # (B, C, F_latent, h, w), normalised VAE latents of the chunk
    poses: torch.Tensor  # (B, F, 4) dead-reckoned (x, z, yaw, pitch) of the chunk's frames (`yume_env.motion`)
    # host seconds: text, dit, decode (on a GPU, kernels may still run after their phase's tick)
    timings: dict[str, float] = field(default_factory=dict)
    _frames: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def frames(self) -> np.ndarray:
        """uint8 numpy (B, F, H, W, 3): the pixels on the host (copied once, then kept)."""
        if self._frames is None:
            self._frames = self.pixels.cpu().numpy()
        return self._frames


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
        """Opens one of our folders (or a `yume-env train world` run folder, or a Hugging Face Hub repo
        id: `paths.resolve_model_path`), or the published Yume-5B folder
        (`diffusion_pytorch_model.safetensors` + `Wan2.2_VAE.pth` + umT5), through
        `yume_env.model.wan.folder.load_published_folder`.

        That function, `load_published_folder(path, device, dtype)`, returns a mapping (or an object
        with these attributes): `config` (WorldModelConfig of the folder, yume-5b sizes), `dit` (a
        WanDiT with the published weights; channel-stream gates at zero), `vae` (a VAE with this
        package's interface: encode, decode_chunk(latents, cache) -> (frames, cache), decode, and
        optionally start_stream / stack_caches / split_cache for non-dict caches) and `text_encoder`
        (a TextEncoder, e.g. `UMT5TextEncoder.from_folder(path)`, or a zero-argument callable
        returning one, so umT5 loads only if a text is missing from `text_cache/umt5.safetensors`).
        """
        path = resolve_model_path(path)
        if (path / PUBLISHED_DIT_FILE).is_file() and (path / PUBLISHED_VAE_FILE).is_file():
            return cls._from_published(path, device, dtype)
        config_file = ckpt.require_file(path, CONFIG_FILE, _FIX)
        config = ckpt.read_config(config_file)
        dit = build_dit(config, device="meta")
        ckpt.load_module(
            dit, ckpt.require_file(path, DIT_FILE, _FIX), config_file=config_file, dtype=dtype, config=config
        )
        try:
            vae = build_vae(config.vae, config.latent_channels)
        except (TypeError, ValueError, KeyError) as exc:
            raise ckpt.CheckpointError(f"{config_file}: its 'vae' entry {config.vae!r} builds no VAE ({exc})") from exc
        ckpt.load_module(vae, ckpt.require_file(path, VAE_FILE, _FIX), config_file=config_file, config=config)
        head = _load_task_head(path / TASK_HEAD_FILE, config) if (path / TASK_HEAD_FILE).is_file() else None
        start = _load_start_frames(path / START_FRAMES_FILE, config) if (path / START_FRAMES_FILE).is_file() else None
        spec = _encoder_class(config.text_encoder, config_file)
        text = TextConditioner.open(
            path,
            name=config.text_encoder,
            model_id=spec.model_id,
            dim=config.text_dim,
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
        text = TextConditioner.open(
            path, name=config.text_encoder, model_id=spec.model_id, dim=config.text_dim, encoder_factory=factory
        )
        return cls(config, get("dit"), get("vae"), text)

    def save_pretrained(self, path: str | Path) -> Path:
        """Writes the folder atomically (built beside it, then swapped in). The weights files record
        the config's state-defining fields in their metadata (`checkpoint.config_metadata`)."""

        def write(tmp: Path) -> None:
            from yume_env import __version__

            ckpt.write_json(
                tmp / CONFIG_FILE,
                {**self.config.to_dict(), "_class_name": "WorldModel", "_yume_env_version": __version__},
            )
            made_by = ckpt.config_metadata(self.config)  # a config.json edited later is caught at load
            ckpt.save_safetensors(tmp / DIT_FILE, self.dit.state_dict(), {"format": "pt", **made_by})
            ckpt.save_safetensors(
                tmp / VAE_FILE,
                self.vae.state_dict(),
                {"format": "pt", "type": str(self.config.vae.get("type")), **made_by},
            )
            if self.task_head is not None:
                ckpt.save_safetensors(tmp / TASK_HEAD_FILE, self.task_head.state_dict(), self.task_head.metadata())
            if self.start_frames is not None:
                ckpt.write_npz(
                    tmp / START_FRAMES_FILE,
                    frames=np.asarray(self.start_frames["frames"], dtype=np.uint8),
                    events=np.asarray(self.start_frames["events"], dtype=str),
                )
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
        return (
            f"WorldModel({c.height}x{c.width}, dim {c.dim} x {c.num_layers} blocks, vae {c.vae.get('type')}, "
            f"text {c.text_encoder}, {c.sample_steps} steps, task head {'yes' if self.task_head else 'no'}, "
            f"device {self.device})"
        )

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
    @property
    def cache_ops(self) -> tuple[Callable, Callable]:
        """The VAE's (stack_caches, split_cache): its own for non-dict caches, else the dict ones."""
        return _vae_fn(self.vae, "stack_caches", stack_caches), _vae_fn(self.vae, "split_cache", split_cache)

    @torch.no_grad()
    def init_state(self, frames: np.ndarray, actions: np.ndarray | None = None, event: str = "") -> WorldState:
        """A world (a batch of one) whose history is `frames` uint8 (T, H, W, 3), T >= 1 (encoded by the VAE).

        `actions` int (T-1, A) are the actions between the frames (for Yume's vocabulary each one
        sub-move of a step): the frames' poses are dead-reckoned from them (none given: no move),
        the newest frame's is the world's pose. History tokens carry no action conditioning (as in
        Yume), only the chunk being generated does.
        """
        frames = np.asarray(frames)
        H, W = self.frame_size
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (H, W, 3) or len(frames) < 1:
            raise ValueError(f"frames must be uint8 (T >= 1, {H}, {W}, 3), got {frames.dtype} {frames.shape}")
        vocab = self.config.vocabulary
        if actions is not None:
            actions = vocab.check(actions, "init_state actions", rows=len(frames) - 1)
        latents = self.vae.encode(frames_to_tensor(frames[None], device=self.device))  # (1, C, t, h, w)
        pose = torch.zeros(1, 4, device=self.device)
        rows = [pose]
        if vocab.is_yume:  # other vocabularies move no camera: the pose stays at the origin
            moves = torch.as_tensor(
                actions if actions is not None else np.zeros((len(frames) - 1, 2), np.int64), device=self.device
            )
            for a in moves:  # each transition is one sub-move of an env step
                pose = motion.dead_reckon(pose, a[None], self.frames_per_step, moves=1)[:, 0]
                rows.append(pose)
        history = History.empty(self.config, latents[0, :, 0])
        history.append(self.dit, latents, torch.cat(rows)[None] if self.config.pose_memory else None)
        cache = _vae_fn(self.vae, "start_stream", lambda z: self.vae.decode_chunk(z, None)[1])(latents)
        state = WorldState(history, cache, pose, pose.clone(), [""], [0], [SETTLED], self.cache_ops)
        self.set_event(state, event)
        return state

    def join_states(self, states: Sequence[WorldState]) -> WorldState:
        """One state of the worlds of several states of this model, in order."""
        return WorldState.cat(list(states))

    def load_state(self, worlds: list[dict[str, Any]] | dict[str, Any], where: str = "saved world") -> WorldState:
        """The state of worlds saved by `WorldState.to_dict()` (one dict per world), on this model's device.

        Each world is checked before anything is built (`state_checks.check_world_dict`: saved by a
        model of this config, shapes, dtypes, finite tensors, the VAE stream cache of this VAE's
        layout); errors name `where` and the field."""
        from yume_env.model import state_checks

        c = self.config

        def prime() -> Any:  # the stream cache of a freshly started world, as init_state makes it
            z = torch.zeros(1, c.latent_channels, 1, *c.latent_hw, device=self.device)
            return _vae_fn(self.vae, "start_stream", lambda z: self.vae.decode_chunk(z, None)[1])(z)

        layout = state_checks.stream_layout(self.vae, prime)
        state = WorldState.from_dict(c, worlds, self.cache_ops, where=where, cache_layout=layout)
        state.history = state.history.to(self.device)
        state.pose, state.origin = state.pose.to(self.device), state.origin.to(self.device)
        return state

    def set_event(self, state: WorldState, text: str, world: int | None = None) -> None:
        """Sets the event text of the state's worlds (or of world `world`) for the next chunks ("" for
        none); encodes it now if it is new."""
        if not isinstance(text, str):
            raise TypeError(f'event must be a str ("" for none), got {type(text).__name__}')
        self.text.event_tokens(text)
        for i in range(state.batch_size) if world is None else [int(world)]:
            if text.strip() != state.events[i]:
                state.chunks_since_event[i] = 0
            state.events[i] = text.strip()

    @torch.no_grad()
    def step(
        self,
        states: WorldState | Sequence[WorldState],
        actions: np.ndarray | torch.Tensor,
        generator: WorldNoise | torch.Generator | Sequence[torch.Generator] | None = None,
    ) -> StepOutput:
        """One chunk for each world (one batched forward); updates the state(s) in place.

        states: one state of B worlds, or a list of states (their worlds, in order). actions: int
        (B, 2) (key, camera). generator: a `WorldNoise` of B worlds (each world's own key and
        counter; drawn on the model's device in a few ops whatever B is: what the envs pass), one
        torch.Generator for the batch (drawn in world order), one per world, or None (torch's global
        RNG). A seed fixes the output; batching does not change it (a batch equals the same worlds
        stepped one by one with the same generators, or with WorldNoise rows of the same keys and counters).
        """
        c, dev = self.config, self.device
        parts = [states] if isinstance(states, WorldState) else list(states)
        if not parts or not all(isinstance(s, WorldState) for s in parts):
            raise ValueError(
                f"step needs a WorldState (from init_state) or a list of them, got {type(states).__name__}"
            )
        _check_states_fit(parts, c)
        state = WorldState.cat(parts)
        B = state.batch_size
        vocab = c.vocabulary
        acts = vocab.check(actions, "step actions", rows=B)
        clock = _Clock()
        flat = vocab.flat(acts)
        context = self.text.context(flat.tolist(), state.events, c.text_tokens, captions=vocab.is_yume, device=dev)
        clock.tick("text")
        if vocab.is_yume:
            poses = motion.dead_reckon(state.pose.to(dev), to_device(acts, dev, torch.long), self.frames_per_step)
        else:  # no camera moves: every frame keeps the world's pose
            poses = state.pose.to(dev)[:, None].expand(B, self.frames_per_step, 4).clone()
        h, w = c.latent_hw
        noise = sampler.initial_noise([(c.latent_channels, c.latent_frames_per_chunk, h, w)] * B, generator, dev)
        active = [n >= spread.EVENT_SETTLE_CHUNKS for n in state.chunks_since_event]
        latents = step_chunk(
            self.dit,
            c,
            state.history,
            context,
            noise,
            action=to_device(flat, dev, torch.long),
            poses=poses if c.pose_memory else None,
            spread_active=active,
            generator=generator,
        )
        clock.tick("dit")
        state.pose = poses[:, -1]
        state.step_count = [n + 1 for n in state.step_count]
        state.chunks_since_event = [n + 1 for n in state.chunks_since_event]
        stack, split = self.cache_ops
        decoded, state.vae_cache = self.vae.decode_chunk(latents, state.vae_cache)
        pixels = tensor_to_pixels(decoded)
        clock.tick("decode")
        if len(parts) > 1:  # write each part's worlds back into it
            start = 0
            for part in parts:
                part.assign(state.rows(list(range(start, start + part.batch_size))))
                start += part.batch_size
        elif parts[0] is not state:
            parts[0].assign(state)
        return StepOutput(pixels, latents, poses, clock.times)

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


def _check_states_fit(states: list[WorldState], config: WorldModelConfig) -> None:
    """States are read by the model that made them: another model's config (other sizes, memory or
    pose settings) would be read wrongly, so it is refused, naming the fields that differ."""
    for s in states:
        if s.config is config:  # the usual case, checked without comparing every field
            continue
        mine, theirs = config.to_dict(), s.config.to_dict()
        diff = sorted(k for k in mine if mine[k] != theirs.get(k) and k not in SAMPLING_FIELDS)
        if diff:
            raise ValueError(
                f"this WorldState was made by another model (config differs in {diff}); "
                "make states with init_state (or load_state) of the model that steps them"
            )


def _vae_fn(vae: Any, name: str, default: Callable) -> Callable:
    """A VAE's own cache method if it has one (VAEs outside VideoVAE), else the dict default."""
    return getattr(vae, name, default)


def _encoder_class(name: str, where: Path):
    if name not in ENCODER_CLASSES:
        raise ckpt.CheckpointError(f"{where}: unknown text_encoder {name!r}; expected one of {sorted(ENCODER_CLASSES)}")
    return ENCODER_CLASSES[name]


def _lazy_conditioner(config: WorldModelConfig) -> Callable[[], TextConditioner]:
    def build() -> TextConditioner:
        encoder = build_text_encoder(config.text_encoder)
        if encoder.dim != config.text_dim:
            raise ValueError(
                f"text encoder {config.text_encoder!r} gives {encoder.dim}-d embeddings, config.text_dim is {config.text_dim}"
            )
        return TextConditioner.build(encoder)

    return build


def _load_task_head(path: Path, config: WorldModelConfig) -> TaskHead:
    """The task head of `task_head.safetensors`, checked against the world's latents and for NaN."""
    tensors, meta = ckpt.load_safetensors(path)
    try:
        head = TaskHead.from_metadata(meta, str(path))
    except ValueError as exc:
        raise ckpt.CheckpointError(str(exc)) from exc
    want = (config.latent_channels, tuple(config.latent_hw))
    if (head.latent_channels, head.latent_hw) != want:
        raise ckpt.CheckpointError(
            f"{path} reads latents of {head.latent_channels} channels at {head.latent_hw}, this world makes "
            f"{want[0]} at {want[1]}: the task head belongs to another model; train one for this world "
            "(the reward stage) or remove the file"
        )
    ckpt.check_state_dict(head.state_dict(), tensors, path)
    ckpt.check_dtypes(head.state_dict(), tensors, path)
    ckpt.check_finite(tensors, path)
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
        raise ckpt.CheckpointError(
            f"{path}: frames must be uint8 (K, {want[0]}, {want[1]}, 3), got {frames.dtype} {frames.shape}"
        )
    events = np.full(len(frames), "", dtype=str) if events is None else events.astype(str)
    if events.shape != (len(frames),):
        raise ckpt.CheckpointError(f"{path}: events must be ({len(frames)},) strings, got shape {events.shape}")
    return {"frames": frames, "events": events}
