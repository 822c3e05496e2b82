"""`ActionVocabulary`: the actions a world takes, as sizes and names (plain data and numpy).

A world's config holds its vocabulary (`WorldModelConfig.action_nvec`, `action_names`); the DiT's
action embedding, the env's action space and the recorded data follow it. Yume's vocabulary is
`YUME` (9 movement keys x 9 camera moves, `yume_env.actions`); a world trained on another env's
recordings has that env's (`Discrete(2)` -> nvec (2,), `MultiDiscrete([3, 4])` -> (3, 4)). An action
is one integer per component; `flat` numbers the combinations (row-major, as the DiT embeds them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from yume_env.actions import CAMERAS, KEYS


@dataclass(frozen=True)
class ActionVocabulary:
    nvec: tuple[int, ...]  # choices per component
    names: tuple[tuple[str, ...], ...] = ()  # per component, a name per choice (optional)

    def __post_init__(self):
        object.__setattr__(self, "nvec", tuple(int(n) for n in self.nvec))
        object.__setattr__(self, "names", tuple(tuple(str(x) for x in row) for row in self.names))
        if not self.nvec or any(n < 1 for n in self.nvec):
            raise ValueError(f"an action vocabulary needs one or more components of >= 1 choices, got nvec {self.nvec}")
        if self.names and [len(row) for row in self.names] != list(self.nvec):
            raise ValueError(
                f"action names must give one name per choice of each component {self.nvec}, "
                f"got {[len(row) for row in self.names]}"
            )

    @property
    def size(self) -> int:
        """How many distinct actions (the product of `nvec`)."""
        return int(np.prod(self.nvec))

    @property
    def components(self) -> int:
        return len(self.nvec)

    @property
    def is_yume(self) -> bool:
        """Whether this is Yume's key x camera vocabulary (whose actions have captions and motion)."""
        return self.nvec == YUME.nvec and (not self.names or self.names == YUME.names)

    def check(self, actions, what: str = "actions", rows: int | None = None) -> np.ndarray:
        """`actions` as int64 (B, components), or ValueError naming what is wrong and what is expected."""
        arr = np.asarray(actions.cpu() if hasattr(actions, "cpu") else actions)
        want = f"integers of shape ({'B' if rows is None else rows}, {self.components}) with component i in [0, nvec[i]) for nvec {list(self.nvec)}"
        if (
            arr.dtype == object
            or arr.ndim != 2
            or arr.shape[1] != self.components
            or (rows is not None and len(arr) != rows)
        ):
            raise ValueError(f"{what} must be {want}, got {arr.dtype} {arr.shape}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{what} must be {want}, got {arr.dtype} {arr.shape}")
        bad = (arr < 0) | (arr >= np.asarray(self.nvec))
        if bad.any():
            row = int(np.flatnonzero(bad.any(1))[0])
            raise ValueError(
                f"{what}: row {row} is {arr[row].tolist()}; component i must be in [0, nvec[i]) for nvec {list(self.nvec)}"
            )
        return arr.astype(np.int64)

    def flat(self, actions: np.ndarray) -> np.ndarray:
        """(B,) flat indices of checked actions (B, components), row-major."""
        return np.ravel_multi_index(tuple(np.asarray(actions).T), self.nvec).astype(np.int64)

    def unflat(self, index: int) -> np.ndarray:
        """The action (components,) of a flat index."""
        if not 0 <= int(index) < self.size:
            raise ValueError(f"a flat action must be in [0, {self.size}), got {index!r}")
        return np.array(np.unravel_index(int(index), self.nvec), dtype=np.int64)

    def label(self, action) -> str:
        """A short text of one action: its names ("W →") or its numbers ("1" / "2 0")."""
        a = np.asarray(action).reshape(-1)
        if self.names:
            return " ".join(self.names[i][int(v)] for i, v in enumerate(a))
        return " ".join(str(int(v)) for v in a)

    def to_config(self) -> dict:
        return {"action_nvec": list(self.nvec), "action_names": [list(row) for row in self.names]}


YUME = ActionVocabulary((len(KEYS), len(CAMERAS)), (KEYS, CAMERAS))
