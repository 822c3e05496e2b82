#!/usr/bin/env bash
# A world of any Gymnasium env, end to end; every step continues where a killed run stopped:
#   bash scripts/own_world.sh ENV_ID NAME TRAIN_MINUTES PPO_MINUTES MAX_EPISODE_STEPS [train world options...]
# e.g. bash scripts/own_world.sh vizdoom.gymnasium_wrapper:VizdoomBasic-v1 vizdoom-basic 80 15 300
# Records 150 random episodes at 64x64 (data/NAME), trains a world on them with the tiny preset
# (runs/NAME; a killed run continues, a finished stage stays finished), measures it against the
# held-out episodes, trains PPO only inside it and tests that PPO in the real env against a random
# policy. What the docs show goes to docs/worlds/NAME/: eval.md, eval.json, eval_frames.png,
# dream_to_real.json. WORK (default runs/own-worlds) holds the data, the run and the agent; DEVICE
# (default cpu) runs the world. A train option --call-minutes M stops the training after M minutes
# (a GPU call): the steps after it run once the world is trained (scripts/gpu_own_world.sh).
set -euo pipefail
env_id=${1:?env id}; name=${2:?name}; minutes=${3:?train minutes}; ppo_minutes=${4:?ppo minutes}
max_steps=${5:?max episode steps}; shift 5
work=${WORK:-runs/own-worlds}; device=${DEVICE:-cpu}
yume() { python -m yume_env "$@"; }
docs=docs/worlds/$name
mkdir -p "$work" "$docs"
yume data record --env "$env_id" --episodes 150 --size 64 --out "$work/data/$name" --no-progress
yume train world --data "$work/data/$name" --out "$work/runs/$name" --preset tiny --minutes "$minutes" \
    --device "$device" "$@"
if [ ! -f "$work/runs/$name/model/config.json" ]; then
  echo "the world of $name is not trained yet: run this again to continue its training"; exit 0
fi
yume eval --model "$work/runs/$name" --data "$work/data/$name" --horizons 1 16 64 --episodes 16 --device "$device" \
    --report "$docs/eval.md" --json "$docs/eval.json" --no-progress
python examples/dream_to_real.py --world "$work/runs/$name" --env "$env_id" --minutes "$ppo_minutes" \
    --max-episode-steps "$max_steps" --out "$work/ppo/$name" --device "$device"
cp "$work/ppo/$name/results.json" "$docs/dream_to_real.json"
