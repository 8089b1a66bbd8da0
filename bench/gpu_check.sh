#!/usr/bin/env bash
# GPU check of the production path (≤ 8 minutes on one H100; needs CUDA, cannot run on CPU):
# a tiny GPT-NeoX and a Pythia-160M-shaped random GPT-NeoX memorize planted rows, then go through
# BalancedSubnet under DeepSpeed ZeRO stages 2 and 3 plus evaluation; each run prints one JSON line
# with seconds, peak GPU memory (GB) and memorization / perplexity before → after.
#   bash bench/gpu_check.sh [workdir]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORK=${1:-/tmp/memlab_gpu_check}
export HF_HUB_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
export MASTER_ADDR=127.0.0.1 MASTER_PORT=${MASTER_PORT:-29517}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
SECONDS=0
step() { echo "== $* (t=${SECONDS}s)"; timeout 150 "$@" || echo "FAILED ($?): $*"; }
step $PY bench/gpu_check.py plant --preset tiny_neox --out "$WORK/tiny" --steps 300 --vocab 512
step $PY bench/gpu_check.py plant --preset pythia_160m_random --out "$WORK/p160m" --steps 150
for model in tiny p160m; do
  for trainer in deepspeed_stage_2 deepspeed_stage_3; do
    step $PY bench/gpu_check.py unlearn --work "$WORK/$model" --trainer "$trainer"
  done
done
echo "== done in ${SECONDS}s"
