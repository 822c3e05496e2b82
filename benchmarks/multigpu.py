"""Multi-GPU training run (issue 9): DDP scaling of the default world's pretraining, and the Yume-5B
shape under FSDP2 with activation checkpointing, a sharded checkpoint and a resume from it.

    NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 \
        torchrun --standalone --nproc_per_node 2 benchmarks/multigpu.py --out "$OUT"
    torchrun --standalone --nproc_per_node 2 benchmarks/multigpu.py --smoke --out /tmp/mg   # CPU, gloo

(a) DDP: the `pretrain` stage's train module (`DenoiseModule`) and the shared `Trainer` on the
    default world's model (recipe `default`, its per-GPU batch), on synthetic batches of the
    stage's shapes (random history lengths over the stage's clip length), so the measurement is
    the training step and its gradient all-reduce, not the simulator. Rank 0 first trains alone
    (before the process group exists, so nothing waits for other ranks), then every rank trains
    under DDP at the same per-GPU batch: scaling efficiency = DDP samples/s / (N x 1-GPU samples/s).
(b) FSDP2: the Yume-5B DiT shape (`WorldModelConfig.preset("yume-5b")` at 544x960, latent 34x60;
    the channel stream off, as in the published backbone), random bf16 weights, sharded per block
    by `sharding.shard_world_model` with activation checkpointing; AdamW fine-tuning steps on one
    example per GPU with a TSCM history; peak memory per GPU and step time; then a sharded
    checkpoint (`torch.distributed.checkpoint`, model + optimizer) is saved, the run takes more
    steps (the reference), a fresh model with other random weights loads the checkpoint and takes
    the same steps on the same batches (the resumed run): the losses must continue.

Writes OUT/multigpu.json (after each phase, atomically) and OUT/multigpu.md.
"""

from __future__ import annotations

import os

# NVLink multicast off (device README); set before torch initialises NCCL
os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")

import argparse
import dataclasses
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from yume_env.model import tscm  # noqa: E402
from yume_env.model.config import WorldModelConfig  # noqa: E402
from yume_env.model.dit import build_dit  # noqa: E402
from yume_env.train import distributed as D  # noqa: E402
from yume_env.train.recipes.world import load_recipe  # noqa: E402
from yume_env.train.sharding import shard_world_model  # noqa: E402
from yume_env.train.stages.pretrain import DenoiseModule  # noqa: E402
from yume_env.train.trainer import Trainer, TrainerConfig  # noqa: E402

GIB = 1024**3


def now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ============================================================================ (a) DDP scaling


class SyntheticBatches:
    """A cycle of pre-made batches of the pretrain stage's shapes (a `Trainer` stream)."""

    def __init__(self, mc: WorldModelConfig, batch: int, clip_steps: int, device, seed: int, count: int = 4):
        g = torch.Generator().manual_seed(seed)
        C, Fc, (h, w) = mc.latent_channels, mc.latent_frames_per_chunk, mc.latent_hw
        self.batches = []
        for _ in range(count):
            k = int(torch.randint(clip_steps, (), generator=g))  # one history length per batch, as the stage draws
            n = 1 + Fc * k
            self.batches.append(
                {
                    "history": torch.randn(batch, C, n, h, w, generator=g).to(device),
                    "history_noise": torch.zeros(batch, device=device),
                    "history_poses": torch.zeros(batch, n, 4, device=device),
                    "target_pose": torch.zeros(batch, 4, device=device),
                    "x0": torch.randn(batch, C, Fc, h, w, generator=g).to(device),
                    "eps": torch.randn(batch, C, Fc, h, w, generator=g).to(device),
                    "t": torch.rand(batch, generator=g).clamp(1e-3, 1.0).to(device),
                    "context": torch.randn(batch, mc.text_tokens, mc.text_dim, generator=g).to(device),
                    "action": torch.randint(mc.vocabulary.size, (batch,), generator=g).to(device),
                }
            )
        self.index = 0

    def next(self):
        b = self.batches[self.index % len(self.batches)]
        self.index += 1
        return b

    def state_dict(self):
        return {"index": self.index}

    def load_state_dict(self, state):
        self.index = int(state["index"])


def train_rate(
    mc: WorldModelConfig, tcfg: TrainerConfig, info: D.DistInfo, batch: int, clip_steps: int, warmup: int, steps: int
) -> dict:
    """samples/s of the pretrain stage's trainer on this process (x world size under DDP)."""
    torch.manual_seed(0)
    trainer = Trainer(DenoiseModule(build_dit(mc, device=info.device), mc), tcfg, None, info=info, name="pretrain")
    stream = SyntheticBatches(mc, batch, clip_steps, info.device, seed=info.rank)
    trainer.fit(stream, until_step=warmup)
    t0 = now(info.device)
    trainer.fit(stream, until_step=warmup + steps)
    dt = now(info.device) - t0
    samples = batch * steps * info.world_size
    return {
        "steps": steps,
        "step_s": dt / steps,
        "samples_per_s": samples / dt,
        "last_loss": trainer.curves.last("loss"),
    }


def ddp_phase(args, device: torch.device, rank: int, world: int) -> dict:
    recipe = load_recipe("smoke" if args.smoke else "default-world")
    mc = recipe.model_config()
    batch = args.ddp_batch or recipe.pretrain.batch_size
    clip_steps = recipe.pretrain.clip_steps
    tcfg = dataclasses.replace(
        recipe.pretrain.trainer,
        max_steps=10**9,
        budget_s=0.0,
        progress=False,
        checkpoint_every_s=0.0,
        checkpoint_every_steps=0,
        log_every=10**6,
    )
    single = None
    if rank == 0:  # alone, before the process group exists (the others wait in its rendezvous)
        single = train_rate(
            mc,
            dataclasses.replace(tcfg, parallel="none"),
            D.DistInfo(device=device),
            batch,
            clip_steps,
            args.warmup,
            args.ddp_steps,
        )
    info = D.init_distributed("cpu" if device.type == "cpu" else "cuda")
    single = D.broadcast_object(single)
    ddp = train_rate(
        mc, dataclasses.replace(tcfg, parallel="ddp"), info, batch, clip_steps, args.warmup, args.ddp_steps
    )
    speedup = ddp["samples_per_s"] / single["samples_per_s"]
    return {
        "model": f"default world (recipe {'smoke' if args.smoke else 'default'}: dim {mc.dim} x {mc.num_layers} blocks, "
        f"{mc.height}x{mc.width})",
        "per_gpu_batch": batch,
        "clip_steps": clip_steps,
        "bf16_autocast": bool(tcfg.bf16 and device.type == "cuda"),
        "ema_decay": tcfg.ema_decay,
        "one_gpu": single,
        "ddp": ddp,
        "gpus": world,
        "speedup": speedup,
        "scaling_efficiency": speedup / world,
    }


# ============================================================================ (b) FSDP2, 5B shape


def fsdp_config(smoke: bool) -> WorldModelConfig:
    c = WorldModelConfig.preset("yume-5b").replace(height=544, width=960, memory_enabled=False)
    if smoke:  # the same layout, scaled down for CPUs
        c = c.replace(dim=64, ffn_dim=128, num_layers=2, num_heads=2, text_dim=32, text_tokens=8, height=64, width=96)
    return c


def fsdp_batch(mc: WorldModelConfig, history_chunks: int, step: int, rank: int, device) -> dict:
    """One example per GPU, a pure function of (step, rank): a resumed step sees the same batch."""
    g = torch.Generator().manual_seed(1_000_003 * step + rank)
    C, Fc, (h, w) = mc.latent_channels, mc.latent_frames_per_chunk, mc.latent_hw
    ctx = torch.zeros(1, mc.text_tokens, mc.text_dim)
    ctx[:, : min(32, mc.text_tokens)] = torch.randn(1, min(32, mc.text_tokens), mc.text_dim, generator=g) * 0.1
    n = 1 + Fc * history_chunks
    return {
        "history": torch.randn(1, C, n, h, w, generator=g).to(device),
        "history_noise": torch.zeros(1, device=device),
        "x0": torch.randn(1, C, Fc, h, w, generator=g).to(device),
        "eps": torch.randn(1, C, Fc, h, w, generator=g).to(device),
        "t": torch.rand(1, generator=g).clamp(0.05, 0.95).to(device),
        "context": ctx.to(device),
        "action": torch.zeros(1, dtype=torch.long, device=device),
    }


def build_sharded(mc: WorldModelConfig, dtype: torch.dtype, seed: int, info: D.DistInfo, lr: float):
    with torch.random.fork_rng(devices=[info.device] if info.device.type == "cuda" else []):
        torch.manual_seed(seed)
        dit = build_dit(mc, device=info.device, dtype=dtype)  # the same weights on every rank, then sharded
    module = DenoiseModule(dit, mc)
    shard_world_model(module, bf16_params=False, activation_checkpointing=True)
    optimizer = torch.optim.AdamW(module.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.01)
    return module, optimizer


def train_step(module, optimizer, batch, device) -> float:
    ctx = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )
    with ctx:
        loss, _ = module(batch)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(D.all_reduce_mean(loss.detach().float()))


def unsharded_reference(args, mc: WorldModelConfig, dtype: torch.dtype, info: D.DistInfo) -> list[float]:
    """Losses of the same model and steps, unsharded, on the union of every rank's example (FSDP's
    averaged gradients are the gradients of that batch's mean loss): checks the sharding layout."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        dit = build_dit(mc, device=info.device, dtype=dtype)
    module = DenoiseModule(dit, mc)
    optimizer = torch.optim.AdamW(module.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01)
    losses = []
    for step in range(args.fsdp_steps):
        parts = [fsdp_batch(mc, args.history_chunks, step, r, info.device) for r in range(info.world_size)]
        batch = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        loss, _ = module(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss))
    return losses


def fsdp_phase(args, info: D.DistInfo, result: dict, save) -> dict:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import DefaultLoadPlanner
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    dev = info.device
    mc = fsdp_config(args.smoke)
    dtype = torch.bfloat16 if (args.param_dtype == "bfloat16" and not args.smoke) else torch.float32
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = now(dev)
    module, optimizer = build_sharded(mc, dtype, 0, info, args.lr)
    out = {
        "shape": {
            k: getattr(mc, k)
            for k in (
                "dim",
                "ffn_dim",
                "num_layers",
                "num_heads",
                "latent_channels",
                "height",
                "width",
                "latent_frames_per_chunk",
                "text_tokens",
                "tscm_schedule",
            )
        },
        "latent_hw": list(mc.latent_hw),
        "history_latents": 1 + mc.latent_frames_per_chunk * args.history_chunks,
        "current_tokens": mc.latent_frames_per_chunk * mc.tokens_per_latent_frame,
        "history_tokens": tscm.history_token_count(
            mc.tscm_schedule, 1 + mc.latent_frames_per_chunk * args.history_chunks, mc.latent_hw
        ),
        "parameters": sum(p.numel() for p in module.parameters()),
        "param_dtype": str(dtype).replace("torch.", ""),
        "per_gpu_batch": 1,
        "activation_checkpointing": True,
        "build_s": now(dev) - t0,
    }
    losses, times = [], []
    for step in range(args.fsdp_steps):
        batch = fsdp_batch(mc, args.history_chunks, step, info.rank, dev)
        t = now(dev)
        losses.append(train_step(module, optimizer, batch, dev))
        times.append(now(dev) - t)
        if info.is_main:
            print(f"fsdp step {step}: loss {losses[-1]:.4f}, {times[-1]:.2f} s", flush=True)
    out.update(losses=losses, step_s=times, median_step_s=statistics.median(times[1:] or times))
    if dev.type == "cuda":
        peak = torch.tensor([torch.cuda.max_memory_allocated(dev) / GIB], device=dev)
        peaks = [torch.zeros_like(peak) for _ in range(info.world_size)]
        torch.distributed.all_gather(peaks, peak)
        out["peak_memory_gib_per_gpu"] = [round(float(p), 2) for p in peaks]
    result["fsdp"] = out
    if args.smoke:  # the same steps without sharding, in one process on both ranks' examples
        out["unsharded_losses"] = unsharded_reference(args, mc, dtype, info) if info.is_main else None
        D.barrier()
    save()

    # sharded checkpoint after the last step, then the reference continuation
    ckpt = Path(args.ckpt_dir) if args.ckpt_dir else Path(tempfile.gettempdir()) / "yume_multigpu_dcp"
    if info.is_main and ckpt.exists():
        shutil.rmtree(ckpt)
    D.barrier()
    t = now(dev)
    model_sd, optim_sd = get_state_dict(module, optimizer)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(ckpt))
    D.barrier()
    save_s = now(dev) - t
    size = sum(f.stat().st_size for f in ckpt.rglob("*") if f.is_file()) if info.is_main else 0
    first = args.fsdp_steps
    reference = []
    for step in range(first, first + args.resume_steps):
        reference.append(train_step(module, optimizer, fsdp_batch(mc, args.history_chunks, step, info.rank, dev), dev))
    del module, optimizer, model_sd, optim_sd
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()

    # a fresh model with other weights, loaded from the sharded checkpoint
    t = now(dev)
    module, optimizer = build_sharded(mc, dtype, 12345, info, args.lr)
    model_sd, optim_sd = get_state_dict(module, optimizer)
    state = {"model": model_sd, "optim": optim_sd}
    # partial: the fresh optimizer has (zero) moments for parameters that never had a gradient
    # (TSCM embedders of history bands these examples do not reach), which the checkpoint lacks
    dcp.load(state, checkpoint_id=str(ckpt), planner=DefaultLoadPlanner(allow_partial_load=True))
    set_state_dict(module, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    load_s = now(dev) - t
    resumed = []
    for step in range(first, first + args.resume_steps):
        resumed.append(train_step(module, optimizer, fsdp_batch(mc, args.history_chunks, step, info.rank, dev), dev))
    diffs = [abs(a - b) / max(abs(a), 1e-12) for a, b in zip(reference, resumed)]
    out["checkpoint"] = {
        "format": "torch.distributed.checkpoint (model + AdamW, sharded)",
        "save_s": save_s,
        "bytes": size,
        "load_s_with_rebuild": load_s,
        "steps_before": first,
    }
    out["resume"] = {
        "reference_losses": reference,
        "resumed_losses": resumed,
        "max_rel_diff": max(diffs),
        "last_loss_before_checkpoint": losses[-1],
    }
    if dev.type == "cuda":
        out["peak_memory_gib_per_gpu_incl_resume"] = round(torch.cuda.max_memory_allocated(dev) / GIB, 2)
    del module, optimizer, state
    D.barrier()
    if info.is_main and not args.keep_checkpoint:
        shutil.rmtree(ckpt, ignore_errors=True)
    return out


# ============================================================================ report


def markdown(r: dict) -> str:
    lines = [f"# Multi-GPU training ({r['gpus']} x {r['device']}, torch {r['torch']})", ""]
    a = r.get("ddp_scaling")
    if a:
        lines += [
            "## DDP: default-world pretraining, same per-GPU batch",
            "",
            "| setup | per-GPU batch | step (s) | samples/s |",
            "|---|---|---|---|",
            f"| 1 GPU | {a['per_gpu_batch']} | {a['one_gpu']['step_s']:.4f} | {a['one_gpu']['samples_per_s']:.1f} |",
            f"| DDP x {a['gpus']} | {a['per_gpu_batch']} | {a['ddp']['step_s']:.4f} | {a['ddp']['samples_per_s']:.1f} |",
            "",
            f"Speed-up {a['speedup']:.2f}x, scaling efficiency {a['scaling_efficiency']:.2f} ({a['model']}).",
            "",
        ]
    b = r.get("fsdp")
    if b:
        s = b["shape"]
        peaks = b.get("peak_memory_gib_per_gpu")
        lines += [
            "## FSDP2: Yume-5B shape, activation checkpointing",
            "",
            "| quantity | value |",
            "|---|---|",
            f"| parameters | {b['parameters'] / 1e9:.2f} B ({b['param_dtype']}) |",
            f"| frames / latent | {s['height']}x{s['width']} / {b['latent_hw'][0]}x{b['latent_hw'][1]}, "
            f"{s['latent_frames_per_chunk']} latent frames per chunk, {b['history_latents']} history latents |",
            f"| tokens per example | {b['current_tokens']} current + {b['history_tokens']} history |",
            f"| per-GPU batch | {b['per_gpu_batch']} |",
            f"| step time (median) | {b['median_step_s']:.2f} s |",
            f"| peak memory per GPU | {', '.join(f'{p:.1f} GiB' for p in peaks) if peaks else 'n/a (CPU)'} |",
            f"| losses | {', '.join(f'{v:.4f}' for v in b['losses'])} |",
        ]
        if "checkpoint" in b:
            c, m = b["checkpoint"], b["resume"]
            lines += [
                f"| sharded checkpoint | {c['bytes'] / GIB:.1f} GiB, saved in {c['save_s']:.1f} s, "
                f"rebuilt + loaded in {c['load_s_with_rebuild']:.1f} s |",
                f"| after step {c['steps_before']}: reference losses | {', '.join(f'{v:.4f}' for v in m['reference_losses'])} |",
                f"| resumed losses | {', '.join(f'{v:.4f}' for v in m['resumed_losses'])} (max rel. diff {m['max_rel_diff']:.1e}) |",
            ]
        lines.append("")
    lines.append(f"Total wall time {r.get('wall_s', 0):.0f} s.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.environ.get("OUT", "."), help="folder for multigpu.json / multigpu.md")
    p.add_argument(
        "--smoke", action="store_true", help="scaled-down shapes on CPU with gloo (the logic, not the speed)"
    )
    p.add_argument("--ddp-steps", type=int, default=None, help="timed DDP / 1-GPU steps (default 30, smoke 3)")
    p.add_argument("--ddp-batch", type=int, default=None, help="per-GPU batch (default: the recipe's)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5, smoke 1)")
    p.add_argument("--fsdp-steps", type=int, default=None, help="5B steps before the checkpoint (default 4, smoke 2)")
    p.add_argument("--resume-steps", type=int, default=2, help="steps after the checkpoint, reference and resumed")
    p.add_argument("--history-chunks", type=int, default=2, help="history of the 5B examples: 1 + 8 x N latent frames")
    p.add_argument(
        "--param-dtype", choices=("bfloat16", "float32"), default="bfloat16", help="5B weights (and AdamW moments)"
    )
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument(
        "--ckpt-dir", default=None, help="sharded checkpoint folder (default: in the temp dir, removed after)"
    )
    p.add_argument("--keep-checkpoint", action="store_true")
    p.add_argument("--skip", choices=("ddp", "fsdp"), action="append", default=[], help="leave a part out")
    args = p.parse_args(argv)
    args.ddp_steps = args.ddp_steps or (3 if args.smoke else 30)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 5)
    args.fsdp_steps = args.fsdp_steps or (2 if args.smoke else 4)

    start = time.perf_counter()
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world < 2:
        raise SystemExit(
            "run this under torchrun with 2 or more processes: "
            "torchrun --standalone --nproc_per_node 2 benchmarks/multigpu.py --out OUT"
        )
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and not args.smoke
    device = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
    if args.smoke:
        torch.set_num_threads(1)
    out_dir = Path(args.out)
    result = {
        "device": torch.cuda.get_device_name(device) if use_cuda else "CPU (gloo)",
        "gpus": world,
        "torch": torch.__version__,
        "smoke": args.smoke,
        "env": {k: os.environ.get(k) for k in ("NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST")},
        "command": " ".join(sys.argv),
    }

    def save():
        if rank == 0:
            result["wall_s"] = time.perf_counter() - start
            write_atomic(out_dir / "multigpu.json", json.dumps(result, indent=1))
            write_atomic(out_dir / "multigpu.md", markdown(result))

    if "ddp" not in args.skip:
        result["ddp_scaling"] = ddp_phase(args, device, rank, world)
        save()
    info = D.init_distributed("cuda" if use_cuda else "cpu")
    if "fsdp" not in args.skip:
        fsdp_phase(args, info, result, save)
    save()
    if rank == 0:
        print(markdown(result), flush=True)
    D.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
