"""The task head's "reached" scored against the simulator's truth: the counting, and the seeking and
walking rollouts with a stand-in world whose head always or never calls reached."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from yume_env.eval.task_reached import _rates, seek_burn_in, task_reached

pytest.importorskip("yume_env.sim")


class StubWorld:
    """A world of 64x64 frames, 2 per step, whose task head always (or never) says reached at 1 m."""

    frame_size, frames_per_step, device = (64, 64), 2, torch.device("cpu")

    def __init__(self, says_reached: bool):
        self.task_head = object()
        self.says_reached = says_reached
        self.stepped = 0

    def init_state(self, frames, actions=None, event=""):
        assert frames.shape[1:] == (64, 64, 3) and len(actions) == len(frames) - 1
        return SimpleNamespace()

    def step(self, states, actions, generator):
        assert actions.shape == (len(states), 2)
        self.stepped += 1
        return SimpleNamespace(latents=torch.zeros(len(states), 1))

    def predict_task(self, latents):
        n = len(latents)
        return {"reached_logit": torch.full((n,), 5.0 if self.says_reached else -5.0), "distance": torch.ones(n)}


def test_rates_count_precision_recall_and_early_calls():
    truth = np.array([[0, 0, 1, 1], [0, 0, 0, 0]], dtype=bool)
    called = np.array([[0, 1, 1, 0], [0, 0, 0, 1]], dtype=bool)
    r = _rates(called, truth)
    assert r["true_positives"] == 1 and r["called"] == 3
    assert r["precision"] == pytest.approx(1 / 3) and r["recall"] == pytest.approx(1 / 2)
    assert r["episodes_early"] == 2  # world 0 called at step 1 (truth from 2); world 1 never got there
    none = _rates(np.zeros_like(truth), truth)
    assert none["precision"] is None and none["recall"] == 0.0 and none["episodes_early"] == 0


def run(world, episodes, steps, burn=2):
    return task_reached(
        world,
        episodes,
        steps,
        burn,
        seed=1_600_000,
        rng=np.random.default_rng(0),
        generator=torch.Generator(),
        progress=False,
    )


def test_seekers_reach_the_beacon_and_an_always_reached_head_has_full_recall():
    world = StubWorld(says_reached=True)
    out = run(world, episodes=4, steps=40)
    assert world.stepped == 40 and out["seeking"] == out["walking"] == 2
    seek = out["by_policy"]["seek"]["head"]
    assert seek["true_positives"] > 0 and out["episodes_reached"] >= 2  # the seekers walk to the beacon
    positives = out["steps_reached"]
    assert 0 < positives < 4 * 40
    assert out["head"]["recall"] == 1.0 and out["head"]["precision"] == pytest.approx(positives / (4 * 40))
    assert out["env_rule"] == out["head"]  # a predicted 1 m is under the env's 3 m
    assert out["head"]["episodes_early"] == 4  # called from the first step, before any world got there
    walk = out["by_policy"]["walk"]["head"]
    assert walk["called"] == 2 * 40 and walk["called"] + seek["called"] == out["head"]["called"]


def test_a_never_reached_head_calls_nothing_and_a_world_without_a_head_is_skipped():
    out = run(StubWorld(says_reached=False), episodes=2, steps=30, burn=1)
    assert out["head"]["called"] == 0 and out["head"]["precision"] is None and out["head"]["recall"] in (0.0, None)
    no_head = StubWorld(says_reached=True)
    no_head.task_head = None
    assert run(no_head, 1, 2) is None


def test_seek_burn_in_gives_the_worlds_their_start():
    start = seek_burn_in(StubWorld(True), [1_600_000, 1_600_001], 3)
    assert start.frames.shape == (2, 1 + 3 * 2, 64, 64, 3) and start.actions.shape == (2, 3, 2)
    assert [s.step_count for s in start.sims] == [3, 3]
