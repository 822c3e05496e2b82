"""A batched world step never waits for the device (no GPU sync inside a step).

Checked on PyTorch's meta device, where tensors have shapes but no data: any `.item()`,
`.tolist()`, `torch.equal` or copy to the host of a step's tensors raises there. Host values go
to the device only through `host_to_device.to_device` (pinned, asynchronous on a GPU; a plain copy from the
host waits for every queued kernel): `HostToDevice` lists every op that mixes host and device
tensors anywhere else. Worlds of different history lengths are stepped together, so the warm-up
layouts are covered too."""

import traceback

import numpy as np
import pytest
import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from yume_env.model import WorldModel, WorldModelConfig, default_world_path
from yume_env.model.bench import random_world
from yume_env.model.noise import WorldNoise


class HostToDevice(TorchDispatchMode):
    """Records ops that read a host tensor (not a 0-dim scalar) into a meta one outside `to_device`."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        outputs = [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
        host = any(t.device.type == "cpu" and t.dim() > 0 for t in inputs)
        if host and any(t.device.type == "meta" for t in inputs + outputs):
            frames = traceback.extract_stack()
            if not any(f.name == "to_device" for f in frames):
                where = [f"{f.filename.split('yume_env/')[-1]}:{f.lineno}" for f in frames if "yume_env" in f.filename]
                self.found.append(f"{func} at {' < '.join(reversed(where[-3:]))}")
        return out


def _to_meta(model, state, noise):
    """Moves a private model (never the envs' shared cached one), a state and its noise to meta."""
    model.to("meta")
    state.history = state.history.to("meta")
    state.pose, state.origin = state.pose.to("meta"), state.origin.to("meta")
    if isinstance(state.vae_cache, dict):
        state.vae_cache = {k: v.to("meta") for k, v in state.vae_cache.items()}
    return noise.to("meta")


def _mixed_ages(model, ages, seed=0):
    """One state of len(ages) worlds, world i stepped ages[i] times on the CPU first."""
    H, W = model.frame_size
    start = np.random.default_rng(seed).integers(0, 256, size=(1, H, W, 3), dtype=np.uint8)
    worlds = []
    for i, age in enumerate(ages):
        state = model.init_state(start)
        noise = WorldNoise([i])
        for _ in range(age):
            model.step(state, torch.zeros(1, 2, dtype=torch.long), noise)
        worlds.append(state)
    return model.join_states(worlds)


@pytest.mark.parametrize("preset", ["pixel", "default world"])
def test_a_batched_step_of_worlds_at_different_ages_makes_no_host_read(preset):
    if preset == "pixel":
        config = WorldModelConfig.preset("pixel").replace(
            dim=32, ffn_dim=64, num_layers=1, num_heads=1, memory_head_dim=16
        )
        model = random_world(config)
    else:
        model = WorldModel.from_pretrained(default_world_path())
    ages = [0, 1, 3, 20]  # warm-up layouts beside a steady one; recall banks empty and filled
    state = _mixed_ages(model, ages)
    noise = _to_meta(model, state, WorldNoise(list(range(len(ages)))))
    before = list(state.history.n_history)
    with HostToDevice() as copies:
        for _ in range(2):
            out = model.step(state, torch.tensor([[1, 0], [0, 3], [2, 2], [8, 8]]), noise)
            assert out.pixels.device.type == "meta"
    assert copies.found == []
    latents_per_step = model.config.latent_frames_per_chunk
    assert state.history.n_history == [n + 2 * latents_per_step for n in before]


def test_the_vector_envs_tensor_step_with_the_beacon_reward_makes_no_host_read():
    """`DeviceWorldBatch.step_tensors` (what `YumeWorldVectorEnv(tensors=True)` steps, before its one
    read of the done mask): the world step, observations, the beacon reward and the infos."""
    from yume_env.env.world_vector_env import YumeWorldVectorEnv

    env = YumeWorldVectorEnv(num_envs=3, tensors=True, model=WorldModel.from_pretrained(default_world_path()))
    env.reset(seed=0)
    env.step(np.zeros((3, 2), dtype=np.int64))
    batch = env._world
    batch.noise = _to_meta(batch.model, batch.state, batch.noise)
    batch.pixels, batch.step_counts = batch.pixels.to("meta"), batch.step_counts.to("meta")
    batch.device = torch.device("meta")  # the model's device, which `_to_meta` moved
    actions = np.array([[1, 0], [0, 3], [2, 2]])
    batch.step_tensors(actions)  # the reward's per-world memory moves to the new device once
    with HostToDevice() as copies:
        obs, rewards, terminated, infos = batch.step_tensors(actions)
    assert copies.found == []
    assert {t.device.type for t in (obs, rewards, terminated, infos["frames"], infos["pose"])} == {"meta"}
