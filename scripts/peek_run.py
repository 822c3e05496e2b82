"""Looks at an unfinished `yume-env train world` run: rollouts of its EMA weights beside the simulator.

    python scripts/peek_run.py RUN OUT [--clips 8] [--steps 64] [--set sample_steps=4 ...]

Builds the world of RUN's latest pretrain checkpoint or finished DiT (no task head), rolls it out
from simulator start views under random held actions, and writes OUT/peek_TAG.json (teacher-forced
PSNR, rollout PSNR and sharpness by step, and the denoiser's clean chunk at fixed noise levels
beside its noisy input: a denoiser below its input at low noise cannot keep detail) and
OUT/peek_TAG.png (simulator over world at steps 1, 4, 16, 32, 64, ...).
`--set` changes sampler fields of the world's config (e.g. sample_steps, shift, sample_renoise).
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from yume_env.atomic import atomic_write, atomic_write_text
from yume_env.data.sim_clips import ActionPolicy, SimClipSource, batch_seed
from yume_env.eval.metrics import laplacian_energy
from yume_env.model.codecs import build_vae
from yume_env.model.config import parse_assignment
from yume_env.model.dit import build_dit
from yume_env.train.checkpointing import latest_checkpoint, load_checkpoint
from yume_env.train.recipes.world import _text_conditioner, load_recipe
from yume_env.train.rollout import rollout_psnr, snapshot_world, teacher_forced_psnr
from yume_env.train.stages.pretrain import DenoiseModule, PretrainConfig, denoise_batch, dit_state

NOISE_LEVELS = (1.0, 0.67, 0.33, 0.1, 0.02)


def peek(run: Path, clips: int, steps: int, changes: list[str], device: str, text_cache: str):
    state = json.loads((run / "run.json").read_text())
    recipe = load_recipe(state["preset"], state.get("overrides", []))
    mc = recipe.model_config().replace(**dict(parse_assignment(c) for c in changes))
    path = latest_checkpoint(run / "ckpt" / "pretrain")
    if path is not None:  # pretraining goes on: its EMA weights
        step, ckpt = load_checkpoint(path)
        weights = dit_state(ckpt["ema"]["shadow"])
    elif (run / "weights" / "dit.safetensors").is_file():  # pretraining is done
        from safetensors.torch import load_file

        step, weights = state["stages"]["pretrain"]["steps"], load_file(str(run / "weights" / "dit.safetensors"))
    else:
        raise SystemExit(f"{run} holds no pretrain checkpoint or weights yet")
    dit = build_dit(mc, device="cpu")
    world = snapshot_world(
        mc,
        dit,
        build_vae(mc.vae, mc.latent_channels),
        _text_conditioner(text_cache),
        ema_state=weights,
    )
    world = world.to(device)
    source = SimClipSource(
        mc.height, mc.width, sub_frames=mc.latent_frames_per_chunk, device="cpu", policy=ActionPolicy()
    )
    data = source.render(clips, steps, batch_seed(12345, 1))
    roll = rollout_psnr(world, data, steps, seed=3)
    gt = data.frames.numpy()[:, 1:]
    F = mc.latent_frames_per_chunk
    sim_e = laplacian_energy(gt).double().reshape(clips, steps, F).mean(dim=(0, 2))
    world_e = laplacian_energy(roll["frames"]).double().reshape(clips, steps, F).mean(dim=(0, 2))
    out = {
        "denoiser_psnr_by_noise_db": denoiser_psnr(world, data, text_cache),
        "step": step,
        "changes": changes,
        "teacher_forced_psnr_db": teacher_forced_psnr(world, data, [0, 2, 8], seed=3),
        "rollout_psnr_by_step_db": [round(v, 2) for v in roll["psnr_by_step"]],
        "sharpness_by_step": [round(float(v), 3) for v in (world_e / sim_e)],
    }
    shown = [s for s in (1, 4, 16, 32, 64, 128, 256) if s <= steps]
    rows = []
    for i in range(min(clips, 4)):
        for frames in (gt[i], roll["frames"][i]):
            rows.append(np.concatenate([frames[s * F - 1] for s in shown], axis=1))
    return out, np.concatenate(rows, axis=0).repeat(2, 0).repeat(2, 1)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return round(float(10 * torch.log10(4 / (a.float() - b.float()).square().mean())), 2)


@torch.no_grad()
def denoiser_psnr(world, data, text_cache: str) -> dict:
    """The DiT's clean chunk (PSNR, pixels in [-1, 1]) at each of NOISE_LEVELS from a clean history of
    the start view and of 3 steps, beside its noisy input's and the newest frame's."""
    from yume_env.model.vae import encode_clips

    mc, module = world.config, DenoiseModule(world.dit, world.config)
    text, lat = _text_conditioner(text_cache), encode_clips(world.vae, data.frames.to(world.device))
    out = {}
    for k in (0, 3):
        b = denoise_batch(
            lat, data, k, text, mc, PretrainConfig(history_noise_prob=0.0), torch.Generator().manual_seed(0)
        )
        x0, eps = b["x0"], b["eps"].to(lat.device)
        row = {"newest_frame": _psnr(b["history"][:, :, -1:].expand_as(x0), x0)}
        for t in NOISE_LEVELS:
            x_t = (1 - t) * x0 + t * eps
            pred = module.predict(b, x_t, torch.full((x0.shape[0],), t, device=x0.device))
            row[f"t={t}"] = {"denoised": _psnr(pred, x0), "input": _psnr(x_t, x0)}
        out[f"history_{k}_steps"] = row
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--set", dest="changes", action="append", default=[])
    p.add_argument("--device", default="cpu")
    p.add_argument("--text-cache", default="yume_env/assets/default_world")
    a = p.parse_args()
    torch.manual_seed(0)
    result, strip = peek(a.run, a.clips, a.steps, a.changes, a.device, a.text_cache)
    import imageio.v2 as imageio

    tag = "_".join(c.replace("=", "") for c in a.changes) or "as_trained"
    atomic_write_text(a.out / f"peek_{tag}.json", json.dumps(result, indent=1))
    atomic_write(a.out / f"peek_{tag}.png", lambda tmp: imageio.imwrite(tmp, strip, format="png"))
    print(json.dumps({k: v for k, v in result.items()}, indent=None))
