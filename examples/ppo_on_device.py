"""PPO whose observations never leave the device: the learned world's tensor path and a small CNN
policy on the same device, in the style of cleanrl's `ppo_atari.py` (one file, one config).

`YumeWorldVectorEnv(..., tensors=True)` steps N worlds in one batched forward and returns the
observations as uint8 tensors on --device; the policy reads them there and the rollout buffer
lives there. Only the sampled actions go to the host (the world looks up each action's text). The
reward is the world's own: the shipped default world's beacon task head (`--model` for another).

    python examples/ppo_on_device.py --device cuda --minutes 10 --out runs/ppo_on_device
    python examples/ppo_on_device.py --device cpu --num-envs 16 --total-steps 4096

Writes to --out: `train_summary.json` (env steps, training env steps/s, device name, num_envs),
`curve.json` (one point per update), `learning_curve.png` (skipped with a message when matplotlib
is missing) and `policy.pt` (the policy's state dict).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import nn
from torch.distributions import Categorical

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from yume_env.atomic import atomic_write, atomic_write_text  # noqa: E402
from yume_env.env.world_vector_env import YumeWorldVectorEnv  # noqa: E402


def knob(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class Config:
    """Every setting of a run; each field is a flag (`num_envs` is --num-envs)."""

    model: str | None = knob(None, "world folder (default: the shipped default world)")
    device: str = knob("cuda" if torch.cuda.is_available() else "cpu", "torch device of the world and the policy")
    num_envs: int | None = knob(None, "worlds stepped together (default: 1024 on cuda, 16 on cpu)")
    total_steps: int | None = knob(None, "env steps to train, all worlds together (default: until --minutes)")
    minutes: float | None = knob(None, "wall-clock budget, checked between updates (default 10 without --total-steps)")
    out: str = knob("runs/ppo_on_device", "output folder")
    obs_size: int | None = knob(None, "observation side in pixels, resized on the device (default: the world's)")
    max_episode_steps: int = knob(64, "truncation per episode")
    sample_steps: int | None = knob(None, "denoising steps per chunk (default: the world's)")
    num_steps: int = knob(16, "rollout length per world and update")
    update_epochs: int = knob(2, "passes over each rollout")
    num_minibatches: int = knob(4, "minibatches per pass")
    learning_rate: float = knob(2.5e-4, "Adam learning rate")
    gamma: float = knob(0.97, "discount")
    gae_lambda: float = knob(0.95, "GAE lambda")
    clip_coef: float = knob(0.2, "PPO ratio clip")
    ent_coef: float = knob(0.01, "entropy bonus")
    vf_coef: float = knob(0.5, "value loss weight")
    max_grad_norm: float = knob(0.5, "gradient norm clip")
    seed: int = knob(0, "seed of the worlds and the policy")
    threads: int | None = knob(None, "torch CPU threads (default: torch's)")


def parse_config(argv=None) -> Config:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    types = {"int": int, "float": float, "str": str}
    for f in fields(Config):
        kind = types[str(f.type).split("|")[0].strip()]
        p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=f.default, help=f.metadata["help"])
    return Config(**vars(p.parse_args(argv)))


def layer_init(layer: nn.Module, std: float = 2**0.5) -> nn.Module:
    nn.init.orthogonal_(layer.weight, std)
    nn.init.zeros_(layer.bias)
    return layer


class Agent(nn.Module):
    """A small CNN over uint8 observations (B, H, W, 3): one categorical head per action component, a value head."""

    def __init__(self, obs_shape: tuple[int, int, int], nvec: list[int]):
        super().__init__()
        self.nvec = list(nvec)
        self.trunk = nn.Sequential(
            layer_init(nn.Conv2d(3, 16, 8, stride=4)),
            nn.ReLU(),
            layer_init(nn.Conv2d(16, 32, 4, stride=2)),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.trunk(torch.zeros(1, 3, *obs_shape[:2])).shape[1]
        self.trunk.append(layer_init(nn.Linear(flat, 256)))
        self.trunk.append(nn.ReLU())
        self.actor = layer_init(nn.Linear(256, sum(self.nvec)), std=0.01)
        self.critic = layer_init(nn.Linear(256, 1), std=1.0)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        return self.trunk(obs.permute(0, 3, 1, 2).float() / 255.0)  # (B, H, W, 3) uint8 -> (B, 256)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.features(obs)).squeeze(-1)

    def act(self, obs: torch.Tensor, action: torch.Tensor | None = None):
        """(action (B, A), log-prob (B,), entropy (B,), value (B,)); samples the action when None."""
        h = self.features(obs)
        dists = [Categorical(logits=logits) for logits in self.actor(h).split(self.nvec, dim=-1)]
        if action is None:
            action = torch.stack([d.sample() for d in dists], dim=-1)
        logprob = sum(d.log_prob(a) for d, a in zip(dists, action.unbind(-1)))
        entropy = sum(d.entropy() for d in dists)
        return action, logprob, entropy, self.critic(h).squeeze(-1)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()})"


def plot_curve(curve: list[dict], path: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: no {path.name} (curve.json has the same points)")
        return
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    x = [p["env_steps"] for p in curve]
    ax.plot(x, [p["mean_reward"] for p in curve], color="tab:blue", marker=".", label="mean reward per step")
    ax.set_xlabel("env steps (inside the learned world)")
    ax.set_ylabel("mean reward per step", color="tab:blue")
    returns = [(p["env_steps"], p["mean_return"]) for p in curve if p["mean_return"] is not None]
    if returns:
        ax2 = ax.twinx()
        ax2.plot(*zip(*returns), color="tab:orange", marker=".")
        ax2.set_ylabel("episode return", color="tab:orange")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def main(argv=None) -> int:
    cfg = parse_config(argv)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    num_envs = cfg.num_envs or (1024 if device.type == "cuda" else 16)
    minutes = 10.0 if cfg.minutes is None and cfg.total_steps is None else cfg.minutes
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    env = YumeWorldVectorEnv(
        num_envs,
        model=cfg.model,
        device=cfg.device,
        obs_size=None if cfg.obs_size is None else (cfg.obs_size, cfg.obs_size),
        sample_steps=cfg.sample_steps,
        max_episode_steps=cfg.max_episode_steps,
        tensors=True,
    )
    space = env.single_action_space
    nvec = [int(space.n)] if hasattr(space, "n") else [int(n) for n in space.nvec]
    obs_shape = tuple(env.single_observation_space.shape)
    agent = Agent(obs_shape, nvec).to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=cfg.learning_rate, eps=1e-5)

    # the rollout, on the device: (T, N, ...)
    T, N = cfg.num_steps, num_envs
    obs = torch.zeros((T, N, *obs_shape), dtype=torch.uint8, device=device)
    actions = torch.zeros((T, N, len(nvec)), dtype=torch.long, device=device)
    logprobs, rewards, dones, values = (torch.zeros((T, N), device=device) for _ in range(4))

    next_obs, _ = env.reset(seed=cfg.seed)
    next_done = torch.zeros(N, device=device)
    episode_return = torch.zeros(N, device=device)
    curve: list[dict] = []
    env_steps, env_seconds, start = 0, 0.0, time.perf_counter()
    deadline = None if minutes is None else start + 60.0 * minutes
    print(f"PPO on {device_name(device)}: {N} worlds, observations {obs_shape} uint8 on {device}")
    while (cfg.total_steps is None or env_steps < cfg.total_steps) and (
        deadline is None or time.perf_counter() < deadline
    ):
        returns_sum = torch.zeros((), device=device)  # finished episodes' returns, summed on the device
        episodes = torch.zeros((), device=device)
        for t in range(T):
            obs[t], dones[t] = next_obs, next_done
            with torch.no_grad():
                action, logprob, _, value = agent.act(next_obs)
            actions[t], logprobs[t], values[t] = action, logprob, value
            tick = time.perf_counter()
            next_obs, reward, terminated, truncated, _ = env.step(action if len(nvec) > 1 else action[:, 0])
            env_seconds += time.perf_counter() - tick
            rewards[t], next_done = reward, (terminated | truncated).float()
            episode_return += reward
            returns_sum += (episode_return * next_done).sum()
            episodes += next_done.sum()
            episode_return *= 1.0 - next_done
        env_steps += T * N

        # generalised advantage estimation
        with torch.no_grad():
            next_value = agent.value(next_obs)
            advantages = torch.zeros_like(rewards)
            last = torch.zeros(N, device=device)
            for t in reversed(range(T)):
                not_done = 1.0 - (next_done if t == T - 1 else dones[t + 1])
                following = next_value if t == T - 1 else values[t + 1]
                delta = rewards[t] + cfg.gamma * following * not_done - values[t]
                advantages[t] = last = delta + cfg.gamma * cfg.gae_lambda * not_done * last
            returns = advantages + values

        # PPO update on the flattened rollout
        b_obs, b_actions = obs.reshape(T * N, *obs_shape), actions.reshape(T * N, len(nvec))
        b_logprobs, b_adv, b_returns = logprobs.reshape(-1), advantages.reshape(-1), returns.reshape(-1)
        minibatch = max(1, T * N // cfg.num_minibatches)
        for _ in range(cfg.update_epochs):
            order = torch.randperm(T * N, device=device)
            for lo in range(0, T * N, minibatch):
                idx = order[lo : lo + minibatch]
                _, new_logprob, entropy, new_value = agent.act(b_obs[idx], b_actions[idx])
                ratio = (new_logprob - b_logprobs[idx]).exp()
                adv = b_adv[idx]
                adv = (adv - adv.mean()) / (adv.std(correction=0) + 1e-8)
                pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
                v_loss = 0.5 * ((new_value - b_returns[idx]) ** 2).mean()
                loss = pg_loss - cfg.ent_coef * entropy.mean() + cfg.vf_coef * v_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm)
                optimizer.step()

        n_episodes = int(episodes.item())  # one host read per update
        point = {
            "env_steps": env_steps,
            "wall_s": round(time.perf_counter() - start, 2),
            "mean_reward": float(rewards.mean()),
            "episodes": n_episodes,
            "mean_return": float(returns_sum) / n_episodes if n_episodes else None,
            "loss": float(loss.detach()),
        }
        curve.append(point)
        ret = "-" if point["mean_return"] is None else f"{point['mean_return']:.3f}"
        print(f"{env_steps} env steps, {point['wall_s']} s: mean reward {point['mean_reward']:.4f}, return {ret}")

    wall = time.perf_counter() - start
    atomic_write(out / "policy.pt", lambda tmp: torch.save(agent.state_dict(), tmp))
    atomic_write_text(out / "curve.json", json.dumps({"points": curve}, indent=1))
    summary = {
        "env_steps": env_steps,
        "updates": len(curve),
        "wall_s": round(wall, 2),
        "train_env_steps_per_s": env_steps / wall if wall > 0 else None,
        "env_step_s": round(env_seconds, 2),  # time inside env.step (the rest: policy and PPO update)
        "device": str(device),
        "device_name": device_name(device),
        "num_envs": N,
        "obs_shape": list(obs_shape),
        "model": cfg.model or "default world",
        "config": {**asdict(cfg), "num_envs": N, "minutes": minutes},
        "final": curve[-1] if curve else None,
    }
    atomic_write_text(out / "train_summary.json", json.dumps(summary, indent=1))
    plot_curve(curve, out / "learning_curve.png", f"PPO on the device: {N} worlds, {summary['device_name']}")
    print(f"{env_steps} env steps in {wall:.1f} s ({summary['train_env_steps_per_s'] or 0:.0f}/s); wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
