"""`PlaySession`: one world stepped live by a background thread, driven from the page.

Only the session's own thread touches the env: page requests (reset, event, branch) are queued as
commands and run between two chunks, so a request never lands in the middle of a step. Each chunk
is published to the `Hub` (frames as data URLs plus the status line) and appended to the
`Recording` of the current branch.
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
from collections import deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from yume_env import actions as A
from yume_env.play.controls import Controls
from yume_env.play.frames import choose_format, encode_frame, fit_image, from_data_url, to_data_url
from yume_env.play.hub import Hub
from yume_env.play.recording import Recording
from yume_env.vocabulary import YUME, ActionVocabulary

COMMAND_TIMEOUT_S = 300.0  # a reset of a large world on a slow device may take this long
CLOSED_MESSAGE = "the play session is closed; restart `yume-env play`"


class SessionUnavailable(RuntimeError):
    """The session cannot run a request: it is closed, or its world did not answer in time (HTTP 503)."""


@dataclass
class Branch:
    """A saved world to come back to: the env snapshot and the recording up to it."""

    id: int
    step: int
    event: str
    snapshot: Any
    recording: Recording
    thumbnail: str  # data URL of the newest frame

    def describe(self) -> dict:
        return {"id": self.id, "step": self.step, "event": self.event, "thumbnail": self.thumbnail}


class RateMeter:
    """Steps per second over the last `window_s` seconds of wall time."""

    def __init__(self, window_s: float = 3.0):
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float) -> None:
        self._times.append(now)
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    def rate(self, now: float) -> float:
        times = [t for t in self._times if now - t <= self.window_s]
        if len(times) < 2:
            return 0.0
        return (len(times) - 1) / max(times[-1] - times[0], 1e-9)


class PlaySession:
    """Runs `env` (a `YumeWorld-v0`, possibly wrapped) for the page.

    Args:
        env: the Gymnasium env; its unwrapped env must offer `set_event`, `get_state`, `frame_size`,
            and `vocabulary` (the world's actions; Yume's keys x camera moves when it has none).
        model_name: written into the action log (`--model` of a replay); None = the default world.
        seed: the first reset's seed (None: a random one, recorded in the log).
        max_steps_per_s: cap on the stepping rate (None or 0: as fast as the model goes).
        frame_format: "png", "jpeg" or "auto" (PNG up to 256 px sides).
        max_branches: saved branches kept (the oldest is dropped beyond it).
    """

    def __init__(
        self,
        env: Any,
        model_name: str | None = None,
        seed: int | None = None,
        max_steps_per_s: float | None = None,
        frame_format: str = "auto",
        max_branches: int = 8,
    ):
        self.env = env
        self.world = env.unwrapped
        self.model_name = model_name
        self.frame_size = tuple(int(s) for s in self.world.frame_size)
        self.vocabulary: ActionVocabulary = getattr(self.world, "vocabulary", YUME)
        self._flatten = bool(getattr(self.world, "flatten_actions", False))  # Discrete(size) over combinations
        self.frames_per_step = int(getattr(self.world, "frames_per_step", 1))
        self.render_fps = float(self.world.metadata.get("render_fps", 8))
        self.fmt = choose_format(frame_format, self.frame_size)
        self.min_interval = 1.0 / max_steps_per_s if max_steps_per_s else 0.0
        self.max_branches = int(max_branches)
        self.hub = Hub()
        self.controls = Controls(self.vocabulary.components)
        self._commands: queue.Queue[tuple[Callable[[], Any], Future]] = queue.Queue()
        self._lock = threading.Lock()  # guards the fields below, read by request threads
        self._stop = threading.Event()
        self._watching = False
        self._paused = False
        self._ended = ""  # "terminated" / "truncated" once the episode is over
        self._error = ""
        self._branches: list[Branch] = []
        self._next_branch = 1
        self._rate = RateMeter()
        self._status: dict = {}
        self._last_frames: list[str] = []
        self.recording: Recording | None = None
        self._thread = threading.Thread(target=self._run, name="yume-play-env", daemon=True)
        self._reset(seed, None)

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "PlaySession":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self.hub.close()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        while True:  # requests that came too late get an answer instead of waiting
            try:
                _, future = self._commands.get_nowait()
            except queue.Empty:
                break
            future.set_exception(SessionUnavailable(CLOSED_MESSAGE))

    # ---- requests from the page (any thread) -------------------------------------------------
    def hold(self, action: tuple[int, ...]) -> None:
        """Holds `action`, one integer per component of the world's vocabulary (checked by `validate`)."""
        self.controls.hold(action)

    def action_text(self, action) -> str:
        """How the page shows an action: Yume's "W+A →", else the vocabulary's names or numbers."""
        return A.action_to_str(action) if self.vocabulary.is_yume else self.vocabulary.label(action)

    def set_watching(self, watching: bool) -> None:
        """The world runs only while its page is connected; without one it waits (and keys are let go)."""
        with self._lock:
            self._watching = bool(watching)
        if not watching:
            self.controls.release()
        self._wake()

    def set_paused(self, paused: bool) -> None:
        """Runs between two chunks: once it returns, no step is in flight and the status is final."""
        self._call(lambda: self._set_paused(paused))

    def new_player(self) -> None:
        """A new tab took the world: it runs (a pause left by an earlier tab is lifted), no key held.
        An ended episode stays ended: the page says so until its player resets."""
        self.controls.release()
        self._call(lambda: self._set_paused(False))

    def set_event(self, text: str) -> None:
        """Queues the event; it is used from the next chunk on."""
        self._call(lambda: self._set_event(text))

    def reset(self, seed: int | None = None, image_url: str | None = None) -> None:
        self._call(lambda: self._reset(seed, image_url))

    def save_branch(self) -> dict:
        return self._call(self._save_branch)

    def restore_branch(self, branch_id: int) -> None:
        self._call(lambda: self._restore_branch(branch_id))

    def current(self) -> dict:
        """The latest status with the newest frame(s), for a page that just connected."""
        with self._lock:
            return {**self._status_locked(), "frames": list(self._last_frames[-1:])}

    def action_log(self) -> dict:
        with self._lock:
            return self.recording.action_log()

    def start_image(self) -> bytes | None:
        """The current branch's start picture (PNG), or None when it started from a start view."""
        with self._lock:
            return self.recording.image_png

    def recording_copy(self) -> Recording:
        with self._lock:
            return self.recording.copy()

    # ---- the env thread ----------------------------------------------------------------------
    def _call(self, fn: Callable[[], Any]) -> Any:
        if self._stop.is_set():
            raise SessionUnavailable(CLOSED_MESSAGE)
        if not self._thread.is_alive():  # before start(): nothing else touches the env yet
            return fn()
        future: Future = Future()
        self._commands.put((fn, future))
        try:
            return future.result(timeout=COMMAND_TIMEOUT_S)
        except FutureTimeout:
            if future.done():  # the command itself raised TimeoutError
                raise
            raise SessionUnavailable(
                f"the world did not finish the request within {COMMAND_TIMEOUT_S:g} s; try again"
            ) from None

    def _wake(self) -> None:
        self._commands.put((lambda: None, Future()))

    def _run(self) -> None:
        next_step = 0.0
        while not self._stop.is_set():
            wait = 0.25
            if self._may_step():
                wait = next_step - time.perf_counter()
                if wait <= 0:
                    started = time.perf_counter()
                    self._step()
                    next_step = started + self.min_interval
                    wait = 0.0
            self._run_commands(wait)

    def _run_commands(self, wait: float) -> None:
        """Runs queued commands; blocks up to `wait` seconds for the first one."""
        try:
            item = self._commands.get(timeout=wait) if wait > 0 else self._commands.get_nowait()
        except queue.Empty:
            return
        while True:
            fn, future = item
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the request thread, which answers 400/500
                future.set_exception(exc)
            try:
                item = self._commands.get_nowait()
            except queue.Empty:
                return

    def _may_step(self) -> bool:
        with self._lock:
            return self._watching and not self._paused and not self._ended and not self._error

    def _step(self) -> None:
        action = self.controls.take()
        try:
            _, reward, terminated, truncated, info = self.env.step(self._env_action(action))
        except Exception as exc:  # keep serving: show the error, stop stepping until a reset
            with self._lock:
                self._error = f"the world failed to step: {type(exc).__name__}: {exc}"
            self._publish([])
            return
        encoded = [encode_frame(f, self.fmt) for f in info["frames"]]
        now = time.perf_counter()
        with self._lock:
            self.recording.add(action, encoded)
            self._rate.tick(now)
            self._status.update(
                step=int(info["step"]),
                event=str(info["event"]),
                action=list(action),
                action_text=self.action_text(action),
                reward=float(reward),
                total_reward=self._status.get("total_reward", 0.0) + float(reward),
                latency_s=float(info.get("latency_s", 0.0)),
                memory=dict(info.get("memory", {})),
                pending_event=None,
            )
            if terminated or truncated:
                self._ended = "terminated" if terminated else "truncated"
        self._publish([to_data_url(b, self.fmt) for b in encoded], branches=False)

    def _env_action(self, action: tuple[int, ...]):
        """The env's form of a held action: int64 (components,), or the flat index when flattened."""
        arr = np.array(action, dtype=np.int64)
        return int(self.vocabulary.flat(arr[None])[0]) if self._flatten else arr

    def _publish(self, frames: list[str], branches: bool = True) -> None:
        """Sends the status (and `frames`) to the page; the branch list only when it may have changed,
        so per-chunk updates do not carry the thumbnails."""
        with self._lock:
            if frames:
                self._last_frames = frames
            update = {**self._status_locked(branches), "frames": frames}
        self.hub.publish(update)

    def _status_locked(self, branches: bool = True) -> dict:
        status = {
            **self._status,
            "pending_event": self._status.get("pending_event"),  # set, not yet used by a chunk
            "steps_per_s": round(self._rate.rate(time.perf_counter()), 2),
            "paused": self._paused,
            "watching": self._watching,
            "ended": self._ended,
            "error": self._error,
            "recorded_steps": self.recording.num_steps,
            "seed": self.recording.seed,
            "start_image": self.recording.image_png is not None,
        }
        if branches:
            status["branches"] = [b.describe() for b in self._branches]
        return status

    # ---- commands (run on the env thread) ----------------------------------------------------
    def _reset(self, seed: int | None, image_url: str | None) -> None:
        options: dict = {}
        image_png = None
        if image_url is not None:
            options["image"] = fit_image(from_data_url(image_url), self.frame_size)
            # keep the picture the world actually started from (lossless), so the log replays exactly
            image_png = encode_frame(options["image"], "png")
        seed = secrets.randbelow(2**31) if seed is None else int(seed)
        _, info = self.env.reset(seed=seed, options=options or None)
        first = encode_frame(info["frames"][-1], self.fmt)
        self.controls.release()
        with self._lock:
            self.recording = Recording(seed, self.model_name, first, image_png, self.vocabulary)
            self._ended, self._error = "", ""
            self._status = self._fresh_status(info)
        self._publish([to_data_url(first, self.fmt)])

    def _fresh_status(self, info: dict) -> dict:
        return {
            "step": int(info.get("step", 0)),
            "event": str(info.get("event", "")),
            "action": list(self.controls.rest),
            "action_text": self.action_text(self.controls.rest),
            "reward": 0.0,
            "total_reward": 0.0,
            "latency_s": float(info.get("latency_s", 0.0)),
            "memory": dict(info.get("memory", {})),
            "frame_size": list(self.frame_size),
            "frames_per_step": self.frames_per_step,
        }

    def _set_paused(self, paused: bool) -> None:
        with self._lock:
            self._paused = bool(paused)
        self._publish([])

    def _set_event(self, text: str) -> None:
        self.world.set_event(text)
        with self._lock:
            self.recording.set_event(text)
            self._status["pending_event"] = text
        self._publish([])

    def _save_branch(self) -> dict:
        snapshot = self.world.get_state()
        with self._lock:
            branch = Branch(
                id=self._next_branch,
                step=int(self._status.get("step", 0)),
                event=str(getattr(snapshot, "event", self._status.get("event", ""))),
                snapshot=snapshot,
                recording=self.recording.copy(),
                thumbnail=self._last_frames[-1] if self._last_frames else "",
            )
            self._next_branch += 1
            self._branches.append(branch)
            del self._branches[: -self.max_branches]
        self._publish([])
        return branch.describe()

    def _restore_branch(self, branch_id: int) -> None:
        with self._lock:
            branch = next((b for b in self._branches if b.id == branch_id), None)
        if branch is None:
            raise ValueError(f"no saved branch with id {branch_id}; saved: {[b.id for b in self._branches]}")
        _, info = self.env.reset(options={"state": branch.snapshot})
        self.controls.release()
        with self._lock:
            self.recording = branch.recording.copy()
            self._ended, self._error = "", ""
            self._status = self._fresh_status(info)
        self._publish([to_data_url(encode_frame(info["frames"][-1], self.fmt), self.fmt)])
