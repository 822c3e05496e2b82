"""Train PPO only inside the learned world (`YumeWorld-v0`) on the beacon task.

The reward and termination come from the world's learned task head (`reward_fn="beacon"`): the
agent never sees the simulator. N worlds step in one batched model forward (`gym.make_vec`),
wrapped for Stable-Baselines3 by `Sb3VecEnvAdapter`. Built for a small CPU: downsized observations
(`--obs-size`), a small CNN, a 5-action "walk" action set, a time budget (`--minutes`) and
checkpoints every rollout, so a stopped run resumes where it was (`--resume`).

    python examples/train_ppo_in_dream.py --out runs/ppo_dream --minutes 30
    python examples/train_ppo_in_dream.py --out runs/ppo_dream --minutes 30 --resume   # continue

Writes to --out: `ppo_latest.zip` (+ `.agent.json`, for `agents.PolicyAgent`), `curve.json`,
`learning_curve.png` and `train_summary.json` (env steps, wall time, steps/s, device).
Then `python examples/eval_in_sim.py --policy runs/ppo_dream/ppo_latest.zip` measures it in the simulator.
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
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.vec_env import VecMonitor  # noqa: E402

import yume_env  # noqa: E402,F401  (registers the envs)
from agents.action_sets import resolve_action_set  # noqa: E402
from agents.policy import write_sidecar  # noqa: E402
from agents.sb3_tools import ActionSetVecEnv, SmallCNN  # noqa: E402
from yume_env.env.sb3 import Sb3VecEnvAdapter  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="world folder (default: the shipped default world)")
    p.add_argument("--device", default="cpu", help="torch device of the world model (the policy trains on the CPU)")
    p.add_argument("--out", default="runs/ppo_dream", help="output folder (checkpoints, curve, summary)")
    p.add_argument("--num-envs", type=int, default=8, help="worlds stepped together in one forward")
    p.add_argument("--obs-size", type=int, default=32, help="observation side in pixels (antialiased resize)")
    p.add_argument("--action-set", default="walk", help="walk (5 actions: W, W →, W ←, →, ←) or full (81)")
    p.add_argument("--max-episode-steps", type=int, default=60, help="truncation per episode")
    p.add_argument("--sample-steps", type=int, default=None, help="denoising steps per chunk (default: the world's)")
    p.add_argument("--total-steps", type=int, default=200_000, help="env steps to train (all worlds together)")
    p.add_argument(
        "--minutes", type=float, default=None, help="wall-clock budget; stops after the rollout that passes it"
    )
    p.add_argument("--n-steps", type=int, default=32, help="PPO rollout length per world")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--n-epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--gamma", type=float, default=0.97)
    p.add_argument("--ent-coef", type=float, default=0.01)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from --out/ppo_latest.zip and its curve")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def make_env(args) -> ActionSetVecEnv:
    vec = gym.make_vec(
        "YumeWorld-v0",
        num_envs=args.num_envs,
        model=args.model,
        device=args.device,
        obs_size=(args.obs_size, args.obs_size),
        sample_steps=args.sample_steps,
        reward_fn="beacon",
        max_episode_steps=args.max_episode_steps,
    )
    venv = VecMonitor(Sb3VecEnvAdapter(vec))
    venv.seed(args.seed)
    return ActionSetVecEnv(venv, args.action_set)


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


class CurveAndCheckpoint(BaseCallback):
    """Logs finished episodes (return, success = the head's arrival, length) per rollout into
    `curve.json`, saves `ppo_latest.zip` atomically after every rollout, and stops at the time budget."""

    def __init__(
        self, out: Path, args, curve: list[dict], deadline: float | None, steps_before: int, clock_before: float
    ):
        super().__init__()
        self.out, self.args, self.curve, self.deadline = out, args, curve, deadline
        self.steps_before, self.clock_before = steps_before, clock_before
        self.start = time.perf_counter()
        self.returns: list[float] = []
        self.successes: list[bool] = []
        self.lengths: list[int] = []
        self.env_seconds = 0.0

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"]):
            if done and "episode" in info:
                self.returns.append(float(info["episode"]["r"]))
                self.lengths.append(int(info["episode"]["l"]))
                self.successes.append(not info.get("TimeLimit.truncated", False))
        return True

    def _on_rollout_end(self) -> None:
        elapsed = time.perf_counter() - self.start
        self.curve.append(
            {
                "env_steps": int(self.num_timesteps),
                "wall_s": round(self.clock_before + elapsed, 2),
                "episodes": len(self.returns),
                "mean_return": float(np.mean(self.returns)) if self.returns else None,
                "success_rate": float(np.mean(self.successes)) if self.successes else None,
                "mean_length": float(np.mean(self.lengths)) if self.lengths else None,
            }
        )
        self.returns, self.successes, self.lengths = [], [], []
        save_checkpoint(self.model, self.out, self.args)
        write_json(self.out / "curve.json", {"points": self.curve})

    def _on_rollout_start(self) -> None:
        # the budget is checked between rollouts, so every checkpoint holds a whole PPO update
        if self.deadline is not None and time.perf_counter() > self.deadline:
            self.model._stop_for_budget = True

    def _on_training_start(self) -> None:
        self.model._stop_for_budget = False


class BudgetStop(BaseCallback):
    def _on_step(self) -> bool:
        return not getattr(self.model, "_stop_for_budget", False)


def save_checkpoint(model: PPO, out: Path, args) -> Path:
    tmp = out / ".ppo_latest.tmp.zip"
    model.save(str(tmp))
    final = out / "ppo_latest.zip"
    os.replace(tmp, final)
    write_sidecar(
        final,
        (args.obs_size, args.obs_size),
        args.action_set,
        trained_in="YumeWorld-v0",
        model=str(args.model or "default"),
        max_episode_steps=args.max_episode_steps,
    )
    return final


def plot_curve(curve: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [c for c in curve if c["mean_return"] is not None]
    fig, ax1 = plt.subplots(figsize=(6, 3.6), dpi=110)
    if points:
        x = [c["env_steps"] for c in points]
        ax1.plot(x, [c["mean_return"] for c in points], color="tab:blue", marker=".", label="mean return")
        ax2 = ax1.twinx()
        ax2.plot(x, [c["success_rate"] for c in points], color="tab:orange", marker=".", label="success rate")
        ax2.set_ylabel("success rate (task head)", color="tab:orange")
        ax2.set_ylim(-0.02, 1.02)
    ax1.set_xlabel("env steps (inside the learned world)")
    ax1.set_ylabel("episode return (learned reward)", color="tab:blue")
    ax1.set_title(title, fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    resolve_action_set(args.action_set)
    env = make_env(args)
    latest = out / "ppo_latest.zip"
    curve: list[dict] = []
    clock_before = 0.0
    if args.resume and latest.exists():
        model = PPO.load(str(latest), env=env, device="cpu")
        if (out / "curve.json").exists():
            curve = json.loads((out / "curve.json").read_text())["points"]
            clock_before = curve[-1]["wall_s"] if curve else 0.0
        print(f"resuming from {latest} at {model.num_timesteps} env steps")
    else:
        model = PPO(
            "CnnPolicy",
            env,
            n_steps=args.n_steps,
            batch_size=args.batch_size,
            n_epochs=args.n_epochs,
            learning_rate=args.lr,
            gamma=args.gamma,
            ent_coef=args.ent_coef,
            seed=args.seed,
            device="cpu",
            policy_kwargs={
                "features_extractor_class": SmallCNN,
                "features_extractor_kwargs": {"features_dim": 128},
                "net_arch": [64],
            },
        )
    steps_before = int(model.num_timesteps)
    remaining = max(args.total_steps - steps_before, 0)
    start = time.perf_counter()
    deadline = None if args.minutes is None else start + 60.0 * args.minutes
    tracker = CurveAndCheckpoint(out, args, curve, deadline, steps_before, clock_before)
    if remaining:
        model.learn(
            remaining, callback=[tracker, BudgetStop()], progress_bar=not args.no_progress, reset_num_timesteps=False
        )
    wall = time.perf_counter() - start
    save_checkpoint(model, out, args)
    trained = int(model.num_timesteps) - steps_before
    plot_curve(
        curve,
        out / "learning_curve.png",
        f"PPO inside the learned world ({args.num_envs} worlds, {args.obs_size}px, {args.action_set} actions)",
    )
    summary = {
        "env_steps": int(model.num_timesteps),
        "env_steps_this_run": trained,
        "wall_s_this_run": round(wall, 1),
        "wall_s_total": round(clock_before + wall, 1),
        "train_steps_per_s": round(trained / wall, 3) if wall > 0 else None,
        "num_envs": args.num_envs,
        "obs_size": args.obs_size,
        "action_set": args.action_set,
        "max_episode_steps": args.max_episode_steps,
        "sample_steps": args.sample_steps,
        "world": str(args.model or "default"),
        "world_device": args.device,
        "policy_device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "args": vars(args),
    }
    write_json(out / "train_summary.json", summary)
    print(json.dumps({k: summary[k] for k in ("env_steps", "wall_s_this_run", "train_steps_per_s")}))
    env.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
