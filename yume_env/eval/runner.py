"""`evaluate`: every measure of the learned world against the simulator, in one results dict."""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from yume_env.eval.action_following import action_following
from yume_env.eval.config import EvalConfig
from yume_env.eval.event_following import event_following
from yume_env.eval.fidelity import autoregressive, references, teacher_forced
from yume_env.eval.loop_closure import loop_closure, turn_back
from yume_env.eval.probes import Probes
from yume_env.eval.rollout import burn_in, lockstep
from yume_env.eval.simulate import random_actions
from yume_env.eval.speed import measure_speed
from yume_env.eval.targets import check_targets, lookup

STRIP_STEPS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


# The measures' random streams, in a fixed order: the rollout's (which the teacher-forced and the
# action-following measures continue, as they read its frames) keeps `config.seed` / `sample_seed`.
STREAMS = ("rollout", "loop_closure", "event_following", "speed", "turn_back")


def _streams(model, config: EvalConfig, measure: str) -> tuple[np.random.Generator, torch.Generator]:
    """The measure's own action RNG and sampling generator."""
    k = STREAMS.index(measure)
    rng = np.random.default_rng(config.seed if k == 0 else [config.seed, k])
    return rng, torch.Generator(device=model.device).manual_seed(config.sample_seed + 1_000_003 * k)


def evaluate(model, probes: Probes, config: EvalConfig, model_name: str = "model", probes_path: str = "",
             progress: bool = True) -> dict:
    """Runs the measures in order (rollout -> references -> teacher-forced -> actions -> loop -> events
    -> speed).

    Seeds: each measure draws its worlds from its own block of seeds above `config.seed`, and its
    actions and sampling noise from its own streams (`_streams`), so adding episodes to one measure
    never changes another's worlds, actions or noise.
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
        "sampling": {"sample_steps": int(model.config.sample_steps),
                     "spread_gain_max": float(getattr(model.config, "spread_gain_max", 1.0))},
        "host": {"device": str(model.device), "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()},
        "config": config.to_dict(),
        "probes": {"path": probes_path, "event_classes": probes.event_classes, "record": probes.record},
    }
    if "rollout" in chosen:
        rng, gen = _streams(model, config, "rollout")
        seeds = [config.seed + i for i in range(config.episodes)]
        start = burn_in(model, seeds, config.burn_in, rng)
        actions = np.stack([random_actions(rng, config.rollout_steps) for _ in seeds])
        roll = lockstep(model, start, actions, gen, desc="autoregressive rollout", progress=progress)
        ar = autoregressive(roll, config.horizons)
        shown = [s for s in STRIP_STEPS if s <= roll.sim.shape[1]]
        ar["_frames"] = {"steps": shown, "sim": roll.sim[0, [s - 1 for s in shown], -1],
                         "model": roll.model[0, [s - 1 for s in shown], -1]}
        lap("autoregressive")
        # Reference predictors (simulators only, no random draws): what PSNR / SSIM read without the model.
        ar["references"] = references(roll, seeds, config.horizons, progress=progress)
        lap("references")
        results["teacher_forced"] = teacher_forced(model, roll, config.tf_points, config.tf_context, gen,
                                                   progress=progress)
        lap("teacher_forced")
        results["autoregressive"] = ar
        results["action_following"] = action_following(probes, roll)
        lap("action_following")
    if "memory" in chosen:
        lc = loop_closure(model, config.loop_episodes, config.loop_walk, config.loop_turn, config.burn_in,
                          config.loop_tries, config.seed + 100_000, *_streams(model, config, "loop_closure"),
                          progress=progress)
        lc["turn_back"] = turn_back(model, config.turn_back_episodes, config.turn_back_steps, config.burn_in,
                                    config.seed + 400_000, *_streams(model, config, "turn_back"), progress=progress)
        results["loop_closure"] = lc
        lap("loop_closure")
    if "events" in chosen:
        results["event_following"] = event_following(
            model, probes, config.events, config.event_episodes, config.event_steps, config.event_judge,
            config.burn_in, config.seed + 200_000, *_streams(model, config, "event_following"), progress=progress)
        lap("event_following")
    if "speed" in chosen:
        results["speed"] = measure_speed(model, config.speed_steps, config.speed_warmup, config.speed_batch,
                                         config.seed + 300_000, *_streams(model, config, "speed"))
        lap("speed")
    seconds["total"] = sum(seconds.values())
    results["seconds"] = seconds
    results["targets"] = check_targets(results)
    results["metrics"] = {row["name"]: row["value"] for row in results["targets"]}  # None: not measured
    extra = {  # name: path into the results (the measures that ran)
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
    }
    results["metrics"].update({name: lookup(results, path) for name, path in extra.items()
                               if path.split(".")[0] in results})
    return results
