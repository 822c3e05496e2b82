#!/usr/bin/env bash
# One call of a world of any Gymnasium env on a lent GPU machine, resumable across calls and sessions:
#   bash scripts/gpu_own_world.sh ENV_ID NAME CALL_MINUTES TRAIN_MINUTES PPO_MINUTES MAX_STEPS [train world options...]
# e.g. bash scripts/gpu_own_world.sh ale_py:ALE/Breakout-v5 breakout 8 30 4 1000
# That machine lacks gymnasium, stable-baselines3 and the env's own package: carry their wheels in
# .whl/ (the device README says how). Each call records the same seeded 150 episodes again (about a
# minute), unpacks the run committed in training/worlds/NAME/run.tgz.part-*, trains for CALL_MINUTES
# of a TRAIN_MINUTES budget, packs the run (EMA weights) to $OUT/run.tgz.part-* (commit them there),
# and once the world is exported measures it and trains PPO in it as scripts/own_world.sh does,
# writing eval.md, eval.json, eval_frames.png and dream_to_real.json to $OUT.
set -euo pipefail
env_id=${1:?env id}; name=${2:?name}; call=${3:?call minutes}; minutes=${4:?train minutes}
ppo_minutes=${5:?ppo minutes}; max_steps=${6:?max episode steps}; shift 6
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
yume() { python -m yume_env "$@"; }
data=/tmp/own/data/$name run=/tmp/own/runs/$name parts=training/worlds/$name
mkdir -p "$run"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
yume data record --env "$env_id" --episodes 150 --size 64 --out "$data" --no-progress
if compgen -G "$parts/run.tgz.part-*" > /dev/null; then cat "$parts"/run.tgz.part-* | tar xzf - -C "$run"; fi
yume train world --data "$data" --out "$run" --preset tiny --minutes "$minutes" --call-minutes "$call" \
    --device cuda "$@" 2>&1 | tee "$OUT/train.log" | grep -v "it/s\]$" || true
python scripts/pack_run.py "$run"
tar czf - -C "$run" . | split -b 15M - "$OUT/run.tgz.part-"
if [ -f "$run/model/config.json" ]; then  # exported: the world is done
  yume eval --model "$run" --data "$data" --horizons 1 16 64 --episodes 16 --device cuda \
      --report "$OUT/eval.md" --json "$OUT/eval.json" --no-progress
  python examples/dream_to_real.py --world "$run" --env "$env_id" --minutes "$ppo_minutes" \
      --max-episode-steps "$max_steps" --out /tmp/own/ppo/$name --device cuda
  cp /tmp/own/ppo/$name/results.json "$OUT/dream_to_real.json"
fi
ls -la "$OUT"
