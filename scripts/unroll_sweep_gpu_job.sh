#!/bin/bash
# Device call: unroll variants of one world, side by side on the machine's GPUs (round robin: more
# variants than GPUs share them), for the same wall-clock time, each then exported where it stands
# (`--export-now`); each one's exported DiT, config, run state, loss curve and log travel back in
# $OUT/NAME.tar (one file per variant: a call sends back at most 8) for `yume-env eval` on a CPU.
# usage (repo root, on the GPU machine):
#   bash scripts/unroll_sweep_gpu_job.sh CARRY MINUTES "name1|--model DIR ARGS" "name2|..." ...
# Reads CARRY/text_cache.safetensors. An ARG `CARRY/probes_a` that is missing is trained first
# (`yume-env eval train-probes --preset gpu --seed 0`, PROBES_MINUTES, default 3.3) and sent back
# in $OUT/probes_a.tar, to carry next time.
# A device call sends back at most 8 files from $OUT, in name order: run other jobs in the same call
# with few outputs (one tar), or the variants' tars can be the ones left behind.
set -u
CARRY=$1; MIN=$2; shift 2
source scripts/gpu_job_env.sh  # sets N
if [[ "$*" == *"$CARRY/probes_a"* && ! -d $CARRY/probes_a ]]; then
  python3 -m yume_env eval train-probes --preset gpu --device cuda --seed 0 --out $CARRY/probes_a \
    --budget-minutes ${PROBES_MINUTES:-3.3} --half --no-progress > $OUT/probes_log.txt 2>&1
  tar -C $CARRY -cf $OUT/probes_a.tar probes_a
fi
gpu=0; mkdir -p /tmp/unroll
for spec in "$@"; do
  name=${spec%%|*}; args=${spec#*|}
  CUDA_VISIBLE_DEVICES=$((gpu % N)) timeout $(python3 -c "print(int($MIN*60+40))") python3 -m yume_env train unroll \
    --out /tmp/unroll/$name --text-cache $CARRY/text_cache.safetensors --device cuda \
    --budget-minutes 600 --call-minutes $MIN $args > /tmp/unroll/log_$name.txt 2>&1 &
  gpu=$((gpu+1))
done
wait
for spec in "$@"; do
  name=${spec%%|*}; args=${spec#*|}
  python3 -m yume_env train unroll --out /tmp/unroll/$name --text-cache $CARRY/text_cache.safetensors --device cuda \
    --budget-minutes 600 $args --export-now >> /tmp/unroll/log_$name.txt 2>&1 &
done
wait
for spec in "$@"; do
  name=${spec%%|*}
  cp /tmp/unroll/log_$name.txt /tmp/unroll/$name/log.txt
  tar -C /tmp/unroll/$name -cf $OUT/$name.tar log.txt model/config.json model/dit.safetensors unroll.json \
    $(cd /tmp/unroll/$name && ls *.png *.json 2>/dev/null | grep -v unroll.json)
done
ls -la $OUT
