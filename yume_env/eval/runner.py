"""`evaluate`: every measure of the learned world against the simulator, in one results dict."""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from yume_env.eval.action_following import action_following
from yume_env.eval.config import EvalConfig
from yume_env.eval.event_following import event_following
from yume_env.eval.features import FrechetFeatures
from yume_env.eval.fidelity import autoregressive, other_world_frames, references, teacher_forced
from yume_env.eval.loop_closure import loop_closure, turn_back
from yume_env.eval.probes import Probes
from yume_env.eval.realism import REFERENCES as REALISM_REFERENCES
from yume_env.eval.realism import realism, scripted_rollout
from yume_env.eval.rollout import Rollout, burn_in, lockstep
from yume_env.eval.simulate import random_actions
from yume_env.eval.speed import measure_speed
from yume_env.eval.targets import check_targets, lookup
from yume_env.eval.task_reached import task_reached

STRIP_STEPS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


# The measures' random streams, in a fixed order: the rollout's (which the teacher-forced and the
# action-following measures continue, as they read its frames) keeps `config.seed` / `sample_seed`.
STREAMS = ("rollout", "loop_closure", "event_following", "speed", "turn_back", "scripted", "task")
# The first world seed of each measure, above `config.seed` (the rollout's is `config.seed` itself).
SEED_BLOCKS = {
    "loop_closure": 100_000,
    "event_following": 200_000,
    "speed": 300_000,
    "turn_back": 400_000,
    "scripted": 500_000,
    "task": 600_000,
}


def _streams(model, config: EvalConfig, measure: str) -> tuple[np.random.Generator, torch.Generator]:
    """The measure's own action RNG and sampling generator."""
    k = STREAMS.index(measure)
    rng = np.random.default_rng(config.seed if k == 0 else [config.seed, k])
    return rng, torch.Generator(device=model.device).manual_seed(config.sample_seed + 1_000_003 * k)


def _strip(roll: Rollout) -> dict:
    """The first world's last sub-frame at the `STRIP_STEPS` the rollout reaches, both sides."""
    shown = [s for s in STRIP_STEPS if s <= roll.sim.shape[1]]
    index = [s - 1 for s in shown]
    return {"steps": shown, "sim": roll.sim[0, index, -1], "model": roll.model[0, index, -1]}


def evaluate(
    model, probes: Probes, config: EvalConfig, model_name: str = "model", probes_path: str = "", progress: bool = True
) -> dict:
    """Runs the measures in order (rollout -> references -> teacher-forced -> actions -> realism ->
    loop -> events -> speed -> scripted rollout -> task head).

    Seeds: each measure draws its worlds from its own block of seeds above `config.seed`
    (`SEED_BLOCKS`), and its actions and sampling noise from its own streams (`_streams`), so adding
    episodes to one measure never changes another's worlds, actions or noise.
    """
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = now - clock
        clock = now

    chosen = set(config.measures)
    results: dict = {
        "model": model_name,
        "frame_size": list(model.frame_size),
        "frames_per_step": int(model.frames_per_step),
        "sampling": {
            "sample_steps": int(model.config.sample_steps),
            "spread_gain_max": float(getattr(model.config, "spread_gain_max", 1.0)),
        },
        "host": {"device": str(model.device), "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()},
        "config": config.to_dict(),
        "probes": {"path": probes_path, "event_classes": probes.event_classes, "record": probes.record},
    }
    if chosen & {"rollout", "script"}:
        features = FrechetFeatures(probes)
        results["realism"] = {"about": REALISM_REFERENCES, "features": features.describe()}
    if "rollout" in chosen:
        rng, gen = _streams(model, config, "rollout")
        seeds = [config.seed + i for i in range(config.episodes)]
        start = burn_in(model, seeds, config.burn_in, rng)
        actions = np.stack([random_actions(rng, config.rollout_steps) for _ in seeds])
        roll = lockstep(model, start, actions, gen, desc="autoregressive rollout", progress=progress)
        ar = autoregressive(roll, config.horizons)
        ar["_frames"] = _strip(roll)
        lap("autoregressive")
        # Reference predictors (simulators only, no random draws): what PSNR / SSIM read without the model.
        other = other_world_frames(roll, seeds, progress=progress)
        ar["references"] = references(roll, seeds, config.horizons, progress=progress, other=other)
        lap("references")
        results["teacher_forced"] = teacher_forced(
            model, roll, config.tf_points, config.tf_context, gen, progress=progress
        )
        lap("teacher_forced")
        results["autoregressive"] = ar
        results["action_following"] = action_following(probes, roll)
        lap("action_following")
        results["realism"]["random"] = realism(
            features, roll.sim, roll.model, other, config.horizons, config.realism_window
        )
        lap("realism")
    if "memory" in chosen:
        lc = loop_closure(
            model,
            config.loop_episodes,
            config.loop_walk,
            config.loop_turn,
            config.burn_in,
            config.loop_tries,
            config.seed + SEED_BLOCKS["loop_closure"],
            *_streams(model, config, "loop_closure"),
            progress=progress,
        )
        lc["turn_back"] = turn_back(
            model,
            config.turn_back_episodes,
            config.turn_back_steps,
            config.burn_in,
            config.seed + SEED_BLOCKS["turn_back"],
            *_streams(model, config, "turn_back"),
            progress=progress,
        )
        results["loop_closure"] = lc
        lap("loop_closure")
    if "events" in chosen:
        results["event_following"] = event_following(
            model,
            probes,
            config.events,
            config.event_episodes,
            config.event_steps,
            config.event_judge,
            config.burn_in,
            config.seed + SEED_BLOCKS["event_following"],
            *_streams(model, config, "event_following"),
            progress=progress,
        )
        lap("event_following")
    if "speed" in chosen:
        results["speed"] = measure_speed(
            model,
            config.speed_steps,
            config.speed_warmup,
            config.speed_batch,
            config.seed + SEED_BLOCKS["speed"],
            *_streams(model, config, "speed"),
        )
        lap("speed")
    if "script" in chosen:
        roll, seeds = scripted_rollout(
            model,
            config.script_episodes,
            config.rollout_steps,
            config.burn_in,
            config.seed + SEED_BLOCKS["scripted"],
            *_streams(model, config, "scripted"),
            progress=progress,
        )
        other = other_world_frames(roll, seeds, progress=progress)
        results["realism"]["scripted"] = {
            **realism(features, roll.sim, roll.model, other, config.horizons, config.realism_window),
            "_frames": _strip(roll),
        }
        lap("scripted")
    if "task" in chosen:
        results["task_reached"] = task_reached(
            model,
            config.task_episodes,
            config.task_steps,
            config.burn_in,
            config.seed + SEED_BLOCKS["task"],
            *_streams(model, config, "task"),
            progress=progress,
        )
        lap("task_reached")
    seconds["total"] = sum(seconds.values())
    results["seconds"] = seconds
    results["targets"] = check_targets(results)
    results["metrics"] = {row["name"]: row["value"] for row in results["targets"]}  # None: not measured
    results["metrics"].update(
        {name: lookup(results, path) for name, path in _extra_metrics(config).items() if path.split(".")[0] in results}
    )
    return results


def _extra_metrics(config: EvalConfig) -> dict[str, str]:
    """The headline figures beside the targets' (name: path into the results)."""
    realism_paths = {
        f"{name}_{acts}@{h}": f"realism.{acts}.{side}.{kind}@{h}"
        for acts in ("random", "scripted")
        for h in config.horizons
        for name, side, kind in (
            ("frechet", "world", "frechet"),
            ("sharpness", "world", "sharpness"),
            ("frechet_floor", "other_world", "frechet"),
        )
    }
    return {
        "teacher_forced_ssim": "teacher_forced.ssim",
        **{f"ar_ssim@{h}": f"autoregressive.ssim@{h}" for h in config.horizons},
        **{f"ar_psnr@{h}": f"autoregressive.psnr@{h}" for h in config.horizons},
        "idm_sim_key_accuracy": "action_following.sim.key_accuracy",
        "idm_sim_camera_accuracy": "action_following.sim.camera_accuracy",
        "loop_sim_psnr": "loop_closure.sim_psnr",
        "loop_memory_on_psnr": "loop_closure.memory_on_psnr",
        "loop_memory_off_psnr": "loop_closure.memory_off_psnr",
        "event_sim_rate": "event_following.sim.rate",
        "event_false_alarm": "event_following.model.false_alarm",
        "event_kept_rate": "event_following.model.kept.rate",
        "batched_world_steps_per_s": "speed.batched.world_steps_per_s",
        **realism_paths,
        "reached_precision": "task_reached.head.precision",
        "reached_recall": "task_reached.head.recall",
        "reached_precision_env_rule": "task_reached.env_rule.precision",
        "reached_recall_env_rule": "task_reached.env_rule.recall",
    }
