"""Malformed actions and events get clear errors (issue 31, item 6).

Ragged action lists name the action and what is accepted (not numpy's message); blank action texts
and booleans are refused instead of read as a no-op or 1; the simulator refuses non-string events
instead of turning them into text; a lone surrogate in an event is refused before any tokenizer.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from test_env_support import tiny_world, tiny_world_dir

import yume_env  # noqa: F401
from yume_env import actions as A
from yume_env.env.sim_env import YumeSimEnv
from yume_env.env.spaces import actions_from_strings
from yume_env.sim.batch import BatchSimulator
from yume_env.sim.simulator import Simulator

SURROGATE = "it starts to \ud800snow"


@pytest.fixture(scope="module")
def env():
    env = gym.make("YumeWorld-v0", model=tiny_world_dir(), disable_env_checker=True)
    env.reset(seed=0)
    return env


@pytest.mark.parametrize("action", [[1, [2]], [[1, 2], [3]], [1, [2, 3]]])
def test_ragged_actions_name_the_action_and_what_is_accepted(env, action):
    with pytest.raises(
        ValueError,
        match=r"action must be two integers \(key in \[0, 9\), camera in \[0, 9\)\).*"
        r"got the ragged list",
    ):
        env.step(action)


def test_ragged_actions_of_a_flattened_or_vector_env_are_ours_too():
    flat = gym.make("YumeWorld-v0", model=tiny_world_dir(), flatten_actions=True, disable_env_checker=True)
    flat.reset(seed=0)
    with pytest.raises(ValueError, match=r"one integer in \[0, 81\) \(flatten_actions=True\), got the ragged list"):
        flat.step([3, [4]])
    vec = gym.make_vec("YumeWorld-v0", num_envs=2, model=tiny_world_dir())
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"integers of shape \(2, 2\).*got the ragged list \[\[1, 2\], \[3\]\]"):
        vec.step([[1, 2], [3]])


@pytest.mark.parametrize("text", ["", " ", "\t\n", " , ", ","])
def test_blank_action_texts_are_refused_not_read_as_no_move(env, text):
    with pytest.raises(ValueError, match=r"action text .* is empty; write 'KEY', 'CAMERA' or 'KEY CAMERA'"):
        env.step(text)
    with pytest.raises(ValueError, match="is empty"):
        A.parse_action(text)
    assert A.parse_action("None").tolist() == [0, 0] and A.parse_action("·").tolist() == [0, 0]


def test_booleans_and_non_strings_are_not_actions(env):
    for action in ([True, 1], (np.bool_(False), 2)):
        with pytest.raises(ValueError, match="booleans are not actions"):
            env.step(action)
    with pytest.raises(TypeError, match="action text must be a str"):
        A.parse_action(None)  # str(None) would read as the key 'None'


def test_an_action_list_names_the_blank_entry():
    with pytest.raises(ValueError, match=r"action 1 of \['W', '', 'W'\]: action text '' is empty"):
        actions_from_strings("W,,W")


@pytest.mark.parametrize("event", [5, None, b"night falls"])
def test_the_simulator_refuses_events_that_are_not_text(event):
    kind = type(event).__name__
    sim = Simulator(32, 32, seed=0)
    with pytest.raises(TypeError, match=rf"event must be a str \(\"\" for none\), got {kind}"):
        sim.set_event(event)
    with pytest.raises(TypeError, match=rf"reset event must be a str .*got {kind}"):
        sim.reset(seed=0, event=event)
    batch = BatchSimulator(2, 32, 32, seed=0)
    batch.reset()
    with pytest.raises(TypeError, match=rf"got {kind}"):
        batch.set_event(event)
    with pytest.raises(TypeError, match=rf"set_event text 1 must be a str .*got {kind}"):
        batch.set_event(["night falls", event])
    with pytest.raises(TypeError, match=rf"reset events\[0\] must be a str .*got {kind}"):
        batch.reset(events=[event, ""])
    sim_env = YumeSimEnv(height=32, width=32)
    sim_env.reset(seed=0)
    with pytest.raises(TypeError, match=rf"got {kind}"):
        sim_env.unwrapped.set_event(event)
    assert sim.event == "" and batch.events == ["", ""]


def test_a_lone_surrogate_in_an_event_is_refused_before_the_text_encoder(env):
    model = tiny_world()
    calls, event = model.text.encoder_calls, env.unwrapped.event
    with pytest.raises(ValueError, match=r"is not valid Unicode: it holds a lone surrogate '\\ud800' at index 13"):
        env.unwrapped.set_event(SURROGATE)
    with pytest.raises(ValueError, match=r"reset option 'event' .* lone surrogate"):
        env.reset(options={"event": SURROGATE})
    with pytest.raises(ValueError, match="lone surrogate"):
        model.text.add_events([SURROGATE])
    assert model.text.encoder_calls == calls and env.unwrapped.event == event
