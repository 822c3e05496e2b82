#!/bin/bash
# Device call: a folder stage of `recipes/one_step.py` (`yume-env train distill` or `unroll`), data
# parallel over every GPU of the machine.
# usage (repo root, on the GPU machine):
#   bash scripts/one_step_gpu_job.sh STAGE CARRY CALL_MINUTES --teacher|--model DIR [ARGS...]
# Reads CARRY/text_cache.safetensors and, when present, CARRY/state/STAGE.tar.part* (the previous
# call's $OUT/STAGE.tar.part*); writes $OUT/STAGE.tar.part* (the run folder) and the log.
# Pass the same ARGS (--budget-minutes ...) on every call.
set -u
STAGE=$1; CARRY=$2; CALL_MIN=$3; shift 3
source scripts/gpu_job_env.sh  # sets N
mkdir -p /tmp/run
if ls $CARRY/state/$STAGE.tar.part* >/dev/null 2>&1; then cat $CARRY/state/$STAGE.tar.part* | tar -C /tmp/run -xf -; fi
timeout $(python3 -c "print(int($CALL_MIN*60+25))") torchrun --standalone --nproc_per_node $N \
  -m yume_env train $STAGE --out /tmp/run --text-cache $CARRY/text_cache.safetensors \
  --call-minutes $CALL_MIN "$@" > $OUT/${STAGE}_log.txt 2>&1
echo "$STAGE rc=$?" >> $OUT/${STAGE}_log.txt
tar -C /tmp/run -cf - . | split -b 15M - $OUT/$STAGE.tar.part
ls -la $OUT
