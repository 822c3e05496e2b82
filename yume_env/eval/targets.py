"""The targets for the shipped default world (issues 5 and 29), as data: metric path, comparison, bound."""

from __future__ import annotations

from typing import Any

# (name, path into the results, comparison, bound, description)
TARGETS: tuple[tuple[str, str, str, float, str], ...] = (
    ("teacher_forced_psnr", "teacher_forced.psnr", ">=", 30.0, "teacher-forced next-chunk PSNR (dB)"),
    ("ar_psnr@16", "autoregressive.psnr@16", ">=", 24.0, "autoregressive PSNR at step 16 (dB)"),
    ("ar_psnr@256", "autoregressive.psnr@256", ">=", 18.0, "autoregressive PSNR at step 256 (dB)"),
    ("idm_key_accuracy", "action_following.model.key_accuracy", ">=", 0.95, "keys recovered from generated frames"),
    (
        "idm_camera_accuracy",
        "action_following.model.camera_accuracy",
        ">=",
        0.95,
        "camera moves recovered from generated frames",
    ),
    ("loop_gap_to_sim_db", "loop_closure.gap_to_sim_db", "<=", 3.0, "return-view PSNR below the simulator's own (dB)"),
    (
        "loop_gain_over_memory_off_db",
        "loop_closure.gain_over_memory_off_db",
        ">=",
        3.0,
        "return-view PSNR gain of memory on over off (dB)",
    ),
    ("event_rate", "event_following.model.rate", ">=", 0.90, "prompted events that appear"),
    ("steps_per_s", "speed.steps_per_s", ">=", 20.0, "env steps/s, one world (target stated for 2 CPU cores)"),
    (
        "sharpness_random",
        "realism.random.sharpness_min_from_64",
        ">=",
        0.8,
        "sharpness over the simulator's at steps 64-256, random actions (the lower)",
    ),
    (
        "sharpness_scripted",
        "realism.scripted.sharpness_min_from_64",
        ">=",
        0.8,
        "sharpness over the simulator's at steps 64-256, action scripts (the lower)",
    ),
    (
        "frechet_over_floor_random",
        "realism.random.frechet_over_floor@256",
        "<=",
        2.0,
        "Fréchet distance at step 256 over the other-worlds floor, random actions",
    ),
    (
        "frechet_over_floor_scripted",
        "realism.scripted.frechet_over_floor@256",
        "<=",
        2.0,
        "Fréchet distance at step 256 over the other-worlds floor, action scripts",
    ),
)


def lookup(results: dict, path: str) -> Any:
    node: Any = results
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def check_targets(results: dict) -> list[dict]:
    """One row per target: value (None if not measured), pass (None if not measured)."""
    rows = []
    for name, path, op, bound, text in TARGETS:
        value = lookup(results, path)
        ok = None if value is None else (value >= bound if op == ">=" else value <= bound)
        rows.append({"name": name, "description": text, "value": value, "op": op, "target": bound, "pass": ok})
    return rows
