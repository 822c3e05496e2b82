"""Packs a `yume-env train world` run folder small enough to carry to the next machine.

    python scripts/pack_run.py RUN

Every stage checkpoint in RUN/ckpt/ is rewritten by `pack_checkpoint` (model weights in bfloat16,
EMA in float32, no optimizer state); the run continues from it with `--out RUN`.
"""

import sys
from pathlib import Path

from yume_env.train.checkpointing import pack_checkpoint

if __name__ == "__main__":
    run = Path(sys.argv[1])
    for stage in sorted((run / "ckpt").glob("*")):
        packed = pack_checkpoint(stage)
        print(f"{stage.name}: {packed}" if packed else f"{stage.name}: no checkpoint")
