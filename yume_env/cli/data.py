"""`yume-env data generate|info`: write a simulator dataset in the Sekai layout, or summarise one."""

from __future__ import annotations

import argparse
import json
from collections import Counter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    g = sub.add_parser("generate", help="write N simulator clips (mixed policies, events) in the Sekai layout")
    g.add_argument("--out", required=True, help="dataset folder (created)")
    g.add_argument("--clips", type=int, default=100, help="number of clips (default 100)")
    g.add_argument("--frames", type=int, default=33, help="frames per clip (default 33)")
    g.add_argument("--height", type=int, default=64, help="frame height, a multiple of 16 (default 64)")
    g.add_argument("--width", type=int, default=64, help="frame width, a multiple of 16 (default 64)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--sub-frames", type=int, default=2, help="frames per action step (default 2)")
    g.add_argument("--event-prob", type=float, default=0.35, help="share of clips with an event (default 0.35)")
    g.add_argument("--fps", type=int, default=8, help="video frame rate (default 8)")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    i = sub.add_parser("info", help="check every clip of a dataset folder and print a summary (JSON)")
    i.add_argument("root", help="dataset folder")
    i.add_argument("--skip-bad", action="store_true", help="list bad clips instead of stopping at the first")
    i.add_argument("--no-verify", action="store_true", help="do not decode the videos (faster, weaker check)")


def run(args: argparse.Namespace) -> int:
    if args.action == "generate":
        from yume_env.data.generate import generate_dataset

        summary = generate_dataset(args.out, args.clips, args.frames, args.height, args.width, args.seed,
                                   args.sub_frames, args.event_prob, args.fps, progress=not args.no_progress)
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return 0
    from yume_env.data.dataset import SekaiClipDataset
    from yume_env.data.layout import ClipError, clip_files

    try:
        ds = SekaiClipDataset(args.root, window=None, skip_bad=args.skip_bad, verify=not args.no_verify, cache=0)
    except (ClipError, FileNotFoundError) as e:
        print(f"error: {e}")
        return 1
    clips = ds.clips
    summary = {
        "root": str(args.root),
        "clips": len(clips),
        "frames": int(sum(c.meta.duration for c in clips)),
        "classes": dict(sorted(Counter(c.path.parent.name for c in clips).items())),
        "events": dict(sorted(Counter(c.meta.event or "(none)" for c in clips).items())),
        "actions_from": dict(Counter("sidecar" if clip_files(c.path)["actions"].exists() else "poses" for c in clips)),
        "bad": ds.report["bad"],
    }
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 1 if ds.report["bad"] else 0
