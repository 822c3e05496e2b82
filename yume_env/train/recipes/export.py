"""The last step of `yume-env train world`: measure the trained world, write the model folder.

RUN/model/ = `WorldModel.save_pretrained` (config.json, dit/vae/task_head safetensors, text_cache/,
start_frames.npz) + README.md, the model card with YAML metadata as the Hugging Face Hub reads it
(data, steps, GPU minutes, metrics, how to reproduce).
RUN/samples/ = gifs of rollouts, the simulator on the left and the learned world on the right
under the same actions: `rollout_K.gif` (the training policy's held actions) and `scripted.gif`
(the recipe's `script`: W, pan right, W, pan left, S, each held for several steps) to judge action following by eye.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yume_env.actions import parse_action
from yume_env.atomic import atomic_write, atomic_write_text
from yume_env.data.recorded_clips import RecordedClipSource
from yume_env.data.shards import ShardReader, read_index, split_episodes
from yume_env.data.sim_clips import Clips, SimClipSource, batch_seed
from yume_env.model.config import WorldModelConfig
from yume_env.train.rollout import rollout_psnr, snapshot_world, teacher_forced_psnr


def start_views(config: WorldModelConfig, count: int, seed: int = 0) -> dict[str, np.ndarray]:
    """`count` simulator start views (the beacon stands in view at reset), no events."""
    from yume_env.sim import Simulator

    sim = Simulator(config.height, config.width, sub_frames=config.latent_frames_per_chunk, seed=seed)
    frames = np.stack([sim.reset(seed=seed + i) for i in range(count)])
    return {"frames": frames.astype(np.uint8), "events": np.array([""] * count)}


def scripted_clip(config: WorldModelConfig, script: list[str], seed: int, device) -> Clips:
    """The simulator under `script` (action strings, e.g. "W", "→") from one start view."""
    from yume_env.sim import Simulator

    sim = Simulator(config.height, config.width, sub_frames=config.latent_frames_per_chunk, seed=seed)
    frames = [sim.reset(seed=seed)[None]]
    actions = np.stack([parse_action(a) for a in script])
    for a in actions:
        frames.append(sim.step(a).frames)
    return Clips(
        torch.from_numpy(np.concatenate(frames)[None]).to(device),
        torch.from_numpy(actions[None]).to(device),
        [[""] * len(script)],
        torch.zeros(1, len(script)),
        torch.zeros(1, len(script), dtype=torch.bool),
        config.latent_frames_per_chunk,
    )


def side_by_side(sim: np.ndarray, model: np.ndarray, scale: int = 3) -> np.ndarray:
    """(T, H, W, 3) x2 -> (T, H*scale, (2W+2)*scale, 3): simulator | model."""
    gap = np.full((*sim.shape[:2], 2, 3), 255, dtype=np.uint8)
    both = np.concatenate([sim, gap, model], axis=2)
    return both.repeat(scale, axis=1).repeat(scale, axis=2)


def write_gif(path: Path, frames: np.ndarray, fps: int) -> None:
    import imageio.v2 as imageio

    atomic_write(path, lambda tmp: imageio.mimsave(tmp, list(frames), duration=1.0 / max(1, fps), loop=0))


def export_model(
    root: Path, mc: WorldModelConfig, recipe, dit, vae, head, text, source, state: dict[str, Any]
) -> dict[str, Any]:
    """Measures, writes RUN/model/ with its card and RUN/samples/; returns the final metrics."""
    world = snapshot_world(mc, dit, vae, text, task_head=head)
    recorded = isinstance(source, RecordedClipSource)
    if recorded:  # held-out episodes for every measurement; the start views are training resets
        source = RecordedClipSource(source.root, source.device, split="heldout", workers=0)
    world.start_frames = (
        recorded_starts(source.root, recipe.start_frames)
        if recorded
        else start_views(mc, recipe.start_frames, seed=recipe.seed + 1000)
    )
    scripted = scripted_out = None
    if mc.vocabulary.is_yume and not recorded:
        scripted, scripted_out = scripted_rollout(world, recipe, source)
    metrics = measure(world, recipe, source, scripted_out)
    fps = max(1, mc.fps)
    samples = root / "samples"
    steps = min(recipe.sample_steps, recipe.eval_steps) if recorded else recipe.sample_steps
    show = source.render(recipe.sample_gifs, steps, batch_seed(recipe.seed + 7, 1))
    shown = rollout_psnr(world, show, steps, seed=6)
    gt = show.frames.cpu().numpy()[:, 1:]
    for i in range(recipe.sample_gifs):
        write_gif(samples / f"rollout_{i}.gif", side_by_side(gt[i], shown["frames"][i]), fps)
    labels = {
        f"rollout_{i}.gif": [mc.vocabulary.label(a) for a in show.actions[i].cpu().numpy()]
        for i in range(recipe.sample_gifs)
    }
    if scripted is not None:
        write_gif(
            samples / "scripted.gif", side_by_side(scripted.frames.cpu().numpy()[0, 1:], scripted_out["frames"][0]), fps
        )
        labels["scripted.gif"] = recipe.script
    model_dir = world.save_pretrained(root / "model")
    atomic_write_text(model_dir / "README.md", model_card(mc, recipe, state, metrics))  # the Hub's model card
    atomic_write_text(samples / "actions.json", json.dumps(labels, ensure_ascii=False, indent=1))
    return metrics


def recorded_starts(root: str, count: int) -> dict[str, np.ndarray]:
    """The reset frames of up to `count` recorded training episodes, no events."""
    reader, (train, _) = ShardReader(root), split_episodes(read_index(root)["episodes"])
    frames = np.stack([reader.read(e, 0, 1)["frames"][0] for e in train[:count]])
    return {"frames": frames.astype(np.uint8), "events": np.array([""] * len(frames))}


def scripted_rollout(world, recipe, source) -> tuple[Clips, dict[str, Any]]:
    """The simulator's clip of the recipe's scripted tour and the world's rollout of it."""
    scripted = scripted_clip(world.config, recipe.script, recipe.seed + 3, source.device)
    return scripted, rollout_psnr(world, scripted, len(recipe.script), seed=7)


def measure(world, recipe, source, scripted_out: dict[str, Any] | None = None) -> dict[str, Any]:
    """The export metrics of a world against the simulator: teacher-forced and rollout PSNR on the
    recipe's held-out clips, and the rollout PSNR of the scripted tour (fixed clips and seeds, so
    two worlds measured here are compared on the same examples). `scripted_out`: that tour's
    rollout when the caller already has it (`scripted_rollout`)."""
    clips = source.render(recipe.eval_clips, recipe.eval_steps, batch_seed(recipe.seed + 424242, 99))
    roll = rollout_psnr(world, clips, recipe.eval_steps, seed=5)
    out = {
        "teacher_forced_psnr_db": teacher_forced_psnr(world, clips, [0, 2, recipe.eval_steps // 2], seed=5),
        "rollout_psnr_mean_db": roll["psnr_mean"],
        "rollout_psnr_last_step_db": roll["psnr_by_step"][-1],
        "rollout_psnr_by_step_db": roll["psnr_by_step"],
        "rollout_steps": len(roll["psnr_by_step"]),
    }
    if scripted_out is None and world.config.vocabulary.is_yume and isinstance(source, SimClipSource):
        scripted_out = scripted_rollout(world, recipe, source)[1]
    if scripted_out is not None:
        out["scripted_rollout_psnr_db"] = scripted_out["psnr_mean"]
    return out


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def model_card(mc: WorldModelConfig, recipe, state: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The model card (README.md): YAML metadata, what the world is, its data, training calls and figures."""
    from yume_env.data.sim_clips import ActionPolicy, EventPlan

    stages, calls = state["stages"], state["calls"]
    all_s = sum(c["seconds"] for c in calls)
    # GPU-minutes count every process of a torchrun call (3 GPUs for 8 min = 24 GPU-minutes)
    gpu_s = sum(c["seconds"] * c.get("world_size", 1) for c in calls if c["device"] != "cpu")
    call_rows = "\n".join(
        f"| {i + 1} | {c.get('world_size', 1)} x {c['device']} | {c['seconds'] / 60:.1f} | {c.get('torch', '-')} |"
        for i, c in enumerate(calls)
    )
    m = {**state.get("metrics", {}), **metrics}
    rows = "\n".join(
        f"| {s} | {stages.get(s, {}).get('steps', '-')} | {stages.get(s, {}).get('elapsed_s', 0) / 60:.1f} |"
        for s in ("pretrain", "reward")
    )
    scalars = "\n".join(f"| {k} | {_fmt(v)} |" for k, v in sorted(m.items()) if not isinstance(v, list))
    p, r = recipe.pretrain, recipe.reward
    policy, events = ActionPolicy(), EventPlan()
    sets = " ".join(f"--set {o}" for o in state.get("overrides", []))
    if state.get("data"):
        data_text = (
            f"{state['data']}: windows of the training episodes (the held-out ones are measured below), "
            f"actions {list(mc.action_nvec)}, the recorded rewards and episode ends."
        )
    else:
        data_text = (
            f"Clips rendered on the fly (no dataset on disk): random (key, camera) actions held for a "
            f"geometric number of steps (mean {policy.mean_hold:g}); {int(100 * policy.seek_fraction)}% of the "
            f"cameras seek the beacon; text events in {int(100 * events.probability)}% of the clips; "
            f"{int(100 * p.revisit_fraction)}% of the clips end by coming back to a view."
        )
    data = state.get("data") or "the simulator `YumeSim-v0`"
    return f"""---
library_name: yume-env
tags: [world-model, video-diffusion, gymnasium, yume]
pipeline_tag: reinforcement-learning
yume_env:
  preset: {state.get("preset")}
  data: {json.dumps(state.get("data") or "YumeSim-v0")}
  steps: {json.dumps({k: v.get("steps") for k, v in stages.items()})}
  gpu_minutes: {gpu_s / 60:.1f}
---
# yume-env world

A world model of the Yume1.5 design (Wan-style DiT with TSCM history memory) trained on {data}.
`gym.make("YumeWorld-v0", model=THIS_FOLDER)` loads it.

## Model
- frames {mc.height}x{mc.width} RGB, {mc.latent_frames_per_chunk} frames per env step, `{mc.vae.get("type")}` codec
  ({mc.spatial_compression}x{mc.spatial_compression} pixel blocks as {mc.latent_channels} channels);
- DiT: dim {mc.dim}, {mc.num_layers} blocks, {mc.num_heads} heads, ffn {mc.ffn_dim}; predicts the
  {"clean chunk" if mc.prediction == "sample" else "flow velocity"}, {mc.sample_steps} sampler steps (shift {mc.shift:g});
  TSCM schedule `{mc.tscm_schedule}`, channel-stream memory {"on" if mc.memory_enabled else "off"},
  pose memory {"on" if mc.pose_memory else "off"}, {mc.recall_frames} recalled view(s);
- conditioning: [action caption, event text] as {mc.text_tokens} MiniLM tokens (cached in `text_cache/`),
  plus a learned action embedding;
- task head (`task_head.safetensors`): the task's signals from a chunk;
- `start_frames.npz`: {recipe.start_frames} start views.

## Data
{data_text} Pretrain: {p.batch_size} clips of {p.clip_steps} steps per
step, history noise up to {p.history_noise_max} ({int(100 * p.history_noise_prob)}% of the examples).
Reward: {r.batch_size} clips of {r.clip_steps} steps per step.

## Training
| stage | steps | minutes |
|---|---|---|
{rows}

Total wall time {all_s / 60:.1f} min over {len(calls)} call(s), {gpu_s / 60:.1f} GPU-minutes.

| call | processes x device | minutes | torch |
|---|---|---|---|
{call_rows}

## Metrics at export (PSNR against the data under the same actions)
| metric | value |
|---|---|
{scalars}

`yume-env eval --model THIS_FOLDER` gives the full evaluation.

## Reproduce
```
yume-env train world --out RUN --preset {state.get("preset")} {sets} --call-minutes 8.5   # repeat until exported
```
"""
