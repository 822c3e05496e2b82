"""Train PPO only inside a world of your recorded env, then test it in the real env against random.

    yume-env data record --env CartPole-v1 --episodes 200 --size 64 --out data/cartpole
    yume-env train world --data data/cartpole --out runs/cartpole --preset tiny --minutes 20
    python examples/dream_to_real.py --world runs/cartpole --env CartPole-v1 --minutes 15 --out runs/cartpole_ppo

The policy sees only the world's frames and its learned reward and episode ends (`reward_fn="learned"`,
N worlds batched in one forward, wrapped for Stable-Baselines3). The test plays `--episodes` episodes
of the real env, the policy reading the env's frames resized exactly as the recorder did, against a
uniform random policy on the same seeds. Writes `--out/results.json` (returns, lengths, the policy's
training steps and time) and `--out/ppo.zip`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: `agents` importable

import gymnasium as gym  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.vec_env import VecMonitor  # noqa: E402

import yume_env  # noqa: E402,F401  (registers the envs)
from agents.sb3_tools import SmallCNN  # noqa: E402
from yume_env.atomic import atomic_write_text  # noqa: E402
from yume_env.data.record import env_frame, make_env  # noqa: E402
from yume_env.env.sb3 import Sb3VecEnvAdapter  # noqa: E402
from yume_env.model.paths import resolve_model_path  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", required=True, help="the world (a train-world run or model folder)")
    p.add_argument("--env", required=True, help="the real env it was recorded from (as given to data record)")
    p.add_argument("--out", required=True, help="output folder (ppo.zip, results.json)")
    p.add_argument("--device", default="cpu", help="torch device of the world (the policy trains on the CPU)")
    p.add_argument("--num-envs", type=int, default=16, help="worlds stepped together in one forward")
    p.add_argument(
        "--max-episode-steps", type=int, default=200, help="truncation per episode, in the world and the env"
    )
    p.add_argument("--total-steps", type=int, default=100_000, help="env steps to train inside the world")
    p.add_argument("--minutes", type=float, default=None, help="wall-clock budget of the training")
    p.add_argument("--episodes", type=int, default=50, help="real-env episodes per agent")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def train(args) -> tuple[PPO, dict]:
    vec = gym.make_vec(
        "YumeWorld-v0",
        num_envs=args.num_envs,
        model=args.world,
        device=args.device,
        reward_fn="learned",
        max_episode_steps=args.max_episode_steps,
    )
    env = VecMonitor(Sb3VecEnvAdapter(vec))
    env.seed(args.seed)
    model = PPO(
        "CnnPolicy",
        env,
        n_steps=64,
        batch_size=128,
        n_epochs=4,
        learning_rate=3e-4,
        gamma=0.98,
        ent_coef=0.01,
        seed=args.seed,
        device="cpu",
        policy_kwargs={
            "features_extractor_class": SmallCNN,
            "features_extractor_kwargs": {"features_dim": 128},
            "net_arch": [64],
        },
    )
    start = time.perf_counter()
    deadline = None if args.minutes is None else start + 60.0 * args.minutes
    done = 0
    while done < args.total_steps and (deadline is None or time.perf_counter() < deadline):
        chunk = min(args.total_steps - done, args.num_envs * 64)
        model.learn(chunk, reset_num_timesteps=False, progress_bar=False)
        done = int(model.num_timesteps)
    wall = time.perf_counter() - start
    env.close()
    return model, {"env_steps": done, "wall_s": round(wall, 1), "steps_per_s": round(done / max(wall, 1e-9), 2)}


def evaluate(args, act, size: int) -> dict:
    """Mean return and length of `act(frame, env) -> action` over `--episodes` real-env episodes
    (seeded: every agent meets the same episodes)."""
    env, frames_from = make_env(args.env, {})
    env.action_space.seed(args.seed)
    returns, lengths = [], []
    for e in range(args.episodes):
        obs, _ = env.reset(seed=args.seed + 10_000 + e)
        total, steps = 0.0, 0
        for steps in range(1, args.max_episode_steps + 1):
            obs, reward, terminated, truncated, _ = env.step(act(env_frame(obs, env, frames_from, size), env))
            total += float(reward)
            if terminated or truncated:
                break
        returns.append(total)
        lengths.append(steps)
    env.close()
    return {
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "mean_length": float(np.mean(lengths)),
        "episodes": len(returns),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    size = int(json.loads((resolve_model_path(args.world) / "config.json").read_text())["height"])
    model, trained = train(args)
    model.save(str(out / "ppo.zip"))
    policy = evaluate(args, lambda frame, env: model.predict(frame, deterministic=True)[0], size)
    random = evaluate(args, lambda frame, env: env.action_space.sample(), size)
    results = {
        "env": args.env,
        "world": str(args.world),
        "ppo_in_world": trained,
        "real_env": {"ppo": policy, "random": random},
    }
    if (Path(args.world) / "run.json").is_file():  # a train-world run: what it was trained on
        results["world_data"] = json.loads((Path(args.world) / "run.json").read_text()).get("data")
    atomic_write_text(out / "results.json", json.dumps(results, indent=1))
    print(json.dumps(results["real_env"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
