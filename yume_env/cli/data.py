"""`yume-env data generate|info|record`: write a simulator dataset in the Sekai layout, summarise
one, or record episodes of any Gymnasium env into a shard dataset (`yume_env.data.shards`)."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path


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
    i = sub.add_parser(
        "info", help="check every clip of a dataset folder (or the shards of a recorded one) and print a summary (JSON)"
    )
    i.add_argument("root", help="dataset folder")
    i.add_argument("--skip-bad", action="store_true", help="list bad clips instead of stopping at the first")
    i.add_argument("--no-verify", action="store_true", help="do not decode the videos (faster, weaker check)")
    add_record_arguments(
        sub.add_parser(
            "record",
            help="record episodes of a Gymnasium env (Discrete/MultiDiscrete actions) into shards; resumable",
            description="Record episodes of a Gymnasium env with Discrete or MultiDiscrete actions into a shard "
            "dataset (index.json + safetensors shards). Frames are the observation when it is an RGB "
            "image, else render() with render_mode='rgb_array'. Running it again with the same --out "
            "continues up to --episodes in all. See docs/your_own_world.md.",
        )
    )


def add_record_arguments(r: argparse.ArgumentParser) -> None:
    """The options of `yume-env data record` (no torch or gymnasium import: --help stays fast)."""
    r.add_argument("--env", required=True, help="Gymnasium env id, e.g. CartPole-v1 or ale_py:ALE/Pong-v5")
    r.add_argument("--episodes", type=int, required=True, help="episodes the folder should hold in all")
    r.add_argument("--size", type=int, default=64, help="frames are resized to SIZE x SIZE (default 64)")
    r.add_argument("--out", required=True, help="dataset folder (created, or continued)")
    r.add_argument(
        "--policy",
        default="random",
        help="random (default: action_space.sample()), a stable-baselines3 PPO/A2C/DQN .zip, or a .json "
        "list of actions (or a list of per-episode lists)",
    )
    r.add_argument("--seed", type=int, default=0, help="episode i resets with seed SEED + i (default 0)")
    r.add_argument(
        "--max-steps",
        type=int,
        default=1000,
        help="steps per episode at most (default 1000; the env's own time limit applies too)",
    )
    r.add_argument(
        "--env-kwargs",
        type=json.loads,
        default=None,
        metavar="JSON",
        help="keyword arguments of gym.make as a JSON object, e.g. '{\"height\": 32}'",
    )
    r.add_argument("--shard-mb", type=float, default=32.0, help="frames per shard in MiB before a new one (default 32)")
    r.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    if args.action == "record":
        return run_record(args)
    if args.action == "generate":
        from yume_env.data.generate import generate_dataset

        summary = generate_dataset(
            args.out,
            args.clips,
            args.frames,
            args.height,
            args.width,
            args.seed,
            args.sub_frames,
            args.event_prob,
            args.fps,
            progress=not args.no_progress,
        )
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return 0
    if (Path(args.root) / "index.json").is_file():
        return run_shard_info(args)
    from yume_env.data.dataset import SekaiClipDataset
    from yume_env.data.layout import ClipError

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
        "actions_from": dict(Counter(_actions_from(c.path) for c in clips)),
        "bad": ds.report["bad"],
    }
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 1 if ds.report["bad"] else 0


def _actions_from(mp4) -> str:
    """Where a clip's actions come from: its sidecar, its poses (quantized) or its .txt labels."""
    from yume_env.data.layout import clip_files

    files = clip_files(mp4)
    return "sidecar" if files["actions"].exists() else "poses" if files["poses"].exists() else "labels"


def run_record(args: argparse.Namespace) -> int:
    """Runs `yume-env data record` and prints its summary (JSON)."""
    from yume_env.data.record import record

    if args.env_kwargs is not None and not isinstance(args.env_kwargs, dict):
        raise ValueError(f"--env-kwargs must be a JSON object, got {args.env_kwargs!r}")
    summary = record(
        args.env,
        args.episodes,
        args.out,
        size=args.size,
        policy=args.policy,
        seed=args.seed,
        max_steps=args.max_steps,
        env_kwargs=args.env_kwargs,
        shard_bytes=max(1, int(args.shard_mb * 2**20)),
        progress=not args.no_progress,
    )
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


def run_shard_info(args: argparse.Namespace) -> int:
    """`yume-env data info` of a recorded shard folder: its index, checked, and every shard opened."""
    from yume_env.data.shards import ShardReader, split_episodes

    reader = ShardReader(args.root)
    index = reader.index
    for shard in index["shards"]:
        reader.read(shard["first_episode"], 0, 1)  # opens the shard: a damaged one raises, naming it
    train, heldout = split_episodes(reader.num_episodes)
    returns = [r for s in index["shards"] for r in s["episode_returns"]]
    summary = {
        "root": str(args.root),
        "env_id": index["env_id"],
        "action_space": index["action_space"],
        "frame_size": index["frame_size"],
        "frames_from": index["frames_from"],
        "fps": index["fps"],
        "episodes": index["episodes"],
        "steps": index["steps"],
        "shards": len(index["shards"]),
        "mean_return": sum(returns) / len(returns) if returns else None,
        "train_episodes": len(train),
        "heldout_episodes": len(heldout),
    }
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0
