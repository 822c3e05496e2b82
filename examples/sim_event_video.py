"""Write a sample video of the simulator: walk forward, turn, and an event starts at step 10.

    python examples/sim_event_video.py                                  # sim_event.mp4, snow
    python examples/sim_event_video.py --event "night falls" --size 256 --out night.mp4 --png-dir frames/

The script drives the simulator behind `YumeSim-v0` (`yume_env.sim.Simulator`, which keeps going
after the beacon is reached) with a fixed action script, calls `set_event(text)` before step
`--event-step`, and writes every sub-frame to an mp4 (imageio + imageio-ffmpeg, no moviepy).
`--png-dir` also saves a few frames as PNGs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import imageio.v2 as iio  # noqa: E402

from yume_env.actions import parse_action  # noqa: E402
from yume_env.sim import Simulator  # noqa: E402

# (action, steps): walk, turn right while walking, look up and down, walk on.
SCRIPT = [("W", 8), ("W →", 6), ("W", 6), ("↑", 3), ("↓", 3), ("W ←", 4), ("W", 10)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--event", default="it starts to snow", help="event text (default: it starts to snow)")
    p.add_argument("--event-step", type=int, default=10, help="step at which the event starts (default 10)")
    p.add_argument("--size", type=int, default=128, help="frame side, a multiple of 16 (default 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="sim_event.mp4", help="output mp4 (default sim_event.mp4)")
    p.add_argument("--png-dir", default=None, help="also save some frames as PNG into this folder")
    args = p.parse_args(argv)

    sim = Simulator(args.size, args.size, sub_frames=2, seed=args.seed)
    frames, step = [sim.reset(args.seed)], 0
    for text, n in SCRIPT:
        for _ in range(n):
            if step == args.event_step:
                sim.set_event(args.event)
            frames.extend(sim.step(parse_action(text)).frames)
            step += 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fps = 8
    with iio.get_writer(
        out,
        format="FFMPEG",
        fps=fps,
        codec="libx264",
        macro_block_size=16,
        pixelformat="yuv420p",
        ffmpeg_params=["-crf", "16"],
    ) as w:
        for f in frames:
            w.append_data(f)
    print(
        f"wrote {out}: {len(frames)} frames at {args.size}x{args.size}, event {args.event!r} from step {args.event_step}"
    )
    if args.png_dir:
        d = Path(args.png_dir)
        d.mkdir(parents=True, exist_ok=True)
        picks = np.linspace(0, len(frames) - 1, 6).astype(int)
        for i in picks:
            iio.imwrite(d / f"frame_{i:03d}.png", frames[i])
        print(f"wrote {len(picks)} PNGs to {d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
