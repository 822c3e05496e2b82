"""Named subsets of the 81 (key, camera) actions, for agents that learn faster with fewer choices
(like Atari's minimal action sets). An action set is a list of action texts; index i -> action i."""

from __future__ import annotations

import numpy as np

from yume_env import actions as A

ACTION_SETS: dict[str, list[str]] = {
    # every action, in the flat order key * 9 + camera (the env's Discrete(81))
    "full": [A.action_to_str(np.array(A.unflatten_action(i))) for i in range(A.NUM_ACTIONS)],
    # walk and steer: enough for the beacon task, 5 choices
    "walk": ["W", "W →", "W ←", "→", "←"],
}


def resolve_action_set(action_set: str | list[str]) -> list[str]:
    """A name from ACTION_SETS or an explicit list of action texts -> the list of texts (checked)."""
    if isinstance(action_set, str):
        if action_set not in ACTION_SETS:
            raise ValueError(
                f"unknown action set {action_set!r}; expected one of {sorted(ACTION_SETS)} or a list of action texts"
            )
        texts = ACTION_SETS[action_set]
    else:
        texts = [str(t) for t in action_set]
    if not texts:
        raise ValueError("an action set needs at least one action text")
    for text in texts:
        A.parse_action(text)  # raises ValueError naming a bad text
    return list(texts)


def action_table(action_set: str | list[str]) -> np.ndarray:
    """int64 (K, 2): row i is the (key, camera) of action-set index i."""
    return np.stack([A.parse_action(t) for t in resolve_action_set(action_set)]).astype(np.int64)
