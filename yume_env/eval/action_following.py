"""Action following: the inverse-dynamics probe reads the action back from the frames.

On the simulator's frames it gives the probe's own accuracy on held-out worlds (the metric is only
meaningful when that is high); on the learned world's frames, under the same actions, it measures
how well the world follows the keys and camera moves. The truth is the simulator's effective action.
"""

from __future__ import annotations

import numpy as np

from yume_env.actions import NUM_CAMERAS, NUM_KEYS
from yume_env.eval.probes import Probes
from yume_env.eval.rollout import Rollout


def _pairs(start: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, H, W, 3) start view + (B, S, F, H, W, 3) -> before / after last frames (B*S, H, W, 3)."""
    last = steps[:, :, -1]
    before = np.concatenate([start[:, None], last[:, :-1]], axis=1)
    return before.reshape(-1, *last.shape[-3:]), last.reshape(-1, *last.shape[-3:])


def _confusion(truth: np.ndarray, pred: np.ndarray, n: int) -> list[list[int]]:
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (truth, pred), 1)
    return m.tolist()


def action_following(probes: Probes, rollout: Rollout) -> dict:
    truth = rollout.effective.reshape(-1, 2)
    out: dict = {
        "transitions": int(len(truth)),
        "commanded_equals_effective": float((rollout.actions.reshape(-1, 2) == truth).all(1).mean()),
    }
    for side, frames in (("sim", rollout.sim), ("model", rollout.model)):
        pred = probes.predict_actions(*_pairs(rollout.start_view, frames))
        out[side] = {
            "key_accuracy": float((pred[:, 0] == truth[:, 0]).mean()),
            "camera_accuracy": float((pred[:, 1] == truth[:, 1]).mean()),
            "action_accuracy": float((pred == truth).all(1).mean()),
            "key_confusion": _confusion(truth[:, 0], pred[:, 0], NUM_KEYS),
            "camera_confusion": _confusion(truth[:, 1], pred[:, 1], NUM_CAMERAS),
        }
    return out
