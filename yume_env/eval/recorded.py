"""`yume-env eval --model MODEL --data DIR`: a world measured against recorded episodes it did not
train on (the held-out split of a shard folder, `yume_env.data.shards`).

- **fidelity**: teacher-forced PSNR (one step from the recorded history of k steps) and
  autoregressive PSNR by step (the world from a recorded reset frame under the recorded actions);
- **realism**: Fréchet distance between generated and recorded transitions, on the features of an
  inverse-dynamics probe trained on the recorded training episodes, with the held-out recordings
  against themselves (two halves) as the floor; sharpness (Laplacian energy, generated over recorded);
- **actions read back**: that probe's accuracy on generated transitions, beside its accuracy on the
  recorded held-out ones (a world whose actions show reads the same);
- **reward and episode end**: the task head on generated steps against the recorded rewards (MAE)
  and episode ends (accuracy, precision, recall).

`plot_recorded_strip` draws recorded and generated frames of the first windows side by side.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from yume_env.data.recorded_clips import RecordedClipSource
from yume_env.data.shards import ShardDataset
from yume_env.eval.features import projection
from yume_env.eval.frechet import frechet_distance
from yume_env.eval.metrics import laplacian_energy, psnr
from yume_env.eval.probes import _encoder

SHOWN_STEPS = (1, 2, 4, 8, 16, 32, 64, 128, 256)  # steps in the strip and the table, those within the rollout
STRIP_WINDOWS = 2


@dataclass
class RecordedEvalConfig:
    episodes: int = 16  # held-out windows rolled out
    steps: int = 16  # steps per window (the rollout's length)
    probe_steps: int = 400  # optimizer steps of the inverse-dynamics probe
    probe_batch: int = 64
    seed: int = 0


class ActionProbe(nn.Module):
    """(frame before, frame after) -> logits per action component; `features` are what the Fréchet
    distance compares. Frames float (N, 3, H, W) in [-1, 1], resized to 64x64. The difference of
    the two frames enters amplified (`DIFF_GAIN`): an action that moves a few pixels (Breakout's
    paddle) is otherwise too faint a cue for the probe to learn at all."""

    DIFF_GAIN = 8.0

    def __init__(self, nvec: tuple[int, ...], width: int = 32, hidden: int = 256):
        super().__init__()
        self.encoder = _encoder(9, width)
        self.trunk = nn.Sequential(nn.Linear(width * 4 * 16, hidden), nn.SiLU())
        self.heads = nn.ModuleList(nn.Linear(hidden, int(n)) for n in nvec)

    def features(self, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        before, after = (F.interpolate(x, size=(64, 64), mode="area") for x in (before, after))
        return self.trunk(self.encoder(torch.cat([before, after, self.DIFF_GAIN * (after - before)], 1)))

    def forward(self, before: torch.Tensor, after: torch.Tensor) -> list[torch.Tensor]:
        h = self.features(before, after)
        return [head(h) for head in self.heads]


def _float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1]."""
    return frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def train_action_probe(root: str, nvec: tuple[int, ...], cfg: RecordedEvalConfig, device) -> ActionProbe:
    """The inverse-dynamics probe, trained on the transitions of the recorded training episodes."""
    torch.manual_seed(cfg.seed)
    probe = ActionProbe(nvec).to(device)
    data = ShardDataset(root, window=2, split="train")
    loader = DataLoader(
        data,
        batch_size=cfg.probe_batch,
        shuffle=True,
        num_workers=0,
        drop_last=False,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    opt = torch.optim.AdamW(probe.parameters(), lr=1e-3, weight_decay=1e-4)
    step = 0
    while step < cfg.probe_steps:
        for batch in loader:
            frames, actions = batch["frames"].to(device), batch["actions"][:, 0].long().to(device)  # one transition
            logits = probe(_float(frames[:, 0]), _float(frames[:, 1]))
            loss = sum(F.cross_entropy(lg, actions[:, i]) for i, lg in enumerate(logits))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step >= cfg.probe_steps:
                break
    return probe.eval()


@torch.no_grad()
def _read_back(
    probe: ActionProbe, before: torch.Tensor, after: torch.Tensor, actions: torch.Tensor
) -> tuple[float, np.ndarray]:
    """(accuracy of every component at once, features) of transitions uint8 (N, H, W, 3) x2."""
    logits = probe(_float(before), _float(after))
    right = torch.stack([lg.argmax(1) == actions[:, i] for i, lg in enumerate(logits)]).all(0)
    features = probe.features(_float(before), _float(after)).double().cpu().numpy()
    return float(right.float().mean()), features @ projection(features.shape[1], 32)  # fewer dims than samples


def evaluate_recorded(model, root: str, cfg: RecordedEvalConfig | None = None, progress: bool = True) -> dict[str, Any]:
    """Every measure of the module docstring for `model` on the held-out episodes of `root`."""
    cfg = cfg or RecordedEvalConfig()
    t0 = time.perf_counter()
    probe = train_action_probe(root, tuple(model.config.action_nvec), cfg, "cpu")
    with torch.no_grad():
        return _measure(model, root, cfg, probe, progress, t0)


def _measure(
    model, root: str, cfg: RecordedEvalConfig, probe: ActionProbe, progress: bool, t0: float
) -> dict[str, Any]:
    from tqdm.auto import tqdm

    c = model.config
    if model.frames_per_step != 1:
        raise ValueError(
            f"this world makes {model.frames_per_step} frames per step; recorded episodes have one: "
            "evaluate a world trained on them (yume-env train world --data)"
        )
    clips = RecordedClipSource(root, split="heldout", workers=0).render(cfg.episodes, cfg.steps, cfg.seed)
    if tuple(clips.frames.shape[2:4]) != (c.height, c.width):
        raise ValueError(
            f"{root} holds {tuple(clips.frames.shape[2:4])} frames, the world makes ({c.height}, {c.width})"
        )
    frames, actions = clips.frames.numpy(), clips.actions.numpy()  # (n, 1 + S, H, W, 3), (n, S, A)
    n, S = actions.shape[:2]
    gen = torch.Generator().manual_seed(cfg.seed)

    teacher = {}
    for k in sorted({0, S // 2}):
        states = [model.init_state(frames[i, : 1 + k], actions[i, :k] if k else None) for i in range(n)]
        out = model.step(states, actions[:, k], gen)
        teacher[k] = float(psnr(out.frames[:, -1], frames[:, 1 + k]).mean())

    state = model.join_states([model.init_state(frames[i, :1]) for i in range(n)])
    made, heads = [], []
    for s in tqdm(range(S), desc="rollout on held-out episodes", disable=not progress, leave=False):
        out = model.step(state, actions[:, s], gen)
        made.append(out.frames[:, -1])
        heads.append(model.predict_task(out.latents))
    made = np.stack(made, 1)  # (n, S, H, W, 3)
    by_step = [float(psnr(made[:, s], frames[:, 1 + s]).mean()) for s in range(S)]

    flat = lambda x: torch.from_numpy(np.ascontiguousarray(x.reshape(-1, *x.shape[2:])))  # noqa: E731
    acts = torch.from_numpy(actions.reshape(-1, actions.shape[-1]))
    real_acc, real_feat = _read_back(probe, flat(frames[:, :-1]), flat(frames[:, 1:]), acts)
    gen_before = np.concatenate([frames[:, :1], made[:, :-1]], 1)
    gen_acc, gen_feat = _read_back(probe, flat(gen_before), flat(made), acts)
    half = len(real_feat) // 2
    realism = {
        "frechet_world": frechet_distance(gen_feat, real_feat),
        "frechet_floor": frechet_distance(real_feat[:half], real_feat[half:]),
        "sharpness": float(
            laplacian_energy(made.reshape(-1, *made.shape[2:])).mean()
            / laplacian_energy(frames[:, 1:].reshape(-1, *frames.shape[2:])).mean().clamp_min(1e-9)
        ),
        "transitions": int(len(real_feat)),
    }
    out_dict: dict[str, Any] = {
        "data": str(root),
        "config": asdict(cfg),
        "episodes": n,
        "steps": S,
        "teacher_forced_psnr_db": teacher,
        "autoregressive_psnr_db_by_step": by_step,
        "autoregressive_psnr_db": float(np.mean(by_step)),
        "realism": realism,
        "actions_read_back": {
            "world": gen_acc,
            "recordings": real_acc,
            "ratio": gen_acc / real_acc if real_acc > 0 else float("nan"),
        },
    }
    if heads[0] is not None and "reward" in heads[0]:
        reward = torch.stack([h["reward"] for h in heads], 1).cpu().numpy()
        ended = torch.stack([h["terminated_logit"] for h in heads], 1).cpu().numpy() > 0
        truth, done = clips.rewards.numpy(), clips.terminated.numpy().astype(bool)
        hits = int((ended & done).sum())
        out_dict["task"] = {
            "reward_mae": float(np.abs(reward - truth).mean()),
            "end_accuracy": float((ended == done).mean()),
            "end_precision": hits / max(int(ended.sum()), 1) if ended.any() else float("nan"),
            "end_recall": hits / int(done.sum()) if done.any() else float("nan"),
        }
    cols = [k for k in SHOWN_STEPS if k <= S]
    out_dict["_strip"] = {
        "steps": cols,
        "recorded": frames[:STRIP_WINDOWS, cols],
        "world": made[:STRIP_WINDOWS, [k - 1 for k in cols]],
    }
    out_dict["seconds"] = round(time.perf_counter() - t0, 1)
    return out_dict


def plot_recorded_strip(strip: dict[str, Any], path) -> None:
    """The recorded frames and the world's, steps after the same reset under the same actions, as a PNG
    (`results["_strip"]` of `evaluate_recorded`)."""
    from yume_env.eval.report import plot_strip

    rows = []
    for w in range(len(strip["recorded"])):
        rows += [(f"recorded {w}", strip["recorded"][w]), (f"world {w}", strip["world"][w])]
    plot_strip(rows, [f"step {k}" for k in strip["steps"]], path)


def markdown(results: dict[str, Any]) -> str:
    """The report of `evaluate_recorded`."""
    r, a = results["realism"], results["actions_read_back"]
    lines = [
        f"# World against recorded episodes ({results['data']})",
        "",
        f"{results['episodes']} held-out windows of {results['steps']} steps.",
        "",
    ]
    if results.get("strip_png"):
        lines += [f"![recorded and generated frames]({results['strip_png']})", ""]
    lines += ["| measure | value |", "|---|---|"]
    for k, v in results["teacher_forced_psnr_db"].items():
        lines.append(f"| teacher-forced PSNR after {k} recorded steps (dB) | {v:.2f} |")
    by = results["autoregressive_psnr_db_by_step"]
    shown = [k for k in SHOWN_STEPS if k < len(by)] + [len(by)]
    lines += [
        f"| autoregressive PSNR, step {' / '.join(map(str, shown))} (dB) | {' / '.join(f'{by[k - 1]:.2f}' for k in shown)} |",
        f"| Fréchet distance, world / recordings' own floor | {r['frechet_world']:.2f} / {r['frechet_floor']:.2f} |",
        f"| sharpness (1 = as sharp as the recordings) | {r['sharpness']:.3f} |",
        f"| actions read back, world / recordings | {a['world']:.3f} / {a['recordings']:.3f} |",
    ]
    if "task" in results:
        t = results["task"]
        lines += [
            f"| reward MAE | {t['reward_mae']:.3f} |",
            f"| episode end: accuracy / precision / recall | {t['end_accuracy']:.3f} / {t['end_precision']:.3f} / {t['end_recall']:.3f} |",
        ]
    return "\n".join(lines) + "\n"
