#!/usr/bin/env bash
# Writes the model family make bench-family measures, with the real training
# script of ../shared/train (plain PyTorch: Debian's python3-torch and
# libopenblas0-pthread): a pretraining run (fp32, checkpoints every 100 steps
# to 600), then four fine-tunes of its checkpoint 600, checkpoints every 50
# steps to 300: fp32; pure bf16; fp32 master weights saved as bf16; two
# frozen blocks, weights saved as pytorch_model.bin.
#
#	scripts/train-family.sh [OUT]   (default /work/data/family)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-/work/data/family}
shared=${SHARED:-$here/../shared}
fix=$shared/fixtures/gpt2
train=$shared/train/train.py
py=${PYTHON:-python3}
mkdir -p "$out"
cd "$out"
[ -d pre/checkpoint-600 ] || $py "$train" pre "$fix" --steps 600 --save-every 100 >pre.log 2>&1
common=(--init pre/checkpoint-600 --lr 2e-5 --steps 300 --save-every 50)
[ -d ft32/checkpoint-300 ] || $py "$train" ft32 "$fix" "${common[@]}" >ft32.log 2>&1
[ -d ftbf16/checkpoint-300 ] || $py "$train" ftbf16 "$fix" "${common[@]}" --dtype bf16 >ftbf16.log 2>&1
[ -d ftmix/checkpoint-300 ] || $py "$train" ftmix "$fix" "${common[@]}" --save-dtype bf16 >ftmix.log 2>&1
[ -d frozen/checkpoint-300 ] || $py "$train" frozen "$fix" "${common[@]}" --freeze 2 --weights-format bin >frozen.log 2>&1
echo done >DONE
