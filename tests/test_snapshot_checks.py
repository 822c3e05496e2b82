"""Snapshots are checked whole before a resume changes the env (issue 31, item 3).

A corrupt or foreign `reset(options={"state": ...})` is refused with an error naming the field, and
the env is left exactly as it was; a damaged saved-snapshot folder names the file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_env_support import start_views, tiny_world, tiny_world_dir

import yume_env  # noqa: F401
from yume_env.env.rewards import BeaconReward
from yume_env.env.snapshot import WorldSnapshot
from yume_env.model import WorldModel

BEACON_STATE = {"first_distance": 3.0, "walked": 1.0, "last_distance": 2.0, "position": [0.5, 0.0, -0.5]}


def make(**kwargs):
    return gym.make("YumeWorld-v0", model=tiny_world_dir(), disable_env_checker=True, **kwargs)


def stepped(seed=0, steps=1, **kwargs):
    env = make(**kwargs)
    env.reset(seed=seed)
    for _ in range(steps):
        env.step("W")
    return env


def assert_same(a: WorldSnapshot, b: WorldSnapshot) -> None:
    """Two snapshots of one world state: every tensor, noise stream, RNG state and frame equal."""
    for key in ("history", "pose", "origin", "poses"):
        if a.world.get(key) is not None:
            assert torch.equal(a.world[key], b.world[key]), key
    assert (a.step, a.event, a.world["n_history"]) == (b.step, b.event, b.world["n_history"])
    assert a.generator_state == b.generator_state
    assert a.np_random_state == b.np_random_state and a.reward_state == b.reward_state
    np.testing.assert_array_equal(a.last_frame, b.last_frame)


def refused(env, snap, error, pattern):
    """Resets `env` with `snap`, expecting `error` matching `pattern`; checks nothing changed."""
    before = env.unwrapped.get_state()
    with pytest.raises(error, match=pattern):
        env.reset(options={"state": snap})
    assert_same(before, env.unwrapped.get_state())


def damaged(snap, change):
    copy = snap.copy()
    change(copy)
    return copy


def test_a_nan_history_is_refused_naming_the_field():
    env = stepped()
    snap = damaged(env.unwrapped.get_state(), lambda s: s.world["history"].view(-1).__setitem__(0, float("nan")))
    refused(env, snap, ValueError, r"field 'history' holds NaN or infinite values")


def test_a_last_frame_of_another_size_is_refused():
    env = stepped()
    snap = damaged(env.unwrapped.get_state(), lambda s: setattr(s, "last_frame", np.zeros((32, 32, 3), np.uint8)))
    refused(env, snap, ValueError, r"field 'last_frame' has shape \(32, 32, 3\); this world's frames are \(64, 64, 3\)")


def test_another_models_snapshot_is_refused_at_reset_not_at_the_next_step():
    own = tiny_world()
    other = WorldModel.from_config(own.config.replace(num_heads=2), seed=1, text=own.text)
    foreign = other.init_state(start_views(own.frame_size)[:1]).to_dict()[0]
    env = stepped()
    snap = damaged(env.unwrapped.get_state(), lambda s: setattr(s, "world", foreign))
    refused(env, snap, ValueError, r"made by another model: its config_fingerprint is '\w+', this model's is")
    assert env.step("W")[4]["step"] == 2  # the env goes on where it was


def test_a_refused_reward_state_puts_the_old_one_back():
    env = make(reward_fn=BeaconReward())  # the tiny world has no task head: reset and restore only
    env.reset(seed=0)
    good = damaged(env.unwrapped.get_state(), lambda s: setattr(s, "reward_state", dict(BEACON_STATE)))
    env.reset(options={"state": good})
    bad = damaged(good, lambda s: setattr(s, "reward_state", {"first_distance": 1.0}))
    bad.world["history"] = bad.world["history"] + 1  # so a half-applied restore would show
    refused(env, bad, ValueError, r"field 'reward_state' does not fit this env's reward function")
    assert env.unwrapped.get_state().reward_state == BEACON_STATE


@pytest.mark.parametrize(
    "field, value, error, pattern",
    [
        (
            "generator_state",
            torch.Generator().get_state(),
            ValueError,
            r"'generator_state' holds a torch.Generator state \(a snapshot from an older yume-env\).*"
            r"save it again with this version",
        ),
        (
            "generator_state",
            [1, 2, 3],
            TypeError,
            r"'generator_state' must be a dict \{\"key\": int, \"counter\": int\}",
        ),
        (
            "generator_state",
            {"key": 1, "counter": -1},
            ValueError,
            r"'generator_state': 'counter' must be in \[0, 2\*\*63\)",
        ),
        ("generator_state", {"key": 2**63, "counter": 0}, ValueError, r"'generator_state': 'key' must fit in int64"),
        ("generator_state", {"key": 1.5, "counter": 0}, TypeError, r"'generator_state': 'key' must be an int"),
        (
            "np_random_state",
            {"bit_generator": "MT19937", "state": {}},
            ValueError,
            r"'np_random_state' is not a PCG64 state",
        ),
        ("reward_state", {"walked": float("inf")}, ValueError, r"'reward_state.walked' is inf, not a finite number"),
        ("last_frame", np.zeros((64, 64, 3), np.float32), TypeError, r"'last_frame' must be a uint8 numpy array"),
    ],
)
def test_bad_noise_rng_reward_and_frame_fields_are_refused_by_name(field, value, error, pattern):
    env = stepped()
    refused(env, damaged(env.unwrapped.get_state(), lambda s: setattr(s, field, value)), error, pattern)


def _set(key, value):
    return lambda w: w.__setitem__(key, value)


def _nan(*keys):
    def change(w):
        t = w
        for k in keys:
            t = t[k]
        t.view(-1)[0] = float("nan")

    return change


@pytest.mark.parametrize(
    "change, error, pattern",
    [
        (
            lambda w: w.__setitem__("history", w["history"][:, :1]),
            ValueError,
            r"'history' has shape \(16, 1, 8, 8\); this model's worlds have \(16, 3, 8, 8\)",
        ),
        (
            lambda w: w.__setitem__("history", w["history"].long()),
            TypeError,
            r"'history' must be a floating point tensor",
        ),
        (_set("n_history", 50), ValueError, r"'history' has shape .* keeps of n_history=50"),
        (_nan("memory", "kv"), ValueError, r"'memory.kv' holds NaN"),
        (_nan("pose"), ValueError, r"'pose' holds NaN"),
        (_nan("vae_cache", "last_latent"), ValueError, r"'vae_cache.last_latent' holds NaN"),
        (
            lambda w: w["vae_cache"].__setitem__("last_latent", torch.zeros(1, 8, 8, 8)),
            ValueError,
            r"'vae_cache.last_latent' has shape \(1, 8, 8, 8\)",
        ),
        (_set("pose", [0.0, 0.0, 0.0, 0.0]), TypeError, r"'pose' must be a torch.Tensor \(4,\)"),
        (_set("event", 5), TypeError, r"'event' must be a str"),
        (_set("step_count", -1), ValueError, r"'step_count' must be >= 0"),
        (_set("format", 2), ValueError, r"format 2 is not supported"),
        (lambda w: w.pop("config_fingerprint"), ValueError, r"lacks 'config_fingerprint'"),
    ],
)
def test_every_world_field_is_checked_before_the_env_changes(change, error, pattern):
    env = stepped(steps=1)
    snap = env.unwrapped.get_state()
    assert snap.world["n_history"] == 3 and snap.world["history"].shape == (16, 3, 8, 8)  # a start latent + a chunk
    refused(env, damaged(snap, lambda s: change(s.world)), error, pattern)


def test_load_state_refuses_a_world_of_another_config():
    own = tiny_world()
    world = own.init_state(start_views(own.frame_size)[:1]).to_dict()[0]
    assert world["config_fingerprint"] == own.load_state(world).to_dict()[0]["config_fingerprint"]
    other = WorldModel.from_config(own.config.replace(text_tokens=3), seed=1, text=own.text)
    with pytest.raises(ValueError, match=r"saved world was made by another model"):
        other.load_state(world)
    sampled = WorldModel.from_config(own.config.replace(sample_steps=4, shift=1.0), seed=1, text=own.text)
    sampled.load_state(world)  # how a chunk is sampled is not part of a world's state


def _edit_json(change):
    def apply(folder):
        meta = json.loads((folder / "snapshot.json").read_text())
        change(meta)
        (folder / "snapshot.json").write_text(json.dumps(meta))

    return apply


@pytest.mark.parametrize(
    "damage, error, file, pattern",
    [
        (lambda f: (f / "tensors.safetensors").unlink(), FileNotFoundError, "tensors.safetensors", "is missing"),
        (lambda f: (f / "snapshot.json").write_text("{"), ValueError, "snapshot.json", "is not valid JSON"),
        (lambda f: (f / "snapshot.json").write_text("[]"), ValueError, "snapshot.json", "must hold a JSON object"),
        (_edit_json(lambda m: m.__setitem__("format_version", 1)), ValueError, "snapshot.json", "has format_version 1"),
        (
            _edit_json(lambda m: m.pop("reward_state")),
            ValueError,
            "snapshot.json",
            r"lacks the entries \['reward_state'\]",
        ),
        (
            _edit_json(lambda m: m["world"]["__dict__"]["history"].__setitem__("__tensor__", "gone")),
            ValueError,
            "tensors.safetensors",
            "lacks the tensor 'gone'",
        ),
        (
            _edit_json(lambda m: m.__setitem__("world", {"__dict__": 5})),
            ValueError,
            "snapshot.json",
            "entry 'world' is malformed",
        ),
        (
            lambda f: (f / "tensors.safetensors").write_bytes(b"\0" * 20),
            ValueError,
            "tensors.safetensors",
            "is not a readable safetensors file",
        ),
    ],
)
def test_a_damaged_snapshot_folder_names_the_file(tmp_path, damage, error, file, pattern):
    stepped().unwrapped.save_state(tmp_path / "good")
    shutil.copytree(tmp_path / "good", tmp_path / "bad")
    damage(tmp_path / "bad")
    with pytest.raises(error, match=pattern) as err:
        WorldSnapshot.load(tmp_path / "bad")
    assert str(tmp_path / "bad" / file) in str(err.value)
    WorldSnapshot.load(tmp_path / "good")


def test_an_old_snapshot_folder_with_a_torch_generator_state_names_the_problem_and_the_fix(tmp_path):
    """Before counter-based noise (format_version 2) a snapshot held its world's torch.Generator state:
    this version cannot continue that world's noise, and says so instead of drawing other noise."""
    folder = Path(stepped().unwrapped.save_state(tmp_path / "old"))
    meta = json.loads((folder / "snapshot.json").read_text())
    tensors = load_file(str(folder / "tensors.safetensors"))
    tensors["generator_state"] = torch.Generator().manual_seed(0).get_state()
    meta.update(format_version=2, generator_state={"__tensor__": "generator_state"})
    save_file(tensors, str(folder / "tensors.safetensors"))
    (folder / "snapshot.json").write_text(json.dumps(meta))
    with pytest.raises(
        ValueError, match=r"older yume-env \(format_version 2\): its 'generator_state' is a torch.Generator state"
    ) as err:
        WorldSnapshot.load(folder)
    assert str(folder / "snapshot.json") in str(err.value) and "save it again with this version" in str(err.value)


def test_a_saved_snapshot_keeps_the_noise_key_and_counter(tmp_path):
    env = stepped(seed=3, steps=2)
    snap = env.unwrapped.get_state()
    assert set(snap.generator_state) == {"key", "counter"} and snap.generator_state["counter"] == 2
    loaded = WorldSnapshot.load(env.unwrapped.save_state(tmp_path / "s"))
    assert loaded.generator_state == snap.generator_state
    assert_same(loaded, snap)
