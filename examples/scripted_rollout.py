"""A scripted rollout in the learned world, saved as a video and as a JSON action log that
`yume-env record` replays exactly (same seed, same events, same actions -> the same frames).

    python examples/scripted_rollout.py --agent waypoints --steps 40 --out runs/scripted.mp4
    yume-env record --agent runs/scripted.json --out runs/replay.mp4     # identical frames

Agents: straight, lookaround, waypoints (a square through dead-reckoned poses), loop_back (out and
back, for memory tests), random.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: `agents` importable

import gymnasium as gym  # noqa: E402
from tqdm import tqdm  # noqa: E402

import yume_env  # noqa: E402,F401  (registers the envs)
from agents import (  # noqa: E402
    EventScript,
    LookAroundAgent,
    RandomAgent,
    StraightWalkAgent,
    WaypointFollower,
    loop_back_agent,
    run_episode,
)
from yume_env.env.policies import ActionScript  # noqa: E402
from yume_env.env.recording import RecordEpisode  # noqa: E402

SQUARE = [(0.0, 3.0), (3.0, 3.0), (3.0, 0.0), (0.0, 0.0)]  # metres, in the start pose's frame


def make_agent(name: str, seed: int):
    agents = {
        "straight": StraightWalkAgent,
        "lookaround": LookAroundAgent,
        "waypoints": lambda: WaypointFollower(SQUARE),
        "loop_back": lambda: loop_back_agent(8),
        "random": lambda: RandomAgent(seed=seed, hold=4),
    }
    if name not in agents:
        raise SystemExit(f"unknown --agent {name!r}; expected one of {sorted(agents)}")
    return agents[name]()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="world folder (default: the shipped default world)")
    p.add_argument("--agent", default="waypoints")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--event-at", action="append", default=[], metavar="STEP:TEXT", help="e.g. 10:'night falls'")
    p.add_argument("--out", default="runs/scripted.mp4", help=".mp4 or .gif; the log goes beside it (.json)")
    args = p.parse_args(argv)

    events = {}
    for item in args.event_at:
        step, _, text = item.partition(":")
        events[int(step)] = text
    agent = EventScript(make_agent(args.agent, args.seed), events)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # the same env settings as `yume-env record`, so its replay gives the same frames
    env = gym.make("YumeWorld-v0", model=args.model, reward_fn="none", disable_env_checker=True)
    env = RecordEpisode(env, out, fps=16)
    bar = tqdm(total=args.steps, desc=args.agent, unit="step", leave=False)
    result = run_episode(env, agent, seed=args.seed, max_steps=args.steps, on_step=lambda *a: bar.update())
    bar.close()
    env.close()
    log = ActionScript(result.actions, result.events, seed=args.seed)
    log_path = log.save(
        out.with_suffix(".json"),
        model=str(args.model) if args.model else "default",
        agent=args.agent,
        frames=int(1 + result.steps * env.unwrapped.frames_per_step),
    )
    print(f"wrote {out} and {log_path} ({result.steps} steps)")
    print(
        f"replay: yume-env record --agent {log_path} --out replay{out.suffix}"
        + (f" --model {args.model}" if args.model else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
