"""Clips that come back to a view they saw (`revisit_script`): the returns the pretrain stage trains
recall on, and the evaluation's memory measures score."""

from __future__ import annotations

import numpy as np
import pytest

from yume_env.actions import TURN_SPEED
from yume_env.data.sim_clips import HALF_TURN, ActionPolicy, SimClipSource, revisit_script
from yume_env.sim import Simulator


def test_every_revisit_script_turns_a_whole_number_of_times_and_walks_back():
    rng = np.random.default_rng(0)
    kinds = set()
    for max_steps in (4, 9, 30, 36, 44, 60):
        for _ in range(40):
            script = revisit_script(rng, max_steps)
            assert 4 <= len(script) <= max_steps
            cams = script[:, 1]
            turns = np.isin(cams, [1]).sum() - np.isin(cams, [2]).sum()  # → minus ←
            assert (turns * TURN_SPEED) % (2 * np.pi) == pytest.approx(0.0, abs=1e-9) or abs(
                turns * TURN_SPEED
            ) == pytest.approx(2 * np.pi)
            kinds.add("loop" if len(set(cams.tolist())) <= 2 and abs(turns) == 2 * HALF_TURN else "turn back")
    assert kinds == {"loop", "turn back"}
    with pytest.raises(ValueError, match="at least 4 steps"):
        revisit_script(rng, 3)


def test_a_turn_back_in_the_simulator_ends_on_the_view_it_started_from():
    rng = np.random.default_rng(3)
    script = revisit_script(rng, 20)  # too short for a loop: always a turn away and back
    sim = Simulator(32, 32, 2, seed=0)
    start = sim.reset(seed=5)
    for a in script:
        out = sim.step(a)
    assert np.array_equal(out.frames[-1], start)


def test_revisits_end_the_chosen_clips_and_draw_nothing_when_off():
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    acts = ActionPolicy().sample(rng_a, 6, 30)
    assert not ActionPolicy().add_revisits(rng_a, acts.copy()).any()
    ActionPolicy().sample(rng_b, 6, 30)
    assert rng_a.random() == rng_b.random()  # fraction 0 draws nothing: runs without revisits are unchanged
    policy = ActionPolicy(revisit_fraction=1.0)
    acts = policy.sample(rng_a, 6, 30)
    chosen = policy.add_revisits(rng_a, acts)
    assert chosen.all()
    for clip in acts:  # each clip ends with a script: no net turn over its last steps that turn
        assert clip[-1, 0] in (0, 1)  # standing (None) or walking (W) in the script's last step
    with pytest.raises(ValueError, match="revisit_fraction"):
        ActionPolicy(revisit_fraction=1.5)


def test_a_seeker_never_steers_a_revisit_clip_off_its_script():
    src = SimClipSource(32, 32, 2, policy=ActionPolicy(seek_fraction=1.0, revisit_fraction=1.0))
    clips = src.render(3, 12, seed=4)
    rng = np.random.default_rng(4)
    expected = ActionPolicy(seek_fraction=1.0, revisit_fraction=1.0).sample(rng, 3, 12)
    rng.random(3)
    ActionPolicy(revisit_fraction=1.0).add_revisits(rng, expected)
    assert np.array_equal(clips.actions.numpy(), expected)
