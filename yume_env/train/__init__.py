"""Training: the shared loop (`trainer`, `distributed`, `checkpointing`, `ema`, `curves`), batches
from the simulator and Sekai folders (`batches`), the stages (`stages/`: vae, pretrain,
self_forcing, task_head = the `reward` stage), the default-world recipe (`recipes/`) and the
evaluation (`eval/`). Never imports gymnasium or `yume_env.env` (GPU machines lack them).
See docs/training.md.
"""
