"""Loop closure: walk out, turn around, walk back, turn back, and compare the return view with the
start view, for the simulator itself and for the learned world with memory on and off.

Memory off: after every step the world is rebuilt from its own last chunk only
(`init_state(last frames)`), so its history holds one chunk and the channel stream sums one chunk;
it can only remember what is still in view.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from yume_env.actions import CAMERAS, KEYS
from yume_env.eval.config import HALF_TURN_STEPS
from yume_env.eval.metrics import psnr, ssim
from yume_env.eval.rollout import burn_in, init_states

WALK = np.array([KEYS.index("W"), CAMERAS.index("·")])
TURN = np.array([KEYS.index("None"), CAMERAS.index("→")])
TURN_BACK = np.array([KEYS.index("None"), CAMERAS.index("←")])
POSITION_TOLERANCE = 0.05  # metres: the simulator's own loop must close this well to count
ANGLE_TOLERANCE = np.deg2rad(1.0)


def loop_script(walk: int, turn: int) -> np.ndarray:
    """(2 * walk + 2 * turn, 2): W x walk, → x turn, W x walk, → x turn."""
    return np.concatenate([np.tile(WALK, (walk, 1)), np.tile(TURN, (turn, 1))] * 2).astype(np.int64)


def _closes(p0: np.ndarray, p1: np.ndarray) -> bool:
    r = p0[:3, :3].T @ p1[:3, :3]
    angle = np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1))
    return bool(np.linalg.norm(p1[:3, 3] - p0[:3, 3]) < POSITION_TOLERANCE and angle < ANGLE_TOLERANCE)


def loop_closure(
    model,
    episodes: int,
    walk: int,
    turn: int,
    burn: int,
    tries: int,
    seed: int,
    rng: np.random.Generator,
    generator: torch.Generator,
    progress: bool = True,
) -> dict:
    script = loop_script(walk, turn)
    # Pick worlds where the simulator's own loop closes (no wall in the way).
    seeds, burn_actions, skipped = [], [], []
    for candidate in range(seed, seed + episodes * tries):
        if len(seeds) == episodes:
            break
        acts = rng.integers(0, [len(KEYS), 1], size=(burn, 2))  # burn-in: keys only, level camera
        sim = burn_in(model, [candidate], burn, rng, actions=acts[None]).sims[0]
        p0 = np.array(sim.pose)
        for a in script:
            sim.step(a)
        if _closes(p0, np.array(sim.pose)):
            seeds.append(candidate)
            burn_actions.append(acts)
        else:
            skipped.append(candidate)
    if not seeds:
        raise RuntimeError(
            f"the simulator's own loop (walk {walk}, turn {turn}) closed in none of seeds {skipped[0]}..{skipped[-1]}: "
            f"a loop closes only when turn x 10 deg = 180 deg (turn={HALF_TURN_STEPS}) and no wall is in the way; "
            "fix loop_turn, lower loop_walk or raise loop_tries"
        )
    start = burn_in(model, seeds, burn, rng, actions=np.stack(burn_actions))
    start_view = start.frames[:, -1]
    B = len(seeds)
    last_on, last_off = return_views(model, start, script, generator, "loop closure", progress)
    for sim in start.sims:
        for a in script:
            sim.step(a)  # the simulators walk the same script; their return view is rendered below
    sim_return = np.stack([sim.render() for sim in start.sims])
    views = {"sim": sim_return, "memory_on": last_on, "memory_off": last_off}
    out: dict = {
        "episodes": B,
        "seeds": seeds,
        "skipped_seeds": skipped,
        "script_steps": int(len(script)),
        "walk": int(walk),
        "turn": int(turn),
    }
    per_world = {name: psnr(view, start_view).numpy() for name, view in views.items()}
    for name, view in views.items():
        out[f"{name}_psnr"] = float(per_world[name].mean())
        out[f"{name}_ssim"] = float(ssim(view, start_view).mean())
    out["gap_to_sim_db"] = out["sim_psnr"] - out["memory_on_psnr"]
    out["gain_over_memory_off_db"] = out["memory_on_psnr"] - out["memory_off_psnr"]
    # per world and the standard error of the mean: the gain swings by dBs from world to world
    gains = per_world["memory_on"] - per_world["memory_off"]
    out["gain_per_world_db"] = gains.tolist()
    out["gain_stderr_db"] = _stderr(gains)
    out["_views"] = {"start": start_view, **views}  # for the report's figure; dropped from the JSON
    return out


def return_views(
    model, start, script: np.ndarray, generator: torch.Generator, desc: str, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Fresh worlds from `start` take the `script`, with memory on and off, batched together; the
    last frame of each side (B, H, W, 3). Memory off: after every step the world is rebuilt from
    its own last chunk only (module docstring)."""
    B = len(start.sims)
    on, off = init_states(model, start), init_states(model, start)
    for a in tqdm(script, desc=desc, disable=not progress):
        frames = model.step(on + off, np.tile(a, (2 * B, 1)), generator).frames
        off = [model.init_state(fr) for fr in frames[B:]]
    return frames[:B, -1], frames[B:, -1]


def _stderr(values: np.ndarray) -> float | None:
    """Standard error of the mean over worlds (None for one world)."""
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None


def turn_back(
    model,
    episodes: int,
    turns: tuple[int, ...],
    burn: int,
    seed: int,
    rng: np.random.Generator,
    generator: torch.Generator,
    progress: bool = True,
) -> dict:
    """Turn k steps right and k back left, standing still, for each k in `turns`: PSNR of the return
    view against the start view with memory on and off (as in `loop_closure`). Standing and turning
    in place always returns the simulator to its start view, so no world is skipped; the measure
    shows how many steps back the world's memory still recalls what it saw."""
    actions = rng.integers(0, [len(KEYS), 1], size=(episodes, burn, 2))  # burn-in: keys only, level camera
    seeds = [seed + i for i in range(episodes)]
    out: dict = {"episodes": episodes, "seeds": seeds, "turns": {}}
    start = burn_in(model, seeds, burn, rng, actions=actions)  # the same worlds for every k (only frames are read)
    start_view = start.frames[:, -1]
    for k in turns:
        script = np.array([TURN] * k + [TURN_BACK] * k)
        last_on, last_off = return_views(model, start, script, generator, f"turn back {k}", progress)
        p_on, p_off = psnr(last_on, start_view).numpy(), psnr(last_off, start_view).numpy()
        gains = p_on - p_off
        out["turns"][str(k)] = {
            "memory_on_psnr": float(p_on.mean()),
            "memory_off_psnr": float(p_off.mean()),
            "gain_db": float(gains.mean()),
            "gain_stderr_db": _stderr(gains),
        }
    return out
