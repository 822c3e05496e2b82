"""Record one episode with events: walk forward, then snow, then night, then a ghost.

    python examples/record_with_events.py --out runs/events.mp4            # the learned world
    python examples/record_with_events.py --sim --out runs/events_sim.mp4  # the simulator, same script

The video shows every generated frame with a panel of the pressed keys, the step and the event.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: `agents` importable

import gymnasium as gym  # noqa: E402

import yume_env  # noqa: E402,F401  (registers the envs)
from agents import EventScript, PlanAgent, run_episode  # noqa: E402
from yume_env.env.recording import RecordEpisode  # noqa: E402

PLAN = [("W", 8), ("W →", 4), ("W", 8), ("←", 6), ("W", 6)]  # 32 steps
EVENTS = {6: "it starts to snow", 14: "night falls", 22: "a ghost suddenly appears"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="world folder (default: the shipped default world)")
    p.add_argument("--sim", action="store_true", help="record YumeSim-v0 instead of the learned world")
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/events.mp4", help=".mp4 or .gif")
    args = p.parse_args(argv)

    if args.sim:
        env = gym.make("YumeSim-v0")
    else:
        env = gym.make("YumeWorld-v0", model=args.model, reward_fn="none", disable_env_checker=True)
    env = RecordEpisode(env, args.out, fps=16)
    agent = EventScript(PlanAgent.from_plan(PLAN), EVENTS)
    result = run_episode(env, agent, seed=args.seed, options={"event": ""}, max_steps=args.steps)
    env.close()
    print(f"wrote {args.out}: {result.steps} steps, events {result.events}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
