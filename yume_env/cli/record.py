"""`yume-env record`: run one episode of the learned world and write it to mp4/gif (+ a JSON action log).

    yume-env record --out episode.mp4                       # the default world, a 48-step tour
    yume-env record --actions "W,W,W+A →,↑" --event-at 2:"it starts to snow"
    yume-env record --agent episode.json --out replay.mp4   # replays a log exactly

An interrupted recording (Ctrl-C, SIGTERM, SIGHUP, or an error) writes nothing: the video and the
log appear only for a complete episode, and the hidden temporary folder beside `--out` goes. A
SIGKILLed one leaves that folder until the next recording into the same folder (see env/video.py).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="world folder (default: the shipped default world)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--dtype", default=None, help="float32 / bfloat16 (default: the folder's own)")
    parser.add_argument(
        "--sample-steps", type=int, default=None, help="denoising steps per chunk (default: the world's)"
    )
    parser.add_argument(
        "--spread-gain-max",
        type=float,
        default=None,
        help="cap on restoring a new chunk's spread to the last one's (1 = off; default: the world's)",
    )
    parser.add_argument("--steps", type=int, default=None, help="number of env steps (default: the agent's plan, 48)")
    parser.add_argument(
        "--agent",
        default="tour",
        help="tour (default: walk, turn, look up/down, an event), forward, lookaround, random, or a .json log to replay; "
        "a world with other actions than Yume's keys x camera moves takes random or a log",
    )
    parser.add_argument(
        "--actions", default=None, help='comma-separated actions, e.g. "W,W,W+A →,↑" (overrides --agent)'
    )
    parser.add_argument("--event", default=None, help="event text at reset (default: the start view's own)")
    parser.add_argument(
        "--event-at",
        action="append",
        default=[],
        metavar="STEP:TEXT",
        help="set an event before step STEP (0-based); repeatable",
    )
    parser.add_argument("--image", default=None, help="start frame image (png/jpg of the world's frame size)")
    parser.add_argument("--seed", type=int, default=None, help="reset seed (default: the log's when replaying, else 0)")
    parser.add_argument(
        "--out",
        default="episode.mp4",
        help="output video, .mp4 or .gif (default: episode.mp4); its action log goes beside it "
        "under the same name, .json (episode.mp4 -> episode.json), unless --log says where",
    )
    parser.add_argument("--log", default=None, help="JSON action log to write (default: --out with .json)")
    parser.add_argument("--fps", type=float, default=16.0, help="video frames per second (default: 16)")
    parser.add_argument("--upscale", type=int, default=None, help="integer zoom (default: about 256 px)")
    parser.add_argument("--no-overlay", action="store_true", help="no keys/event panel under the frames")


def _script(args, vocabulary=None):
    """The episode's script. `vocabulary` is the world's actions: it checks a log and sizes the random
    agent; None (before the world is loaded) takes Yume's and leaves a log's own unchecked."""
    from yume_env.env.policies import ActionScript, builtin_script
    from yume_env.env.spaces import actions_from_strings
    from yume_env.vocabulary import YUME

    world = vocabulary
    vocabulary = vocabulary or YUME
    if args.actions is not None:
        if not vocabulary.is_yume:
            raise ValueError(
                f"--actions takes Yume's action texts; this world's actions are action_nvec "
                f"{list(vocabulary.nvec)}: use --agent random or a .json action log"
            )
        actions = actions_from_strings(args.actions)
        if args.steps is not None:
            actions = np.concatenate([actions] * -(-args.steps // max(len(actions), 1)))[: args.steps]
        script = ActionScript(actions)
    elif args.agent.endswith(".json"):
        script = ActionScript.load(args.agent)
        if args.steps is not None:
            script.actions = script.actions[: args.steps]
        if world is not None:
            if script.vocabulary.nvec != world.nvec:
                raise ValueError(
                    f"the action log {args.agent} holds actions for action_nvec {list(script.vocabulary.nvec)}, "
                    f"but this world's actions are action_nvec {list(world.nvec)}: replay it with the "
                    "world that played it (--model)"
                )
            script.vocabulary = world  # the world's, with its action names
    else:
        script = builtin_script(
            args.agent, args.steps, seed=0 if args.seed is None else args.seed, vocabulary=vocabulary
        )
    return _finish(args, script)


def _finish(args, script):
    """The options of the command line applied to `script`: seed, reset event, image, --event-at."""
    if args.seed is not None or script.seed is None:
        script.seed = 0 if args.seed is None else args.seed
    if args.event is not None:
        script.event = args.event
    if args.image is not None:
        script.image = args.image
    for item in args.event_at:
        step, sep, text = item.partition(":")
        if not sep or not step.strip().isdigit():
            raise ValueError(
                f"--event-at must be STEP:TEXT with a step number, e.g. 24:'it starts to snow', got {item!r}"
            )
        script.events[int(step)] = text
    if len(script.actions) == 0:
        raise ValueError("no actions to run: give --steps, --actions or a non-empty script")
    return script


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM or SIGHUP while recording, so cleanup runs as for Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _signals_interrupt():
    """Turns SIGTERM and SIGHUP into `Interrupted` for the duration (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise Interrupted(signum)

    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            previous[getattr(signal, name)] = signal.signal(getattr(signal, name), interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run(args: argparse.Namespace) -> int:
    """Records one episode; a bad argument or a missing world prints the reason and returns 2;
    an interrupt writes nothing and returns 128 + the signal number (130 for Ctrl-C)."""
    try:
        with _signals_interrupt():
            return _record(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"yume-env record: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        signum = getattr(err, "signum", signal.SIGINT)
        print(
            f"yume-env record: interrupted by {signal.Signals(signum).name} before the recording was complete; "
            f"an episode cut short writes no video",
            file=sys.stderr,
        )
        return 128 + int(signum)


def _record(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import yume_env  # noqa: F401  (registers the envs)
    from yume_env.env.recording import RecordEpisode

    script = _script(args)
    out = Path(args.out)
    log = Path(args.log) if args.log else out.with_suffix(".json")
    options = {}
    if script.event is not None:
        options["event"] = script.event
    if script.image:
        import imageio.v2 as imageio

        options["image"] = np.asarray(imageio.imread(script.image))[..., :3].astype(np.uint8)
    start = time.perf_counter()
    env = gym.make(
        "YumeWorld-v0",
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        sample_steps=args.sample_steps,
        spread_gain_max=args.spread_gain_max,
        reward_fn="none",
        disable_env_checker=True,
    )
    vocabulary = env.unwrapped.vocabulary
    if not vocabulary.is_yume or script.vocabulary.nvec != vocabulary.nvec:  # again, in the world's actions
        try:
            script = _script(args, vocabulary)
        except BaseException:
            env.close()
            raise
    # the panel under the frames names Yume's keys and camera moves: none for other worlds' actions
    overlay = not args.no_overlay and vocabulary.is_yume
    env = RecordEpisode(env, out, fps=args.fps, upscale=args.upscale, overlay=overlay)
    from tqdm import tqdm

    finished = False
    try:
        env.reset(seed=script.seed, options=options or None)
        taken = 0
        for step, action in enumerate(tqdm(script.actions, desc="record", unit="step", leave=False)):
            if step in script.events:
                env.unwrapped.set_event(script.events[step])
            *_, terminated, truncated, info = env.step(action)
            taken += 1
            if terminated or truncated:
                break
        env.close()  # writes the video
        finished = True
    finally:
        if not finished:  # an error or an interrupt: no partial video, no temporary folder
            env.discard()
            with contextlib.suppress(Exception):  # the first error is the one to report
                env.close()
    script.actions = script.actions[:taken]
    script.save(
        log, model=str(args.model) if args.model else "default", frames=int(1 + taken * env.unwrapped.frames_per_step)
    )
    elapsed = time.perf_counter() - start
    print(
        f"wrote {out} ({taken} steps, {1 + taken * env.unwrapped.frames_per_step} frames) and the action log {log} in {elapsed:.1f} s"
    )
    print(f"replay it with: yume-env record --agent {log} --out replay{out.suffix}")
    return 0
