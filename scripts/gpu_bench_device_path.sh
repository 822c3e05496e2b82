#!/usr/bin/env bash
# One call on a lent GPU machine: the batched world's speed on the numpy path and on the tensor path
# (observations as uint8 on the GPU, profiled), then a minute of PPO that keeps them there:
#   bash scripts/gpu_bench_device_path.sh [MODEL] [PPO_MINUTES]
# Gymnasium is not on that machine: carry its wheels in .whl/ (docs: the device README), they are
# installed first. Writes $OUT/bench_numpy.{json,md}, $OUT/bench_tensors.{json,md}, $OUT/ppo/.
set -euo pipefail
model=${1:-}; ppo_minutes=${2:-1}
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
args=(--device cuda --num-envs 1,256,1024 --steps 30 --warmup 5)
[ -n "$model" ] && args+=(--model "$model")
python -m yume_env bench "${args[@]}" --json "$OUT/bench_numpy.json" 2>&1 | grep -v "it/s\]$"
python -m yume_env bench "${args[@]}" --tensors --profile 5 --json "$OUT/bench_tensors.json" 2>&1 | grep -v "it/s\]$"
ppo=(--device cuda --num-envs 1024 --minutes "$ppo_minutes" --out "$OUT/ppo")
[ -n "$model" ] && ppo+=(--model "$model")
python examples/ppo_on_device.py "${ppo[@]}" 2>&1 | grep -v "it/s\]$" | tail -20
