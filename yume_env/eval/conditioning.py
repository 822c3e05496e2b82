"""How much a trained world uses its history and its action: the flow-matching x0 error under ablations.

For simulator clips encoded by the world's own VAE, the DiT predicts the next chunk's latents x0
from x_t = (1 - t) x0 + t eps at several noise levels t. The error is measured with the true
inputs, with each example's history or action taken from another clip, with an all-zero history,
and against the trivial predictor "the next chunk equals the last history frame". A world that
follows the keys shows a clear gap between "true" and "shuffled action" at high t; one that only
continues the picture sits near "copy last frame".

    python -m yume_env.eval.conditioning --model yume_env/assets/default_world --json out.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from yume_env.data.sim_clips import SimClipSource
from yume_env.model.vae import encode_clips
from yume_env.train.stages.pretrain import FlowMatchingModule, PretrainConfig, flow_batch

NOISE_LEVELS = (0.3, 0.6, 0.9, 1.0)


@torch.no_grad()
def x0_error(dit, batch: dict[str, Any]) -> float:
    """Mean squared error of the x0 the DiT implies on `batch` (the training loss's own metric)."""
    return float(FlowMatchingModule(dit)(batch)[1]["x0_mse"])


def _with_history(batch: dict[str, Any], history: list[torch.Tensor]) -> dict[str, Any]:
    return {**batch, "history": history, "history_latents": torch.stack(history)}


@torch.no_grad()
def conditioning_ablation(world, clips: int = 32, step: int = 5, seed: int = 777,
                          noise_levels: tuple[float, ...] = NOISE_LEVELS) -> dict[str, Any]:
    """x0 errors (normalised latent units; var(x0) is about 1) per noise level for a `WorldModel`."""
    config, dit = world.config, world.dit.eval()
    source = SimClipSource(config.height, config.width, sub_frames=config.latent_frames_per_chunk)
    data = source.render(clips, step + 1, seed)
    latents = encode_clips(world.vae, data.frames.to(world.device))
    gen = torch.Generator(device=latents.device).manual_seed(seed)
    cfg = PretrainConfig(history_noise_max=0.0)
    other = torch.roll(torch.arange(clips), 1).tolist()  # each example gets its neighbour's input
    rows = []
    for level in noise_levels:
        batch = flow_batch(latents, data, [step] * clips, world.text, config, cfg, gen)
        batch["t"] = torch.full((clips,), float(level), device=latents.device)
        last = torch.stack([h[:, -1:] for h in batch["history"]]).expand_as(batch["x0"])
        rows.append({
            "t": float(level),
            "true": x0_error(dit, batch),
            "shuffled_action": x0_error(dit, {**batch, "context": batch["context"][other], "action": batch["action"][other]}),
            "shuffled_history": x0_error(dit, _with_history(batch, [batch["history"][i] for i in other])),
            "zero_history": x0_error(dit, _with_history(batch, [torch.zeros_like(h) for h in batch["history"]])),
            "copy_last_frame": float(((last - batch["x0"]) ** 2).mean()),
            "x0_variance": float(batch["x0"].var()),
        })
    return {"clips": clips, "history_steps": step, "seed": seed, "rows": rows}


def markdown(result: dict[str, Any]) -> str:
    lines = ["| t | true inputs | shuffled action | shuffled history | zero history | copy last frame | var(x0) |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['t']:.1f} | {r['true']:.3f} | {r['shuffled_action']:.3f} | {r['shuffled_history']:.3f} | "
                     f"{r['zero_history']:.3f} | {r['copy_last_frame']:.3f} | {r['x0_variance']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from yume_env.model.pipeline import WorldModel
    from yume_env.model.paths import default_world_path

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="world folder (default: the shipped default world)")
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--step", type=int, default=5, help="history length in env steps")
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    world = WorldModel.from_pretrained(args.model or default_world_path())
    result = conditioning_ablation(world, args.clips, args.step, args.seed)
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
