"""Training: the shared loop (`trainer`, `distributed`, `checkpointing`, `ema`, `curves`,
`seeding`), the stages (`stages/`: pretrain, task_head), the recipe that runs them from data to a
model folder (`recipes/world.py`, presets in `presets/`), and fine-tuning (`finetune`). Never
imports gymnasium or `yume_env.env` (GPU machines lack them). See docs/training.md.
"""
