# Sourced by the *_gpu_job.sh scripts, on the GPU machine, from the repo root: the packages that
# machine lacks (gymnasium and friends) from the carried .whl/ folder, the environment every
# device call uses, and N = the number of GPUs. Writes $OUT/gpus.txt.
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 9
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi -L > $OUT/gpus.txt
N=$(nvidia-smi -L | wc -l)
