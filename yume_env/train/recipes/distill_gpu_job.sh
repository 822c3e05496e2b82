#!/bin/bash
# Device call: one-step distillation of a model folder (`yume-env train distill`), data parallel
# over every GPU of the machine.
# usage (repo root, on the GPU machine):
#   bash yume_env/train/recipes/distill_gpu_job.sh CARRY CALL_MINUTES --teacher DIR [DISTILL ARGS...]
# Reads CARRY/text_cache.safetensors and, when present, CARRY/state/distill.tar.part* (the previous
# call's $OUT/distill.tar.part*); writes $OUT/distill.tar.part* (the run folder) and the log.
# Pass the same DISTILL ARGS (--budget-minutes ...) on every call.
set -u
CARRY=$1; CALL_MIN=$2; shift 2
source yume_env/train/recipes/gpu_job_env.sh  # sets N
mkdir -p /tmp/run
if ls $CARRY/state/distill.tar.part* >/dev/null 2>&1; then cat $CARRY/state/distill.tar.part* | tar -C /tmp/run -xf -; fi
timeout $(python3 -c "print(int($CALL_MIN*60+25))") torchrun --standalone --nproc_per_node $N \
  -m yume_env train distill --out /tmp/run --text-cache $CARRY/text_cache.safetensors \
  --call-minutes $CALL_MIN "$@" > $OUT/distill_log.txt 2>&1
echo "distill rc=$?" >> $OUT/distill_log.txt
tar -C /tmp/run -cf - . | split -b 15M - $OUT/distill.tar.part
ls -la $OUT
