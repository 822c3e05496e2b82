"""CPU time of one default-world training step, split into batch making, forward and backward.

    PYTHONPATH=. python benchmarks/train_step_cpu.py --text-cache TEXT_CACHE.safetensors [--steps 3]

One thread (`torch.set_num_threads(1)`), CPU time from `time.process_time()`. The clip pool is
rendered once (timed separately) and then served for every measured batch; cProfile counts the
Python-level calls and the aten operators (about one kernel launch each on a GPU) of one pretrain step.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time

import torch


def _cpu(fn):
    t0 = time.process_time()
    out = fn()
    return out, time.process_time() - t0


def _calls(fn) -> int:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    return int(pstats.Stats(prof).total_calls)


def _aten_ops(fn) -> int:
    """Top-level aten operator calls (each is at least one kernel launch on a GPU)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return int(sum(e.count for e in prof.key_averages() if e.key.startswith("aten::")))


def main(argv: list[str] | None = None) -> dict:
    from yume_env.data.sim_clips import SimClipSource
    from yume_env.model.codecs import build_vae
    from yume_env.model.dit import build_dit
    from yume_env.train.recipes.world import load_recipe
    from yume_env.train.stages.pretrain import DenoiseModule, PretrainStream
    from yume_env.train.text_cache import load_text_cache

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--text-cache", required=True)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    recipe = load_recipe("default-world")
    mc = recipe.model_config()
    text = load_text_cache(args.text_cache)
    source = SimClipSource(mc.height, mc.width, sub_frames=mc.latent_frames_per_chunk * mc.temporal_compression)
    vae = build_vae(mc.vae, mc.latent_channels).eval().requires_grad_(False)
    dit = build_dit(mc)
    cfg = recipe.pretrain
    cfg.batch_size = args.batch
    cfg.pool_clips = args.batch  # one pool, rendered once below
    cfg.pool_reuse = 1e6
    stream = PretrainStream(source, vae, text, mc, cfg)
    _, render_s = _cpu(lambda: stream.pool.pool(0))  # rendering only: each batch encodes its own clips
    module = DenoiseModule(dit, mc).train()
    res = {
        "batch": args.batch,
        "pool_render_and_encode_s": render_s,
        "pool_clips": cfg.pool_clips,
        "clip_steps": cfg.clip_steps,
    }
    make, fwd, bwd = [], [], []
    for i in range(args.steps):
        batch, t = _cpu(lambda: stream.make(i))
        make.append(t)
        (loss, _), t = _cpu(lambda: module(batch))
        fwd.append(t)
        _, t = _cpu(lambda: loss.backward())
        bwd.append(t)
        dit.zero_grad(set_to_none=True)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    res.update(pretrain_make_s=med(make), pretrain_forward_s=med(fwd), pretrain_backward_s=med(bwd))
    res["pretrain_step_s"] = res["pretrain_make_s"] + res["pretrain_forward_s"] + res["pretrain_backward_s"]

    def one_step():
        loss, _ = module(stream.make(0))
        loss.backward()
        dit.zero_grad(set_to_none=True)

    res["pretrain_python_calls_per_step"] = _calls(one_step)
    res["pretrain_aten_ops_per_step"] = _aten_ops(one_step)  # ~ kernel launches on a GPU
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
