"""`yume-env play`: walk a learned world from a local web page.

The server (standard library only) runs the env in a background thread and streams every chunk's
frames to the page over Server-Sent Events; the page sends the held keys, the event text and the
buttons' requests. See docs/play.md.

    from yume_env.play import serve
    server = serve(model="path/to/world")   # binds 127.0.0.1:7860
    print(server.url); server.serve_forever()
"""

from __future__ import annotations

import os
from typing import Any

from yume_env.play.owner import Owner, WorldBusy
from yume_env.play.recording import Recording
from yume_env.play.server import PlayServer, check_host
from yume_env.play.session import PlaySession

__all__ = ["Owner", "PlayServer", "PlaySession", "Recording", "WorldBusy", "make_env", "serve"]


def make_env(model: Any = None, device: str = "cpu", dtype: Any = None, sample_steps: int | None = None):
    """`gym.make("YumeWorld-v0", ...)` with only the arguments that were given."""
    import gymnasium as gym

    import yume_env  # noqa: F401  (registers the envs)

    kwargs: dict[str, Any] = {"model": model, "device": device}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if sample_steps is not None:
        kwargs["sample_steps"] = sample_steps
    return gym.make("YumeWorld-v0", **kwargs)


def serve(
    model: Any = None,
    device: str = "cpu",
    host: str = "127.0.0.1",
    port: int = 7860,
    allow_remote: bool = False,
    seed: int | None = None,
    max_steps_per_s: float | None = None,
    frame_format: str = "auto",
    env: Any = None,
    dtype: Any = None,
    sample_steps: int | None = None,
) -> PlayServer:
    """Builds the env (unless `env` is given), its session and a bound server; call `serve_forever()`
    or `start_thread()` on the result. `max_steps_per_s=None` runs the world in real time (its
    `render_fps`), 0 as fast as it goes."""
    check_host(host, allow_remote)  # before loading a large model
    env = make_env(model, device, dtype, sample_steps) if env is None else env
    if max_steps_per_s is None:
        max_steps_per_s = float(env.unwrapped.metadata.get("render_fps", 8))
    model_name = str(model) if isinstance(model, (str, os.PathLike)) else None
    session = PlaySession(
        env, model_name=model_name, seed=seed, max_steps_per_s=max_steps_per_s, frame_format=frame_format
    )
    try:
        server = PlayServer(session, host=host, port=port, allow_remote=allow_remote)
    except BaseException:
        session.close()
        raise
    session.start()
    return server
