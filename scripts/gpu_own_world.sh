#!/usr/bin/env bash
# One call of a world of any Gymnasium env on a lent GPU machine, resumable across calls and sessions:
#   bash scripts/gpu_own_world.sh ENV_ID NAME CALL_MINUTES TRAIN_MINUTES PPO_MINUTES MAX_STEPS [train world options...]
# e.g. bash scripts/gpu_own_world.sh ale_py:ALE/Breakout-v5 breakout 8 30 4 1000
# That machine lacks gymnasium, stable-baselines3 and the env's own package: carry their wheels in
# .whl/ (the device README says how). Unpacks the run committed in training/worlds/NAME/run.tgz.part-*,
# runs scripts/own_world.sh on the GPU for CALL_MINUTES of training (it records the same seeded
# episodes again, about a minute; once the world is trained it measures it and trains PPO in it),
# then packs the run (EMA weights) to $OUT/run.tgz.part-* (commit them there) beside the log and
# whatever own_world.sh wrote for docs/worlds/NAME/.
set -euo pipefail
env_id=${1:?env id}; name=${2:?name}; call=${3:?call minutes}; minutes=${4:?train minutes}
ppo_minutes=${5:?ppo minutes}; max_steps=${6:?max episode steps}; shift 6
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 WORK=/tmp/own DEVICE=cuda
run=$WORK/runs/$name parts=training/worlds/$name
mkdir -p "$run"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
if compgen -G "$parts/run.tgz.part-*" > /dev/null; then cat "$parts"/run.tgz.part-* | tar xzf - -C "$run"; fi
status=0
bash scripts/own_world.sh "$env_id" "$name" "$minutes" "$ppo_minutes" "$max_steps" --call-minutes "$call" "$@" \
    2>&1 | tee "$OUT/own_world.log" | grep -v "it/s\]$" || status=$?
python scripts/pack_run.py "$run"
tar czf - -C "$run" . | split -b 15M - "$OUT/run.tgz.part-"
cp -r "docs/worlds/$name/." "$OUT/" 2>/dev/null || true
ls -la "$OUT"
exit "$status"
