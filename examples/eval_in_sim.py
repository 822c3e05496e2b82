"""Evaluate a policy trained in the learned world in the simulator (`YumeSim-v0`), against baselines,
and inside the learned world itself: the gap between the two success rates is the "reality gap".

    python examples/eval_in_sim.py --policy runs/ppo_dream/ppo_latest.zip --episodes 50 \
        --train-summary runs/ppo_dream/train_summary.json --out examples/results/ppo_dream_to_real.json

Simulator episodes use seeds `--seed + i` for every agent (the same cities and start poses), the
same step limit as training (from the policy's `.agent.json`, else `--max-episode-steps`). Agents:
the policy (greedy), the uniform random agent over all 81 actions, random over the policy's own
action set, and the straight walk ("W" every step). In the learned world (`--dream-episodes`,
0 to skip) the worlds run batched, one episode each; success there is the task head's arrival.
A few policy episodes in the simulator are saved as small gifs beside the JSON (`--gifs`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: `agents` importable

import gymnasium as gym  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

import yume_env  # noqa: E402,F401  (registers the envs)
from agents import RandomAgent, StraightWalkAgent, run_episode  # noqa: E402
from agents.action_sets import ACTION_SETS, action_table  # noqa: E402
from agents.policy import PolicyAgent, sidecar_path  # noqa: E402
from yume_env.env.recording import RecordEpisode  # noqa: E402


class RandomInSet(RandomAgent):
    """Uniform random over an action set (the policy's own choices, without the learning)."""

    name = "random_action_set"

    def __init__(self, table: np.ndarray, seed: int):
        super().__init__(seed)
        self.table = table

    def act(self, obs, info) -> np.ndarray:
        return self.table[self.rng.integers(len(self.table))].copy()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", required=True, help="SB3 model zip (with its .agent.json sidecar)")
    p.add_argument("--episodes", type=int, default=50, help="simulator episodes per agent")
    p.add_argument("--max-episode-steps", type=int, default=None, help="default: the policy's training limit, else 60")
    p.add_argument("--seed", type=int, default=10_000, help="first simulator/world seed (not used in training)")
    p.add_argument(
        "--dream-model", default=None, help="world folder for the in-dream evaluation (default: the shipped one)"
    )
    p.add_argument("--dream-episodes", type=int, default=16, help="episodes inside the learned world (0: skip)")
    p.add_argument("--dream-device", default="cpu")
    p.add_argument("--gifs", type=int, default=3, help="policy episodes in the simulator saved as gifs")
    p.add_argument("--train-summary", default=None, help="train_summary.json of the run (copied into the results)")
    p.add_argument("--out", default="examples/results/ppo_dream_to_real.json")
    return p.parse_args(argv)


def eval_sim(
    agent, episodes: int, seed: int, max_steps: int, desc: str, gif_dir: Path | None = None, gifs: int = 0
) -> list[dict]:
    rows = []
    for i in tqdm(range(episodes), desc=desc, unit="ep", leave=False):
        env = gym.make("YumeSim-v0", max_episode_steps=max_steps)
        if gif_dir is not None and i < gifs:
            env = RecordEpisode(env, gif_dir / f"{desc}_sim_{i:02d}.gif", fps=8, upscale=2)
        result = run_episode(env, agent, seed=seed + i)
        env.close()
        rows.append(
            {"seed": seed + i, "return": result.episode_return, "success": result.success, "steps": result.steps}
        )
    return rows


def eval_dream(policy: PolicyAgent, model, episodes: int, seed: int, max_steps: int, device: str) -> list[dict]:
    """One episode in each of `episodes` batched worlds; the policy acts on each world's observation."""
    vec = gym.make_vec(
        "YumeWorld-v0", num_envs=episodes, model=model, device=device, reward_fn="beacon", max_episode_steps=max_steps
    )
    obs, _ = vec.reset(seed=seed)
    returns, done = np.zeros(episodes), np.zeros(episodes, dtype=bool)
    success, steps = np.zeros(episodes, dtype=bool), np.zeros(episodes, dtype=int)
    for _ in tqdm(range(max_steps), desc="policy in dream", unit="step", leave=False):
        actions = np.stack([policy.act(o, {}) for o in obs])
        obs, reward, terminated, truncated, _ = vec.step(actions)
        live = ~done
        returns[live] += reward[live]
        steps[live] += 1
        success |= live & terminated
        done |= terminated | truncated
        if done.all():
            break
    vec.close()
    return [
        {"seed": seed + i, "return": float(returns[i]), "success": bool(success[i]), "steps": int(steps[i])}
        for i in range(episodes)
    ]


def summarise(rows: list[dict]) -> dict:
    return {
        "success_rate": float(np.mean([r["success"] for r in rows])),
        "mean_return": float(np.mean([r["return"] for r in rows])),
        "mean_steps": float(np.mean([r["steps"] for r in rows])),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = json.loads(sidecar_path(args.policy).read_text()) if sidecar_path(args.policy).exists() else {}
    max_steps = args.max_episode_steps or meta.get("max_episode_steps") or 60
    policy = PolicyAgent(args.policy)
    table = policy.table if policy.table is not None else action_table(ACTION_SETS["full"])
    start = time.perf_counter()
    gif_dir = out.parent
    agents = {
        "policy": policy,
        "random": RandomAgent(seed=args.seed),
        "random_action_set": RandomInSet(table, seed=args.seed + 1),
        "straight": StraightWalkAgent(),
    }
    sim = {
        name: eval_sim(
            agent, args.episodes, args.seed, max_steps, name, gif_dir if name == "policy" else None, args.gifs
        )
        for name, agent in agents.items()
    }
    stats = {name: summarise(rows) for name, rows in sim.items()}
    dream_rows = (
        eval_dream(policy, args.dream_model, args.dream_episodes, args.seed, max_steps, args.dream_device)
        if args.dream_episodes > 0
        else []
    )
    dream = summarise(dream_rows) if dream_rows else None
    train = json.loads(Path(args.train_summary).read_text()) if args.train_summary else {}
    results = {
        "experiment": "PPO trained only inside the learned world (beacon task, learned reward), evaluated in YumeSim-v0",
        "episodes": args.episodes,
        "max_episode_steps": max_steps,
        "success_rate_policy_in_sim": stats["policy"]["success_rate"],
        "success_rate_random_in_sim": stats["random"]["success_rate"],
        "mean_return_policy_in_sim": stats["policy"]["mean_return"],
        "mean_return_random_in_sim": stats["random"]["mean_return"],
        "success_rate_random_action_set_in_sim": stats["random_action_set"]["success_rate"],
        "success_rate_straight_walk_in_sim": stats["straight"]["success_rate"],
        "dream_episodes": len(dream_rows),
        "success_rate_policy_in_dream": None if dream is None else dream["success_rate"],
        "mean_return_policy_in_dream": None if dream is None else dream["mean_return"],
        "reality_gap": None if dream is None else dream["success_rate"] - stats["policy"]["success_rate"],
        "training_env_steps": train.get("env_steps"),
        "training_wall_s": train.get("wall_s_total"),
        "training_steps_per_s": train.get("train_steps_per_s"),
        "training": train,
        "policy": {"file": Path(args.policy).name, **meta},
        "per_agent_in_sim": stats,
        "eval_wall_s": round(time.perf_counter() - start, 1),
        "device": f"cpu ({platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()})",
        "episodes_in_sim": sim,
        "episodes_in_dream": dream_rows,
    }
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, out)
    keys = (
        "success_rate_policy_in_sim",
        "success_rate_random_in_sim",
        "success_rate_straight_walk_in_sim",
        "success_rate_policy_in_dream",
        "mean_return_policy_in_sim",
        "mean_return_random_in_sim",
    )
    print(json.dumps({k: results[k] for k in keys}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
