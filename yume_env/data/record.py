"""Record episodes of any Gymnasium env with Discrete or MultiDiscrete actions into a shard dataset
(`yume-env data record`; the format is in `yume_env.data.shards`).

    summary = record("CartPole-v1", episodes=100, out="data/cartpole", size=64)

Frames are the observation when it is an RGB image (uint8 (H, W, 3)), else `env.render()` of the
env made with `render_mode="rgb_array"`; each is resized to (size, size) with Pillow's antialiased
bilinear filter (the aspect ratio is not kept: the whole view stays in the frame). Episode `i`
resets with seed `seed + i` and, for the random policy, seeds the action space with it too, so a
run is reproducible and resuming gives the episodes an uninterrupted run would have.

Policies (`load_policy`): "random" (action_space.sample()), a stable-baselines3 PPO, A2C or DQN
`.zip` (sampled, deterministic=False, on the env's raw observations), or a `.json` action list:
one list of actions replayed in every episode, or a list of such lists (episode i plays list
i mod count). An action is an int for Discrete, a list of ints for MultiDiscrete, in the env's own
numbering (with its `start`). An episode ends when the env ends it, at `max_steps`, or when its
JSON list runs out (the last two mark the last step truncated).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .shards import SHARD_BYTES, ShardWriter

POLICY_HELP = "random (default), a stable-baselines3 PPO/A2C/DQN .zip, or a .json action list"


def record(
    env_id: str,
    episodes: int,
    out: str | os.PathLike,
    size: int = 64,
    policy: str = "random",
    seed: int = 0,
    max_steps: int = 1000,
    env_kwargs: dict | None = None,
    shard_bytes: int = SHARD_BYTES,
    progress: bool = True,
) -> dict:
    """Records episodes of `env_id` into `out` until it holds `episodes` (continuing a folder that
    already holds some); returns a summary dict."""
    if episodes < 1 or size < 1 or max_steps < 1:
        raise ValueError(f"--episodes, --size and --max-steps must be positive, got {episodes}, {size}, {max_steps}")
    env, frames_from = make_env(env_id, env_kwargs or {})
    try:
        spec = action_spec(env, env_id)
        pol = load_policy(policy, env)
        obs, _ = env.reset(seed=seed)
        env_frame(obs, env, frames_from, size)  # a frame fails here (e.g. render() lacks pygame), not mid-run
        source = {"policy": str(policy), "seed": int(seed), "max_steps": int(max_steps), "env_kwargs": env_kwargs or {}}
        fps = env.metadata.get("render_fps")
        with ShardWriter(
            out, env_id, spec, size, fps=fps, frames_from=frames_from, source=source, shard_bytes=shard_bytes
        ) as writer:
            done = writer.episodes
            _record_episodes(
                env, pol, writer, spec, frames_from, range(done, episodes), seed, size, max_steps, progress, env_id
            )
        index = writer.index
    finally:
        env.close()
    return {
        "out": str(out),
        "env_id": env_id,
        "episodes": index["episodes"],
        "steps": index["steps"],
        "recorded_now": max(0, index["episodes"] - done),
        "shards": len(index["shards"]),
        "frames_from": frames_from,
        "frame_size": size,
        "action_space": spec,
        "cleaned": writer.cleaned,
    }


def _record_episodes(env, policy, writer, spec, frames_from, todo, seed, size, max_steps, progress, env_id):
    """Runs and queues episodes `todo`, with a tqdm bar over the whole target."""
    from tqdm.auto import tqdm

    bar = tqdm(total=todo.stop, initial=todo.start, desc=f"record {env_id}", unit="ep", disable=not progress)
    steps = 0
    try:
        for i in todo:
            ep = run_episode(env, policy, i, seed + i, size, frames_from, max_steps, spec)
            writer.add_episode(**ep, seed=seed + i)
            steps += len(ep["actions"])
            bar.update(1)
            bar.set_postfix(steps=steps)
    finally:
        bar.close()


# -- the env ----------------------------------------------------------------------------------
def make_env(env_id: str, env_kwargs: dict):
    """(env, frames_from): the env made so that it gives RGB frames, and where they come from
    ("observation" or "render")."""
    import gymnasium as gym

    import yume_env  # noqa: F401  registers YumeSim-v0 and YumeWorld-v0

    env = _make(gym, env_id, env_kwargs)
    if is_rgb_space(env.observation_space):
        return env, "observation"
    modes = env.metadata.get("render_modes", [])
    obs_space = env.observation_space
    env.close()
    if "rgb_array" not in modes:
        raise ValueError(
            f"{env_id} gives no RGB frames: its observations are {obs_space} (not uint8 (H, W, 3)) and "
            f"it has no render_mode 'rgb_array' (render modes: {modes}); record an env that renders"
        )
    return _make(gym, env_id, dict(env_kwargs, render_mode="rgb_array")), "render"


def _make(gym, env_id: str, env_kwargs: dict):
    try:
        return gym.make(env_id, **env_kwargs)
    except gym.error.Error as e:
        raise ValueError(
            f"cannot make env {env_id!r} ({type(e).__name__}: {e}); install the package that registers it "
            f"and name it as 'module:EnvId' (e.g. 'ale_py:ALE/Pong-v5') if a module must be imported"
        ) from None


def is_rgb_space(space) -> bool:
    """True for a Box of uint8 (H, W, 3) images."""
    from gymnasium import spaces

    return isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3 and space.shape[-1] == 3


def action_spec(env, env_id: str = "the env") -> dict:
    """The index's action space of a Discrete or MultiDiscrete env (ValueError for any other)."""
    from gymnasium import spaces

    space = env.action_space
    if isinstance(space, spaces.Discrete):
        spec = {"type": "discrete", "nvec": [int(space.n)], "start": [int(space.start)]}
    elif isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim == 1:
        spec = {"type": "multi_discrete", "nvec": [int(n) for n in space.nvec], "start": [int(s) for s in space.start]}
    else:
        raise ValueError(
            f"{env_id} has action space {space}; `yume-env data record` takes Discrete or one-dimensional "
            f"MultiDiscrete actions. Wrap the env in a gymnasium.ActionWrapper whose action_space is "
            f"Discrete (e.g. an index into a few fixed {type(space).__name__} actions), register the "
            f"wrapped env and record it as --env your_module:YourEnv-v0"
        )
    if not any(spec["start"]):
        del spec["start"]
    names = action_names(env, spec)
    if names is not None:
        spec["names"] = names
    return spec


def action_names(env, spec: dict) -> list | None:
    """Names of the actions when the env tells them: ALE's get_action_meanings() (Discrete), the
    Yume (key, camera) vocabulary for yume-env's MultiDiscrete([9, 9]) envs; else None."""
    from yume_env.actions import CAMERAS, KEYS

    base = env.unwrapped
    if spec["type"] == "discrete" and hasattr(base, "get_action_meanings"):
        try:
            names = [str(n) for n in base.get_action_meanings()]
        except Exception:  # an env whose meanings need state it does not have yet
            return None
        return names if len(names) == spec["nvec"][0] else None
    if type(base).__module__.startswith("yume_env.") and spec["nvec"] == [len(KEYS), len(CAMERAS)]:
        return [list(KEYS), list(CAMERAS)]
    return None


def encode_action(action, spec: dict) -> np.ndarray:
    """(A,) int64 zero-based action of an env action (ValueError naming it when out of the space)."""
    start = np.array(spec.get("start", [0] * len(spec["nvec"])), dtype=np.int64)
    try:
        arr = np.asarray(action, dtype=np.int64).reshape(-1) - start
    except (TypeError, ValueError):
        raise ValueError(f"action {action!r} is not {len(start)} integer(s)") from None
    if arr.shape != start.shape or ((arr < 0) | (arr >= np.array(spec["nvec"]))).any():
        raise ValueError(f"action {action!r} is outside the action space (nvec {spec['nvec']}, start {start.tolist()})")
    return arr


def env_frame(obs, env, frames_from: str, size: int) -> np.ndarray:
    """The (size, size, 3) uint8 frame of the current state."""
    if frames_from == "observation":
        frame = obs
    else:
        try:
            frame = env.render()
        except Exception as e:  # gymnasium's DependencyNotInstalled (pygame), a display error, ...
            raise ValueError(
                f"{env.spec.id if env.spec else 'the env'}: render() failed ({type(e).__name__}: {e})"
            ) from None
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"the env's {frames_from} frame must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
    return resize_frame(frame, size)


def resize_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, 3) -> (size, size, 3), antialiased (Pillow bilinear scales its filter when shrinking)."""
    if frame.shape[:2] == (size, size):
        return np.ascontiguousarray(frame)
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.BILINEAR))


def run_episode(
    env, policy, episode: int, seed: int, size: int, frames_from: str, max_steps: int, spec: dict
) -> dict[str, np.ndarray]:
    """One episode: {"frames" (T+1, S, S, 3), "actions" (T, A), "rewards", "terminated", "truncated" (T,)}."""
    obs, _ = env.reset(seed=seed)
    policy.reset(episode, seed)
    frames = [env_frame(obs, env, frames_from, size)]
    actions, rewards, terminated, truncated = [], [], [], []
    for _ in range(max_steps):
        action = policy.act(obs)
        if action is None:  # a JSON list ran out
            break
        obs, reward, term, trunc, _ = env.step(action)
        actions.append(encode_action(action, spec))
        rewards.append(float(reward))
        terminated.append(bool(term))
        truncated.append(bool(trunc))
        frames.append(env_frame(obs, env, frames_from, size))
        if term or trunc:
            break
    if not actions:
        raise ValueError(f"episode {episode}: the policy gave no action")
    if not (terminated[-1] or truncated[-1]):
        truncated[-1] = True  # cut by --max-steps or the end of a JSON list: a time limit
    return {
        "frames": np.stack(frames),
        "actions": np.stack(actions),
        "rewards": np.array(rewards, np.float32),
        "terminated": np.array(terminated),
        "truncated": np.array(truncated),
    }


# -- policies ---------------------------------------------------------------------------------
class RandomPolicy:
    """The env's action_space.sample(), seeded per episode."""

    def __init__(self, env):
        self.space = env.action_space

    def reset(self, episode: int, seed: int) -> None:
        self.space.seed(seed)

    def act(self, obs):
        return self.space.sample()


class ScriptedPolicy:
    """Actions replayed from a JSON list (one list for every episode, or one per episode)."""

    def __init__(self, path: Path, env):
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a readable JSON action list ({e})") from None
        spec = action_spec(env)
        depth = 0 if spec["type"] == "discrete" else 1
        if _depth(data) == depth + 1:
            data = [data]
        elif _depth(data) != depth + 2:
            one = "3" if depth == 0 else "[3, 1]"
            raise ValueError(
                f"{path}: expected a list of actions (e.g. [{one}, {one}]) or a list of such lists, "
                f"an action being {'an int' if depth == 0 else 'a list of ints'} for {env.action_space}"
            )
        for episode in data:
            for a in episode:
                encode_action(a, spec)  # checked up front, not mid-recording
        if not all(data):
            raise ValueError(f"{path}: every action list needs at least one action")
        self.lists, self.space = data, env.action_space
        self.actions, self.t = [], 0

    def reset(self, episode: int, seed: int) -> None:
        self.actions, self.t = self.lists[episode % len(self.lists)], 0

    def act(self, obs):
        if self.t >= len(self.actions):
            return None
        a = self.actions[self.t]
        self.t += 1
        return int(a) if isinstance(a, int) else np.asarray(a, dtype=self.space.dtype)


def _depth(x) -> int:
    """Nesting depth of lists: 3 -> 0, [3] -> 1, [[3]] -> 2."""
    return 1 + _depth(x[0]) if isinstance(x, list) and x else int(isinstance(x, list))


class Sb3Policy:
    """A stable-baselines3 PPO, A2C or DQN policy from its .zip, sampling actions on the raw observations."""

    def __init__(self, path: Path, env):
        try:
            from stable_baselines3 import A2C, DQN, PPO
        except ImportError:
            raise ValueError(f"--policy {path} needs stable-baselines3: pip install 'yume-env[rl]'") from None
        errors = []
        for algo in (PPO, A2C, DQN):
            try:
                self.model = algo.load(str(path), device="cpu")
                break
            except Exception as e:  # the zip of another algorithm fails to load with this class
                errors.append(f"{algo.__name__}: {type(e).__name__}")
        else:
            raise ValueError(f"{path}: not a stable-baselines3 PPO, A2C or DQN zip ({'; '.join(errors)})")
        for what, theirs, ours in (
            ("observation", self.model.observation_space, env.observation_space),
            ("action", self.model.action_space, env.action_space),
        ):
            if theirs.shape != ours.shape or type(theirs) is not type(ours):
                raise ValueError(
                    f"{path}: the policy takes {what} space {theirs}, the env has {ours}; record with "
                    f"a policy trained on this env without wrappers, or with --policy random"
                )

    def reset(self, episode: int, seed: int) -> None:
        self.model.set_random_seed(seed)

    def act(self, obs):
        action, _ = self.model.predict(obs, deterministic=False)
        return action.item() if np.ndim(action) == 0 else action


def load_policy(policy: str, env):
    """'random', a .zip (stable-baselines3) or a .json action list -> an object with
    reset(episode, seed) and act(obs) (None when it has no more actions)."""
    if policy == "random":
        return RandomPolicy(env)
    path = Path(policy)
    if path.suffix not in (".zip", ".json"):
        raise ValueError(f"--policy must be {POLICY_HELP}; got {policy!r}")
    if not path.is_file():
        raise FileNotFoundError(f"--policy {path}: no such file")
    return Sb3Policy(path, env) if path.suffix == ".zip" else ScriptedPolicy(path, env)
