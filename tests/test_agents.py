"""Agents: the interface, random/scripted/keyboard agents and the episode loop (on YumeSim-v0)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import test_examples_support  # noqa: F401  (puts the repo root on sys.path)

import yume_env  # noqa: F401
from agents import (
    EventScript,
    KeyboardAgent,
    LookAroundAgent,
    PlanAgent,
    RandomAgent,
    StraightWalkAgent,
    WaypointFollower,
    keys_to_action,
    loop_back_agent,
    run_episode,
)
from agents.action_sets import ACTION_SETS, action_table, resolve_action_set
from agents.base import Agent, as_action
from yume_env import actions as A


def sim(max_steps=50):
    return gym.make("YumeSim-v0", max_episode_steps=max_steps)


def test_random_agent_is_seeded_and_gives_valid_actions():
    a, b = RandomAgent(seed=3), RandomAgent(seed=3)
    xs = np.stack([a.act(None, {}) for _ in range(50)])
    ys = np.stack([b.act(None, {}) for _ in range(50)])
    np.testing.assert_array_equal(xs, ys)
    assert xs.dtype == np.int64 and (xs[:, 0] < A.NUM_KEYS).all() and (xs[:, 1] < A.NUM_CAMERAS).all()
    assert len({tuple(x) for x in xs}) > 10


def test_random_agent_hold_repeats_each_draw():
    agent = RandomAgent(seed=0, hold=3)
    xs = np.stack([agent.act(None, {}) for _ in range(9)])
    for k in range(3):
        assert (xs[3 * k : 3 * k + 3] == xs[3 * k]).all()


def test_plan_agent_cycles_or_idles_after_its_plan():
    cyc, once = PlanAgent.from_plan([("W", 2), ("→", 1)]), PlanAgent.from_plan([("W", 1)], cycle=False)
    assert [A.action_to_str(cyc.act(None, {})) for _ in range(4)] == ["W ·", "W ·", "None →", "W ·"]
    assert [A.action_to_str(once.act(None, {})) for _ in range(2)] == ["W ·", "None ·"]
    cyc.reset(None, {})
    assert A.action_to_str(cyc.act(None, {})) == "W ·"


def test_base_agent_without_act_names_the_method_and_bad_actions_are_rejected():
    with pytest.raises(TypeError, match="act"):
        Agent().act(None, {})
    with pytest.raises(ValueError):
        as_action(np.array([9, 0]))
    np.testing.assert_array_equal(as_action("W+A →"), [5, 1])


def test_look_around_returns_to_the_start_heading_in_the_simulator():
    env = sim(100)
    agent = LookAroundAgent()
    result = run_episode(env, agent, seed=1, max_steps=len(agent.actions))
    np.testing.assert_allclose(env.unwrapped.sim.pose[:3, :3], result.reset_info["pose"][:3, :3], atol=1e-6)


def test_loop_back_path_ends_where_it_started_in_the_simulator():
    env = sim(100)
    agent = loop_back_agent(4)
    result = run_episode(env, agent, seed=2, max_steps=len(agent.actions))
    assert result.steps == 4 + 18 + 4 + 18
    np.testing.assert_allclose(env.unwrapped.sim.pose, result.reset_info["pose"], atol=1e-6)


def test_waypoint_follower_turns_towards_a_waypoint_on_the_right():
    agent = WaypointFollower([(3.0, 0.0)])
    agent.reset(None, {"pose": np.eye(4)})
    assert A.action_to_str(agent.act(None, {"pose": np.eye(4)})) == "None →"


def test_waypoint_follower_reaches_a_waypoint_ahead_in_the_simulator():
    env = sim()
    agent = WaypointFollower([(0.0, 2.0)], radius=0.3)
    run_episode(env, agent, seed=0, max_steps=10)
    pos, _ = agent.position_and_heading({"pose": env.unwrapped.sim.pose})
    assert agent.done and np.linalg.norm(pos - [0.0, 2.0]) < 0.3


def test_event_script_sets_events_before_the_given_steps():
    env = sim()
    result = run_episode(env, EventScript(StraightWalkAgent(), {1: "night falls"}), seed=0, max_steps=3)
    assert result.events == {1: "night falls"}
    assert env.unwrapped.sim.event == "night falls"


def test_run_episode_stops_at_truncation_and_sums_rewards():
    result = run_episode(sim(max_steps=4), StraightWalkAgent(), seed=0)
    assert result.steps == 4 and result.truncated and not result.success
    assert result.episode_return == pytest.approx(sum(result.rewards))


def test_keys_to_action_follows_the_play_page_rules():
    assert A.action_to_str(keys_to_action({"KeyW", "KeyA", "ArrowRight"})) == "W+A →"
    assert A.action_to_str(keys_to_action({"KeyW", "KeyS", "ArrowUp", "ArrowLeft"})) == "None ↑←"
    assert A.action_to_str(keys_to_action(["s", "d", "down"])) == "S+D ↓"
    assert A.action_to_str(keys_to_action([])) == "None ·"
    with pytest.raises(ValueError, match="unknown key"):
        keys_to_action(["KeyQ"])


def test_keyboard_agent_latches_a_tap_between_steps():
    agent = KeyboardAgent()
    agent.press("w")
    agent.release("w")
    assert A.action_to_str(agent.act(None, {})) == "W ·"
    assert A.action_to_str(agent.act(None, {})) == "None ·"
    agent.set_held(["ArrowLeft"])
    assert A.action_to_str(agent.act(None, {})) == "None ←"


def test_action_sets_map_indices_to_key_camera_rows():
    assert len(ACTION_SETS["full"]) == 81
    np.testing.assert_array_equal(action_table("full")[A.flatten_action(5, 1)], [5, 1])
    np.testing.assert_array_equal(action_table("walk")[1], A.parse_action("W →"))
    with pytest.raises(ValueError, match="unknown action set"):
        resolve_action_set("nope")
