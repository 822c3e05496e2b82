"""`WorldModelConfig`: every size of the world model in one dataclass, with named presets.

Presets are data (`PRESETS` below): `"yume-5b"` is the published Yume-5B (Wan2.2 TI2V-5B backbone,
DESIGN.md section 1); `"tiny"` is a small model of the same design that runs on a laptop CPU.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from yume_env.vocabulary import YUME, ActionVocabulary

HISTORY_ATTENTION_MODES = ("global", "causal", "direct")
PREDICTIONS = ("velocity", "sample")
# how a chunk is sampled, not what a world's state holds: a state can be stepped with other values
SAMPLING_FIELDS = ("sample_steps", "shift", "sample_renoise", "spread_gain_max")


@dataclass
class WorldModelConfig:
    """Sizes of the DiT, its TSCM memory, the VAE and text encoder it expects, and the sampler.

    DiT (Wan2.2 names): `dim`, `ffn_dim`, `num_layers`, `num_heads`, `latent_channels` (in = out),
    `patch_size` (t, h, w), `text_dim` (text encoder width), `freq_dim` (sinusoidal timestep
    width), `eps`, `qk_norm`, `cross_attn_norm`, `rope_theta`.
    Chunks: `latent_frames_per_chunk` generated per step; sampler: `sample_steps` Euler steps with
    timestep `shift`, stochastic with `sample_renoise` > 0 (`sampler.renoise_step`); `prediction`: the DiT outputs the flow's velocity ("velocity", as published) or
    the clean chunk ("sample", for worlds that denoise pixels; EDM-preconditioned, `sampler.preconditioning`);
    `frame_conditioning`: the newest history frame is also embedded on each current token (frame
    stacking); `frame_residual`: a sample world denoises the change from that frame (a fresh DiT
    returns the frame); `spread_gain_max` > 1 scales each new chunk's per-channel spread back up to
    the previous chunk's by at most that gain (`yume_env.model.spread`; 1 = off, as published).
    TSCM: `tscm_schedule` (a name in `yume_env.model.tscm.SCHEDULES`) for the temporal-spatial
    stream; the channel stream (linear-attention memory) has `memory_channels` per memory token and
    reads with `memory_heads` x `memory_head_dim`; `memory_enabled` builds it at all.
    `history_attention`: "global" (published: history and current tokens attend to each other) or
    "causal" (history tokens do not attend to the current chunk, so their keys/values are computed
    once per chunk and reused across denoising steps) or "direct" (as causal, but the history
    tokens never pass through the blocks: each block reads keys/values projected straight from
    the embedded tokens, so no per-chunk history pass).
    Actions: `action_nvec` (choices per component; Yume's [9, 9] keys x camera moves by default,
    whose actions also condition through their captions) and `action_names`.
    Pixels and codecs: `height`, `width`, `fps`, `vae` (dict: `type` "tiny" | "wan2.2",
    `spatial_compression`, `temporal_compression`, plus the VAE's own sizes), `text_encoder`
    ("minilm" | "umt5"), `text_tokens` (context length the DiT sees; shorter contexts are
    zero-padded to it, as the published model does).
    """

    dim: int
    ffn_dim: int
    num_layers: int
    num_heads: int
    latent_channels: int
    patch_size: tuple[int, int, int] = (1, 2, 2)
    text_dim: int = 4096
    freq_dim: int = 256
    eps: float = 1e-6
    qk_norm: bool = True
    cross_attn_norm: bool = True
    rope_theta: float = 10000.0
    latent_frames_per_chunk: int = 8
    sample_steps: int = 4
    shift: float = 7.0
    sample_renoise: float = 0.0  # 0: Euler (deterministic given the noise); (0, 1]: share of fresh noise per step
    prediction: str = "velocity"  # what the DiT outputs: the flow's velocity (Yume) or the clean chunk (pixel worlds)
    spread_gain_max: float = 1.0
    tscm_schedule: str = "yume"
    memory_channels: int = 96
    memory_heads: int = 8
    memory_head_dim: int = 64
    memory_enabled: bool = True
    history_attention: str = "global"
    action_embedding: bool = False  # a learned (actions, dim) table of flat actions added to the time embedding
    action_nvec: list[int] = field(
        default_factory=lambda: list(YUME.nvec)
    )  # the world's actions: choices per component
    action_names: list[list[str]] = field(
        default_factory=lambda: [list(r) for r in YUME.names]
    )  # optional, for display
    pose_memory: bool = (
        False  # history tokens get their frame's dead-reckoned pose relative to the chunk's (pose_memory.py)
    )
    recall_frames: int = 0  # old views recalled by pose and read at full detail beside the TSCM bands (recall.py)
    frame_conditioning: bool = False  # the newest history frame is embedded on each current token (dit.py)
    frame_residual: bool = False  # sample worlds: the DiT outputs the newest history frame plus a learned change
    height: int = 704
    width: int = 1280
    fps: int = 16
    vae: dict[str, Any] = field(default_factory=dict)
    text_encoder: str = "umt5"
    text_tokens: int = 512

    def __post_init__(self) -> None:
        self.patch_size = tuple(int(p) for p in self.patch_size)  # JSON gives lists
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent field."""
        if len(self.patch_size) != 3:
            raise ValueError(f"patch_size must be (t, h, w), got {self.patch_size}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by num_heads ({self.num_heads})")
        hd = self.head_dim
        if hd % 2 or hd < 12:
            raise ValueError(f"head_dim = dim / num_heads must be even and >= 12 for 3-axis RoPE, got {hd}")
        if self.history_attention not in HISTORY_ATTENTION_MODES:
            raise ValueError(
                f"history_attention must be one of {HISTORY_ATTENTION_MODES}, got {self.history_attention!r}"
            )
        from yume_env.model.tscm import SCHEDULES  # late import: tscm imports nothing from here

        if self.tscm_schedule not in SCHEDULES:
            raise ValueError(f"tscm_schedule must be one of {sorted(SCHEDULES)}, got {self.tscm_schedule!r}")
        if self.frame_residual and not (self.frame_conditioning and self.prediction == "sample"):
            raise ValueError(
                "frame_residual adds the newest history frame to the predicted clean chunk: it needs "
                f"frame_conditioning true and prediction 'sample', got {self.frame_conditioning} and {self.prediction!r}"
            )
        if self.pose_memory and self.temporal_compression != 1:
            raise ValueError(
                "pose_memory gives each latent frame its camera pose, so it needs a VAE without "
                f"temporal compression (1), got {self.temporal_compression}"
            )
        vocab = self.vocabulary  # raises for bad sizes or names
        if not vocab.is_yume and not self.action_embedding:
            raise ValueError(
                f"a world whose actions are not Yume's keys x camera moves (action_nvec {list(vocab.nvec)}) has "
                "no action captions: set action_embedding true, so its actions condition the DiT"
            )
        if self.pose_memory and not vocab.is_yume:
            raise ValueError(
                "pose_memory dead-reckons poses from Yume's keys and camera moves: set it false for "
                f"action_nvec {list(vocab.nvec)}"
            )
        if self.recall_frames < 0:
            raise ValueError(f"recall_frames must be >= 0, got {self.recall_frames}")
        if self.recall_frames and not self.pose_memory:
            raise ValueError("recall_frames recalls old views by their dead-reckoned pose: set pose_memory true too")
        base = self.patch_size[1]
        odd = sorted({k for k, _ in SCHEDULES[self.tscm_schedule].kernels() if k % base})
        if odd:  # a history token must cover whole current-chunk patches
            raise ValueError(
                f"tscm_schedule {self.tscm_schedule!r} embeds history with kernels {odd}, which are not "
                f"multiples of the spatial patch ({base}); use a schedule made for this patch size "
                "(1x1 patches: 'tiny-fine' or 'tiny-recall'; 2x2: 'tiny' or 'yume')"
            )
        sc = self.spatial_compression
        for name, px in (("height", self.height), ("width", self.width)):
            if px % (sc * self.patch_size[1]):
                raise ValueError(
                    f"{name} ({px}) must be a multiple of spatial_compression x patch ({sc * self.patch_size[1]})"
                )
        if self.latent_frames_per_chunk % self.patch_size[0]:
            raise ValueError("latent_frames_per_chunk must be a multiple of patch_size[0]")
        if not 0.0 <= self.sample_renoise <= 1.0:
            raise ValueError(f"sample_renoise is a share of fresh noise in [0, 1], got {self.sample_renoise}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if self.sample_steps < 1:
            raise ValueError(f"sample_steps must be >= 1, got {self.sample_steps}")
        if not self.spread_gain_max >= 1.0:
            raise ValueError(f"spread_gain_max must be >= 1 (1 = off), got {self.spread_gain_max}")

    # ------------------------------------------------------------------ derived
    @property
    def vocabulary(self) -> ActionVocabulary:
        """The world's action vocabulary (`yume_env.vocabulary`)."""
        return ActionVocabulary(tuple(self.action_nvec), tuple(tuple(r) for r in self.action_names))

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def spatial_compression(self) -> int:
        return int(self.vae.get("spatial_compression", 1))

    @property
    def temporal_compression(self) -> int:
        return int(self.vae.get("temporal_compression", 1))

    @property
    def latent_hw(self) -> tuple[int, int]:
        """Latent (h, w) of one frame."""
        sc = self.spatial_compression
        return self.height // sc, self.width // sc

    @property
    def tokens_per_latent_frame(self) -> int:
        h, w = self.latent_hw
        return (h // self.patch_size[1]) * (w // self.patch_size[2])

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["patch_size"] = list(self.patch_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "WorldModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(
                f"unknown WorldModelConfig keys {unknown}; known keys are {sorted(names)} "
                "(was the config written by a newer yume-env?)"
            )
        return cls(**copy.deepcopy(d))

    @classmethod
    def preset(cls, name: str) -> "WorldModelConfig":
        """A fresh config for a named preset ("yume-5b", "tiny")."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls.from_dict(PRESETS[name])

    def replace(self, **changes: Any) -> "WorldModelConfig":
        """A copy with some fields changed (validated)."""
        return self.from_dict({**self.to_dict(), **changes})


PRESETS: dict[str, dict[str, Any]] = {
    # The published model (DESIGN.md section 1).
    "yume-5b": dict(
        dim=3072,
        ffn_dim=14336,
        num_layers=30,
        num_heads=24,
        latent_channels=48,
        patch_size=[1, 2, 2],
        text_dim=4096,
        freq_dim=256,
        eps=1e-6,
        latent_frames_per_chunk=8,
        sample_steps=4,
        shift=7.0,
        tscm_schedule="yume",
        memory_channels=96,
        memory_heads=8,
        memory_head_dim=64,
        history_attention="global",
        height=704,
        width=1280,
        fps=16,
        vae={"type": "wan2.2", "spatial_compression": 16, "temporal_compression": 4, "z_dim": 48},
        text_encoder="umt5",
        text_tokens=512,
    ),
    # A small world of the Yume design (the tests' random worlds): 64x64 frames -> 8x8x16 tiny-VAE
    # latents, 2 frames per step, 32 current tokens, ~100 history tokens; MiniLM text as [action, event].
    "tiny": dict(
        dim=128,
        ffn_dim=512,
        num_layers=4,
        num_heads=4,
        latent_channels=16,
        patch_size=[1, 2, 2],
        text_dim=384,
        freq_dim=64,
        eps=1e-6,
        latent_frames_per_chunk=2,
        sample_steps=3,
        shift=3.0,
        tscm_schedule="tiny",
        memory_channels=16,
        memory_heads=2,
        memory_head_dim=32,
        history_attention="causal",
        action_embedding=True,
        height=64,
        width=64,
        fps=8,
        vae={"type": "tiny", "spatial_compression": 8, "temporal_compression": 1, "channels": [32, 48, 64]},
        text_encoder="minilm",
        text_tokens=2,
    ),
    # A world that denoises pixels: 8x8 pixel blocks as 192-channel latent pixels, one token each;
    # the DiT predicts the clean chunk (the newest frame plus a change) in 3 steps with that frame
    # stacked on its tokens, reads its history directly (no history pass), pose memory and one
    # recalled view; 2 frames per step, MiniLM text as [action, event].
    "pixel": dict(
        dim=192,
        ffn_dim=768,
        num_layers=4,
        num_heads=6,
        latent_channels=192,
        patch_size=[1, 1, 1],
        text_dim=384,
        freq_dim=64,
        eps=1e-6,
        latent_frames_per_chunk=2,
        sample_steps=3,
        shift=1.0,
        prediction="sample",
        tscm_schedule="tiny-recall",
        memory_channels=16,
        memory_heads=2,
        memory_head_dim=32,
        history_attention="direct",
        action_embedding=True,
        pose_memory=True,
        recall_frames=1,
        frame_conditioning=True,
        frame_residual=True,
        height=64,
        width=64,
        fps=8,
        vae={"type": "pixel", "spatial_compression": 8, "temporal_compression": 1},
        text_encoder="minilm",
        text_tokens=2,
    ),
}


def parse_assignment(item: str, flag: str = "--set") -> tuple[str, Any]:
    """ "dim=192" -> ("dim", 192): the value is read as JSON (numbers, true/false, lists, quoted
    strings) or else kept as text. The command-line form of config overrides (`--set`)."""
    key, sep, raw = item.partition("=")
    if not sep:
        raise ValueError(f"{flag} {item!r} must look like field=value, e.g. {flag} dim=192")
    try:
        return key.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), raw
