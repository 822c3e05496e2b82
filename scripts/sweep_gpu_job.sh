#!/bin/bash
# Device call: a model sweep. Each variant trains the recipe's pretrain stage on its own GPU (round
# robin: more variants than GPUs share them, equally) for the same wall-clock time, from one shared seed run folder (finished VAE and task head); then
# `recipes.compare` measures every variant's latest checkpoint, and the best one (rollout PSNR +
# teacher-forced PSNR) travels back in $OUT/best.tar.part* to continue with lent_gpu_job.sh.
# usage (repo root, on the GPU machine):
#   bash scripts/sweep_gpu_job.sh CALL_MINUTES "name1|--set a=1 --set b=2" "name2|..." ...
# Reads dw_carry/text_cache.safetensors and dw_carry/seed/ (run.json + weights/).
# SWEEP_DITS=1: also send every variant's measured DiT (float16) and config back in
# $OUT/dits.tar.part*, for `yume-env eval` on a CPU. SWEEP_BEST=0: do not send the best run folder
# (large models' float32 run folders outgrow what a call sends back).
set -u
CALL_MIN=$1; shift
source scripts/gpu_job_env.sh
gpu=0; runs=()
for spec in "$@"; do
  name=${spec%%|*}; sets=${spec#*|}
  mkdir -p /tmp/sweep/$name && cp -r dw_carry/seed/. /tmp/sweep/$name/
  CUDA_VISIBLE_DEVICES=$((gpu % N)) timeout $(python3 -c "print(int($CALL_MIN*60+25))") python3 -m yume_env.train.recipes.default_world \
    --out /tmp/sweep/$name --text-cache dw_carry/text_cache.safetensors --budget-minutes 40 --call-minutes $CALL_MIN \
    $sets > $OUT/log_$name.txt 2>&1 &
  runs+=(/tmp/sweep/$name); gpu=$((gpu+1))
done
wait
dits=(); [ "${SWEEP_DITS:-0}" = 1 ] && dits=(--save-dits /tmp/sweep_dits)
python3 -m yume_env.train.recipes.compare "${runs[@]}" --text-cache dw_carry/text_cache.safetensors \
  --json $OUT/compare.json --markdown $OUT/compare.md "${dits[@]}" > $OUT/compare_log.txt 2>&1
[ -d /tmp/sweep_dits ] && tar -C /tmp/sweep_dits -cf - . | split -b 15M - $OUT/dits.tar.part
[ "${SWEEP_BEST:-1}" = 0 ] && { ls -la $OUT; exit 0; }
best=$(python3 -c "
import json; rows = json.load(open('$OUT/compare.json'))
print(max(rows, key=lambda r: r['rollout_psnr_mean_db'] + r['teacher_forced_psnr_db'])['run'])")
echo "best: $best" >> $OUT/compare_log.txt
rm -rf $best/ckpt_tmp
tar -C $best -cf - . | split -b 15M - $OUT/best.tar.part
ls -la $OUT
