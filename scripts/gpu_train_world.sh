#!/usr/bin/env bash
# One call of the default world's training on a lent GPU machine, resumable across calls and sessions:
#   bash scripts/gpu_train_world.sh CALL_MINUTES [train world options...]
# Unpacks the run committed in training/default-world/run.tgz.part-* (if any), trains for
# CALL_MINUTES, packs the run (scripts/pack_run.py: EMA weights only) and writes it to
# $OUT/run.tgz.part-* (15 MB parts) with the log and a look at its rollouts (scripts/peek_run.py). Copy those parts back into training/default-world/
# and commit them: the next call (or session) continues from there.
set -euo pipefail
minutes=${1:?call minutes}; shift
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
run=/tmp/world_run
mkdir -p "$run"
if compgen -G "training/default-world/run.tgz.part-*" > /dev/null; then
  cat training/default-world/run.tgz.part-* | tar xzf - -C "$run"
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python -m yume_env train world --out "$run" --text-cache yume_env/assets/default_world \
    --call-minutes "$minutes" --device cuda "$@" 2>&1 | tee "$OUT/train.log" | grep -v "it/s\]$" || true
python scripts/pack_run.py "$run"
python scripts/peek_run.py "$run" "$OUT" --device cuda || true
tar czf - -C "$run" . | split -b 15M - "$OUT/run.tgz.part-"
ls -la "$OUT"
