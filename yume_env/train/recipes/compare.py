"""Compare recipe runs mid-training: the same measurements on each run's latest pretrain checkpoint.

An architecture or batch-size sweep runs the recipe once per variant (`--set model_overrides...`),
each in its own folder, for the same wall-clock time; this then loads every folder's newest
`ckpt/pretrain` checkpoint (EMA weights) with the folder's own VAE and model config and measures:

- rollout PSNR against the simulator (the recipe's own drift measure: its clips, seed and length);
- teacher-forced PSNR of one chunk after k simulator steps;
- the conditioning ablation at t = 1 (x0 error with the true inputs, another clip's action,
  another clip's history, and "copy the last frame"): does the variant use its action?

    python -m yume_env.train.recipes.compare RUN_A RUN_B ... --text-cache text_cache.safetensors \\
        --json compare.json --markdown compare.md [--save-dits DIR]

`--save-dits DIR` also writes each run's measured DiT weights as float16 (`DIR/<run>.safetensors`,
half the bytes, so a sweep's worlds fit what a device call sends back) beside its model config
(`DIR/<run>.json`), for a full `yume-env eval` on a CPU later.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from yume_env.model.dit import build_dit
from yume_env.model.vae import build_vae
from yume_env.train import distributed as D
from yume_env.data.sim_clips import SimClipSource
from yume_env.train.checkpointing import atomic_write_text, latest_checkpoint, load_checkpoint
from yume_env.train.recipes.default_world import PRESETS, _load_module, _text_conditioner, apply_overrides, drift_clips
from yume_env.train.rollout import rollout_psnr, snapshot_world, teacher_forced_psnr
from yume_env.train.stages.pretrain import dit_state


def save_dit(world, info: dict[str, Any], out: Path, name: str) -> Path:
    """The world's DiT as float16 safetensors plus `{"config": ..., "run": info}` JSON, both atomic."""
    from yume_env.train.checkpointing import atomic_save_safetensors

    out.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v).contiguous().cpu() for k, v in world.dit.state_dict().items()}
    atomic_save_safetensors(state, out / f"{name}.safetensors")
    atomic_write_text(out / f"{name}.json", json.dumps({"config": world.config.to_dict(), "run": info}, indent=1))
    return out / f"{name}.safetensors"


def load_run_world(run: Path, text, device: torch.device):
    """(WorldModel with the run's latest pretrain EMA weights, info) for a recipe run folder."""
    state = json.loads((run / "run.json").read_text(encoding="utf-8"))
    recipe = apply_overrides(PRESETS[state["preset"]](), state.get("overrides", []))
    mc = recipe.model_config()
    vae_path = run / "weights" / "vae.safetensors"
    if not vae_path.is_file():
        raise FileNotFoundError(f"{run} has no trained VAE ({vae_path}); run the recipe's vae stage first")
    vae = _load_module(build_vae(mc.vae, mc.latent_channels), vae_path).to(device).eval()
    ckpt = latest_checkpoint(run / "ckpt" / "pretrain")
    dit = build_dit(mc, device="cpu")
    if ckpt is not None:
        step, ck = load_checkpoint(ckpt)
        dit.load_state_dict(dit_state((ck.get("ema") or {}).get("shadow") or ck["model"]))
        info = {"step": int(step), "elapsed_s": float(ck["schedule"]["elapsed_s"]), "checkpoint": str(ckpt)}
    else:  # a finished stage: its (EMA) weights
        names = [n for n in ("dit_pretrain", "dit_self_forcing") if (run / "weights" / f"{n}.safetensors").is_file()]
        if not names:
            raise FileNotFoundError(f"{run} has neither a pretrain checkpoint nor finished DiT weights")
        _load_module(dit, run / "weights" / f"{names[0]}.safetensors")
        stage = state["stages"]["pretrain"]
        info = {"step": stage["steps"], "elapsed_s": stage["elapsed_s"], "checkpoint": f"weights/{names[0]}.safetensors"}
    world = snapshot_world(mc, dit.to(device).eval(), vae, text)
    info["overrides"] = state.get("overrides", [])
    info["parameters"] = sum(p.numel() for p in dit.parameters())
    return world, recipe, info


@torch.no_grad()
def measure(run: Path, text, device: torch.device, save_dits: Path | None = None) -> dict[str, Any]:
    """The recipe's drift measure (its own clips and seed) plus teacher-forced PSNR and the ablation."""
    from yume_env.eval.conditioning import conditioning_ablation

    world, recipe, info = load_run_world(run, text, device)
    if save_dits is not None:
        save_dit(world, info, save_dits, run.name)
    mc = world.config
    source = SimClipSource(mc.height, mc.width, sub_frames=mc.latent_frames_per_chunk * mc.temporal_compression,
                           device=device)
    data = drift_clips(source, recipe, seed=11)
    drift = rollout_psnr(world, data, recipe.eval_steps, seed=11)
    ablation = conditioning_ablation(world, clips=32, noise_levels=(1.0,))["rows"][0]
    return {"run": str(run), **info,
            "rollout_psnr_mean_db": drift["psnr_mean"], "rollout_psnr_by_step_db": drift["psnr_by_step"],
            "teacher_forced_psnr_db": teacher_forced_psnr(world, data, [1, 4, 8], seed=11),
            "x0_error_t1": {k: v for k, v in ablation.items() if k != "t"}}


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| run | weights | overrides | params | pretrain step | minutes | rollout PSNR | teacher-forced PSNR "
             "| x0 err true | shuffled action | shuffled history | copy last |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        e = r["x0_error_t1"]
        over = "<br>".join(o for o in r["overrides"] if o.startswith(("model_overrides", "pretrain."))) or "-"
        lines.append(f"| {Path(r['run']).name} | {Path(r['checkpoint']).name} | {over} | {r['parameters'] / 1e6:.2f}M | {r['step']} | {r['elapsed_s'] / 60:.1f} "
                     f"| {r['rollout_psnr_mean_db']:.2f} | {r['teacher_forced_psnr_db']:.2f} | {e['true']:.3f} "
                     f"| {e['shuffled_action']:.3f} | {e['shuffled_history']:.3f} | {e['copy_last_frame']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m yume_env.train.recipes.compare", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="recipe run folders")
    p.add_argument("--text-cache", default=None, help="text cache file (needed where MiniLM is not installed)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None)
    p.add_argument("--save-dits", default=None, metavar="DIR",
                   help="also write each run's DiT (float16) and model config here")
    args = p.parse_args(argv)
    device = D.pick_device(args.device)
    text = _text_conditioner(args.text_cache)
    rows = []
    for run in args.runs:
        rows.append(measure(Path(run), text, device, Path(args.save_dits) if args.save_dits else None))
        print(f"{run}: rollout {rows[-1]['rollout_psnr_mean_db']:.2f} dB, teacher-forced "
              f"{rows[-1]['teacher_forced_psnr_db']:.2f} dB", file=sys.stderr, flush=True)
    table = markdown(rows)
    print(table)
    if args.json:
        atomic_write_text(args.json, json.dumps(rows, indent=1))
    if args.markdown:
        atomic_write_text(args.markdown, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
