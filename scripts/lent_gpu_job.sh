#!/bin/bash
# Device call: default-world recipe (DDP on GPUs 1..N-1) + eval probes (GPU 0), in parallel.
# usage (repo root, on the GPU machine):
#   bash scripts/lent_gpu_job.sh CALL_MINUTES [probes] [RECIPE ARGS...]
# Reads dw_carry/text_cache.safetensors and, when present, dw_carry/state/*.tar.part* (the previous
# call's $OUT/run.tar.part*, or sweep_gpu_job.sh's best.tar.part*); writes $OUT/run.tar.part* and the
# logs. With "probes", GPU 0 trains the eval probes meanwhile and the recipe runs on the other GPUs.
# RECIPE ARGS (--budget-minutes, --set ...) replace the defaults below; pass the same on every call.
set -u
CALL_MIN=$1; shift
PROBES=""; if [ "${1:-}" = probes ]; then PROBES=1; shift; fi
ARGS=("$@")
if [ ${#ARGS[@]} -eq 0 ]; then
  ARGS=(--budget-minutes 25)  # the default recipe (yume_env/train/recipes/default_world.py)
fi
source scripts/gpu_job_env.sh  # sets N
mkdir -p /tmp/run
if ls dw_carry/state/*.tar.part* >/dev/null 2>&1; then cat dw_carry/state/*.tar.part* | tar -C /tmp/run -xf -; fi
if [ -n "$PROBES" ]; then
  (CUDA_VISIBLE_DEVICES=0 timeout 480 python3 -m yume_env eval train-probes --device cuda --episodes 600 --steps 48 \
     --iterations 5000 --sim-batch 128 --out /tmp/probes > $OUT/probes_log.txt 2>&1;
   tar -C /tmp -cf $OUT/probes.tar probes) &
  GPUS=$(seq -s, 1 $((N-1))); NP=$((N-1))
else
  GPUS=$(seq -s, 0 $((N-1))); NP=$N
fi
CUDA_VISIBLE_DEVICES=$GPUS timeout $(python3 -c "print(int($CALL_MIN*60+25))") torchrun --standalone --nproc_per_node $NP \
  -m yume_env.train.recipes.default_world --out /tmp/run --text-cache dw_carry/text_cache.safetensors \
  --call-minutes $CALL_MIN "${ARGS[@]}" > $OUT/recipe_log.txt 2>&1
echo "recipe rc=$?" >> $OUT/recipe_log.txt
wait
rm -rf /tmp/run/ckpt_tmp
tar -C /tmp/run -cf - . | split -b 15M - $OUT/run.tar.part
ls -la $OUT
