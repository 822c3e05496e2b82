"""yume-env: an interactive video world model (Yume1.5 design) as a Gymnasium environment.

`import yume_env` registers `YumeWorld-v0` (the learned world) and `YumeSim-v0` (the procedural
ground-truth simulator) with Gymnasium when Gymnasium is installed. The model and training code
(`yume_env.model`, `yume_env.train`) import without Gymnasium, for GPU machines that lack it.
"""

__version__ = "0.1.0"


def _register_envs() -> None:
    try:
        from gymnasium.envs.registration import register, registry
    except ImportError:  # model/train-only installs
        return
    if "YumeWorld-v0" not in registry:
        register(
            id="YumeWorld-v0",
            entry_point="yume_env.env.world_env:YumeWorldEnv",
            vector_entry_point="yume_env.env.world_vector_env:YumeWorldVectorEnv",
        )
    if "YumeSim-v0" not in registry:
        register(
            id="YumeSim-v0",
            entry_point="yume_env.env.sim_env:YumeSimEnv",
            max_episode_steps=200,
        )


_register_envs()
