"""Yume-5B speed on one GPU: DiT time per 4-step chunk and Wan2.2 decode time per chunk vs history length.

Random bf16 weights of the published shapes (`WorldModelConfig.preset("yume-5b")` and the Wan2.2
decoder), so no download is needed. One row per (resolution, history length, DiT mode) with
`dit_chunk_s` (TSCM history encode + 4 DiT steps), `decode_chunk_s` (streaming decode of 8 latents
= 32 frames), `peak_gib` and `fps_end_to_end`; the first chunk is reported apart as `dit_warmup_s`.
Modes: `global` (the published math, exact), `causal` (history keys/values computed once per chunk:
approximate), `--compile` (torch.compile per block); an offload row streams the blocks from pinned
CPU memory at 544x960. Columns and results: docs/yume5b.md.

    PYTHONUNBUFFERED=1 PYTHONPATH=. python benchmarks/yume5b_speed.py            # the GPU run
    PYTHONPATH=. python benchmarks/yume5b_speed.py --smoke                       # CPU logic check

Writes `yume5b_h100.json` and `.md` after every row to `$OUT` when set, else to benchmarks/results/.
Needs torch only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from yume_env.model.config import WorldModelConfig  # noqa: E402
from yume_env.model.dit import build_dit  # noqa: E402
from yume_env.model.tscm import frames_to_keep, history_token_count  # noqa: E402
from yume_env.model.wan.decoder import WanStreamDecoder  # noqa: E402
from yume_env.model.wan.offload import BlockStreamer  # noqa: E402

HISTORIES = (4, 85, 1000, 10000)
RESOLUTIONS = ((704, 1280), (544, 960))
# Published Yume code on an H100 80GB, random bf16 weights (DESIGN.md section 7): 4 forwards per chunk.
PUBLISHED = {
    "dit_chunk_s_704x1280": {4: 1.48, 85: 2.18, 1000: 2.90},
    "decode_chunk_s_704x1280": 1.65,
    "decode_chunk_s_544x960": 0.97,
    "fails_past_history_latents": 1016,
}
VAE_ENCODER_PARAMS = 149_637_088  # encoder.* + conv1.* of Wan2.2_VAE.pth (layout fixture): on the GPU in offload mode
SMOKE = dict(dim=128, ffn_dim=256, num_layers=2, num_heads=4, text_dim=64, text_tokens=16, height=32, width=64)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Bench:
    def __init__(self, args):
        self.args = args
        self.device = torch.device("cpu" if args.smoke else "cuda")
        self.cuda = self.device.type == "cuda"
        self.dtype = torch.float32 if args.smoke else torch.bfloat16
        base = WorldModelConfig.preset("yume-5b")
        self.base = base.replace(**SMOKE) if args.smoke else base
        self.out_dir = args.out or (
            Path(os.environ["OUT"])
            if os.environ.get("OUT")
            else (Path(tempfile.mkdtemp(prefix="yume5b_smoke_")) if args.smoke else ROOT / "benchmarks" / "results")
        )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.stem = "yume5b_h100" + (f"_{args.tag}" if args.tag else "")
        self.rows: list[dict] = []
        self.decode: dict[str, dict] = {}
        self.extra: dict = {}
        self.failures: list[dict] = []
        self.gen = torch.Generator(self.device).manual_seed(0)

    # ------------------------------------------------------------------ helpers
    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float:
        return torch.cuda.max_memory_allocated() / 2**30 if self.cuda else 0.0

    def randn(self, *shape) -> torch.Tensor:
        return torch.randn(*shape, generator=self.gen, device=self.device, dtype=torch.float32).to(self.dtype)

    def timed(self, fn) -> float:
        self.sync()
        t0 = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - t0

    def save(self) -> None:
        meta = {
            "benchmark": "yume5b_speed",
            "gpu": torch.cuda.get_device_name() if self.cuda else "cpu (smoke: scaled-down model, not a measurement)",
            "torch": torch.__version__,
            "dtype": str(self.dtype).replace("torch.", ""),
            "smoke": self.args.smoke,
            "compile": self.args.compile,
            "compile_mode": self.args.compile_mode if self.args.compile else None,
            "fp8": self.args.fp8,
            "failures": self.failures,
            "repeats": self.args.repeats,
            "published_reference": PUBLISHED,
            "decode": self.decode,
            **self.extra,
            "rows": self.rows,
            "notes": [
                "global = published attention (exact); causal = history K/V once per chunk (approximate)",
                "decode_chunk_s is measured once per resolution and repeated in each row of that resolution",
                "weights are random bf16 of the published shapes; the channel-stream memory read is included (gate 0)",
            ],
        }
        _atomic_write(self.out_dir / f"{self.stem}.json", json.dumps(meta, indent=2) + "\n")
        _atomic_write(self.out_dir / f"{self.stem}.md", markdown(meta))

    # ------------------------------------------------------------------ models
    def build_dit(self, mode: str):
        config = self.base.replace(history_attention=mode)
        dit = build_dit(config, device="meta", dtype=self.dtype)
        dit.to_empty(device=self.device)
        with torch.no_grad():
            dit.init_weights()
        dit.eval().requires_grad_(False)
        if self.args.fp8:
            from yume_env.model.wan.fp8 import quantize_blocks_fp8_

            quantize_blocks_fp8_(dit)
        if self.args.compile:
            torch._dynamo.config.cache_size_limit = 64
            for blk in dit.blocks:
                blk.compile(mode=self.args.compile_mode)
        return dit

    def build_decoder(self) -> WanStreamDecoder:
        with torch.device(self.device):  # initialise where it runs (555M parameters)
            dec = WanStreamDecoder(dim=16 if self.args.smoke else 256)
        dec = dec.to(self.dtype).eval()
        with torch.no_grad():  # weights small enough that activations stay finite through 30+ convs
            for p in dec.parameters():
                if p.dim() > 1:
                    p.normal_(0, (1.0 / p[0].numel()) ** 0.5, generator=self.gen)
        return dec

    # ------------------------------------------------------------------ DiT
    def history(self, dit, config, n: int):
        C, (h, w) = config.latent_channels, config.latent_hw
        kept = self.randn(C, len(frames_to_keep(config.tscm_schedule, n)), h, w)
        memory = None
        with torch.no_grad():
            for start in range(0, n, 256):  # bulk channel-stream state over all n latents, O(n)
                memory = dit.update_memory(memory, self.randn(C, min(256, n - start), h, w))
        return kept, memory

    def chunk(self, dit, config, kept, n, memory, context) -> torch.Tensor:
        C, (h, w), Fr = config.latent_channels, config.latent_hw, config.latent_frames_per_chunk
        with torch.no_grad():
            history = dit.encode_history([kept], [memory], context=context, n_history=[n])
            x = torch.randn(1, C, Fr, h, w, generator=self.gen, device=self.device)
            sig = torch.linspace(1.0, 0.0, config.sample_steps + 1)
            sig = config.shift * sig / (1 + (config.shift - 1) * sig)
            for i in range(config.sample_steps):
                v = dit(x, (sig[i : i + 1] * 1000).to(self.device), context, history, [memory]).float()
                x = x + (sig[i + 1] - sig[i]).item() * v
        return x

    def run_dit(self, mode: str) -> None:
        dit = self.build_dit(mode)
        for H, W in self.resolutions():
            config = dit.config.replace(height=H, width=W)
            dit.config = config
            context = self.randn(1, config.text_tokens, config.text_dim)
            for n in self.args.history:
                log(f"DiT {mode} {H}x{W} history {n}: building history")
                self.reset_peak()
                try:
                    kept, memory = self.history(dit, config, n)

                    def one_chunk(d=dit, k=kept, m=memory):  # bound now: the loop deletes them after the row
                        return self.chunk(d, config, k, n, m, context)

                    warm = self.timed(one_chunk)
                    times = [self.timed(one_chunk) for _ in range(self.args.repeats)]
                except RuntimeError as exc:  # one row failing (e.g. out of memory) must not lose the others
                    log(f"  failed: {str(exc)[:300]}")
                    self.failures.append(
                        {"height": H, "width": W, "history_latents": n, "mode": mode, "error": str(exc)[:500]}
                    )
                    kept = memory = None
                    self.save()
                    continue
                dec = self.decode.get(f"{H}x{W}", {})
                dit_s = statistics.median(times)
                dec_s = dec.get("decode_chunk_s")
                row = {
                    "height": H,
                    "width": W,
                    "history_latents": n,
                    "mode": mode,
                    "exact": mode == "global" and not self.args.fp8,
                    "history_tokens": history_token_count(config.tscm_schedule, n, config.latent_hw),
                    "current_tokens": config.latent_frames_per_chunk * config.tokens_per_latent_frame,
                    "dit_chunk_s": dit_s,
                    "dit_chunk_min_s": min(times),
                    "dit_chunk_max_s": max(times),
                    "dit_warmup_s": warm,
                    "decode_chunk_s": dec_s,
                    "peak_gib": max(self.peak_gib(), dec.get("peak_gib", 0.0)),
                    "fps_end_to_end": (32 / (dit_s + dec_s)) if dec_s else None,
                }
                pub = PUBLISHED["dit_chunk_s_704x1280"].get(n) if (H, W) == (704, 1280) else None
                if pub:
                    row["speedup_vs_published_dit"] = pub / dit_s
                self.rows.append(row)
                log(
                    f"  dit {dit_s:.3f} s (warm-up {warm:.2f} s, min {min(times):.3f}, max {max(times):.3f}), "
                    f"peak {row['peak_gib']:.1f} GiB"
                )
                self.save()
                del kept, memory
        if self.args.offload and mode == self.args.modes[0]:
            self.run_offload(dit)
        del dit
        self.reset_peak()

    # ------------------------------------------------------------------ decode
    def run_decode(self) -> None:
        dec = self.build_decoder()
        for H, W in self.resolutions():
            h, w = H // 16, W // 16
            res = {}
            variants = [("ours", 8, False), ("published_frame_by_frame", 1, False)]
            if self.args.channels_last:
                variants.append(("ours_channels_last_3d", 8, True))
            for name, per_call, cl in variants:
                dec.frames_per_call = per_call
                dec.conv_layout_(cl)
                self.reset_peak()
                try:
                    with torch.no_grad():
                        _, state = dec(self.randn(1, 48, 1, h, w).float())  # a stream's first latent
                        warm = self.timed(lambda: dec(self.randn(1, 48, 8, h, w).float(), state))
                        reps = 1 if name == "published_frame_by_frame" else self.args.repeats
                        times = [
                            self.timed(lambda: dec(self.randn(1, 48, 8, h, w).float(), state)) for _ in range(reps)
                        ]
                except RuntimeError as exc:  # a variant failing (e.g. out of memory) must not lose the run
                    res[name] = {"error": str(exc)[:300]}
                    log(f"decode {H}x{W} {name}: failed: {str(exc)[:200]}")
                    continue
                finally:
                    dec.conv_layout_(False)
                res[name] = {"decode_chunk_s": statistics.median(times), "warmup_s": warm, "peak_gib": self.peak_gib()}
                log(
                    f"decode {H}x{W} {name}: {statistics.median(times):.3f} s (warm-up {warm:.2f} s), "
                    f"peak {self.peak_gib():.1f} GiB"
                )
            ours = res["ours"]
            fbf = res["published_frame_by_frame"].get("decode_chunk_s")
            self.decode[f"{H}x{W}"] = {
                **ours,
                "frame_by_frame_s": fbf,
                "speedup_vs_frame_by_frame": fbf / ours["decode_chunk_s"] if fbf else None,
                "variants": res,
            }
            self.save()
        self.decoder = dec

    # ------------------------------------------------------------------ offload
    def run_offload(self, dit) -> None:
        """Peak GPU memory at 544x960 with DiT blocks streamed, the decoder one latent per call."""
        H, W = (544, 960) if not self.args.smoke else (self.base.height, self.base.width)
        n = 1000 if 1000 in self.args.history else self.args.history[-1]
        log(f"offload {H}x{W} history {n}")
        streamer = BlockStreamer(dit, self.device)
        config = dit.config.replace(height=H, width=W)
        dit.config = config
        self.reset_peak()
        context = self.randn(1, config.text_tokens, config.text_dim)
        kept, memory = self.history(dit, config, n)
        self.chunk(dit, config, kept, n, memory, context)
        dit_s = self.timed(lambda: self.chunk(dit, config, kept, n, memory, context))
        dec = self.decoder
        dec.frames_per_call = 1
        with torch.no_grad():
            _, state = dec(self.randn(1, 48, 1, H // 16, W // 16).float())
            dec_s = self.timed(lambda: dec(self.randn(1, 48, 8, H // 16, W // 16).float(), state))
        peak = self.peak_gib()
        enc_gib = VAE_ENCODER_PARAMS * 2 / 2**30
        self.extra["offload_544x960"] = {
            "height": H,
            "width": W,
            "history_latents": n,
            "dit_chunk_s": dit_s,
            "decode_chunk_s": dec_s,
            "peak_gib": peak,
            "vae_encoder_gib_not_loaded_here": enc_gib,
            "peak_plus_encoder_gib": peak + enc_gib,
            "text_encoder": "on the CPU (0 GiB on the GPU)",
            "under_16_gib": peak + enc_gib < 16,
        }
        log(f"  offload: dit {dit_s:.2f} s, decode {dec_s:.2f} s, peak {peak:.2f} GiB (+{enc_gib:.2f} VAE encoder)")
        streamer.remove()
        self.save()

    def resolutions(self):
        return [(self.base.height, self.base.width)] if self.args.smoke else self.args.resolutions

    def matmul_ceiling(self) -> None:
        if not self.cuda:
            return
        a, b = self.randn(8192, 8192), self.randn(8192, 8192)
        for _ in range(3):
            a @ b
        t = self.timed(lambda: [a @ b for _ in range(20)])
        self.extra["measured_bf16_matmul_tflops"] = 20 * 2 * 8192**3 / t / 1e12
        log(f"bf16 8192^3 matmul: {self.extra['measured_bf16_matmul_tflops']:.0f} TFLOP/s")


def markdown(meta: dict) -> str:
    lines = [
        f"# Yume-5B speed ({meta['gpu']}, torch {meta['torch']}, {meta['dtype']}, compile={meta['compile']}, "
        f"fp8={meta.get('fp8', False)})",
        "",
        "| height | width | history latents | mode | exact | history tokens | DiT s/chunk (4 steps) | warm-up s |"
        " decode s/chunk | peak GiB | fps end to end | DiT speed-up vs published |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in meta["rows"]:
        fps = f"{r['fps_end_to_end']:.1f}" if r.get("fps_end_to_end") else "-"
        dec = f"{r['decode_chunk_s']:.3f}" if r.get("decode_chunk_s") else "-"
        sp = f"{r['speedup_vs_published_dit']:.2f}x" if r.get("speedup_vs_published_dit") else "-"
        lines.append(
            f"| {r['height']} | {r['width']} | {r['history_latents']} | {r['mode']} | {r['exact']} | "
            f"{r['history_tokens']} | {r['dit_chunk_s']:.3f} | {r['dit_warmup_s']:.2f} | {dec} | "
            f"{r['peak_gib']:.1f} | {fps} | {sp} |"
        )
    lines += ["", "Decode (8 latents -> 32 frames, steady state):", ""]
    for res, d in meta["decode"].items():
        if d.get("frame_by_frame_s"):
            lines.append(
                f"- {res}: {d['decode_chunk_s']:.3f} s (one latent per call as published: {d['frame_by_frame_s']:.3f} s,"
                f" {d['speedup_vs_frame_by_frame']:.2f}x), peak {d['peak_gib']:.1f} GiB"
            )
        cl = d.get("variants", {}).get("ours_channels_last_3d", {})
        if "decode_chunk_s" in cl:
            lines.append(f"- {res} channels_last_3d: {cl['decode_chunk_s']:.3f} s")
    if "offload_544x960" in meta:
        o = meta["offload_544x960"]
        lines.append(
            f"- offload mode {o['height']}x{o['width']}, history {o['history_latents']}: peak {o['peak_gib']:.2f} GiB"
            f" (+{o['vae_encoder_gib_not_loaded_here']:.2f} GiB VAE encoder = {o['peak_plus_encoder_gib']:.2f}),"
            f" DiT {o['dit_chunk_s']:.2f} s/chunk, decode {o['decode_chunk_s']:.2f} s/chunk"
        )
    if "measured_bf16_matmul_tflops" in meta:
        lines.append(f"- measured bf16 matmul ceiling: {meta['measured_bf16_matmul_tflops']:.0f} TFLOP/s")
    for f in meta.get("failures", []):
        lines.append(
            f"- FAILED {f['mode']} {f['height']}x{f['width']} history {f['history_latents']}: {f['error'][:200]}"
        )
    lines += ["", *[f"- {n}" for n in meta["notes"]], ""]
    return "\n".join(lines)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _parse_res(s: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in r.split("x")) for r in s.split(",")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--smoke", action="store_true", help="scaled-down model on the CPU: checks the logic, measures nothing"
    )
    ap.add_argument("--resolutions", type=_parse_res, default=list(RESOLUTIONS), help="e.g. 704x1280,544x960")
    ap.add_argument("--history", type=lambda s: [int(v) for v in s.split(",")], default=list(HISTORIES))
    ap.add_argument("--modes", type=lambda s: s.split(","), default=["global", "causal"])
    ap.add_argument("--repeats", type=int, default=3, help="timed chunks per row after the warm-up chunk")
    ap.add_argument("--compile", action="store_true", help="torch.compile every DiT block")
    ap.add_argument("--fp8", action="store_true", help="FP8 (e4m3, row-wise scales) matmuls in the blocks: approximate")
    ap.add_argument("--tag", default="", help="suffix of the output files (yume5b_h100_<tag>.json) for lever runs")
    ap.add_argument(
        "--compile-mode", default="default", help="torch.compile mode (default, max-autotune-no-cudagraphs, ...)"
    )
    ap.add_argument("--no-offload", dest="offload", action="store_false", help="skip the offload-mode memory row")
    ap.add_argument("--no-decode", dest="decode", action="store_false", help="skip the decode measurements")
    ap.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        help="skip the channels_last_3d decode variant",
    )
    ap.add_argument("--out", type=Path, default=None, help="output folder (default $OUT, else benchmarks/results)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.repeats = min(args.repeats, 1)
        if args.history == list(HISTORIES):
            args.history = [4, 85, 1100]  # past the published 1,016 limit, small enough for a CPU
    elif not torch.cuda.is_available():
        ap.error("no CUDA device: run on the GPU, or pass --smoke for the CPU logic check")
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    bench = Bench(args)
    t0 = time.perf_counter()
    log(
        f"device {torch.cuda.get_device_name() if bench.cuda else 'cpu'}, torch {torch.__version__}, out {bench.out_dir}"
    )
    bench.matmul_ceiling()
    if args.decode:
        bench.run_decode()
    else:
        bench.decoder = bench.build_decoder()
    for mode in args.modes:
        bench.run_dit(mode)
    bench.save()
    log(f"done in {time.perf_counter() - t0:.0f} s")
    print(markdown(json.loads((bench.out_dir / f"{bench.stem}.json").read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
