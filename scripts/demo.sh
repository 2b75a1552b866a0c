#!/usr/bin/env bash
# make demo: generate a small realistic training run, push it to a throw-away
# embedded registry, show what was deduplicated, pull a runnable model back.
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT=${CKPT:-bin/ckpt}
GO=${GO:-go}
work=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-demo.XXXXXX")
if [ -z "${KEEP:-}" ]; then trap 'rm -rf "$work"' EXIT; fi
export CKPT_REPO="$work/registry" XDG_CACHE_HOME="$work/cache"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "generate a base model and two fine-tunes of it (GPT-2 tokenizer, bf16 weights)"
$GO run ./internal/synth/cmd/ckpt-synth -out "$work/runs" -preset demo -tokenizer testdata/gpt2

step "create the embedded registry"
run "$CKPT" init

step "push the base model, then every checkpoint of both runs"
run "$CKPT" push "$work/runs/base" gpt2-demo@1 --tag base
for ck in "$work"/runs/run-a/checkpoint-*; do run "$CKPT" push "$ck" run-a --base gpt2-demo@1; done
for ck in "$work"/runs/run-b/checkpoint-*; do run "$CKPT" push "$ck" run-b --base gpt2-demo@1; done

step "push an unchanged checkpoint again: nothing is read or stored"
last=$(ls -d "$work"/runs/run-a/checkpoint-* | sort -t- -k2 -n | tail -1)
run "$CKPT" push "$last" run-a --base gpt2-demo@1

step "what is recorded, and what deduplication saved"
run "$CKPT" ls
run "$CKPT" du

step "compare two checkpoints from their manifests (no weights are downloaded)"
run "$CKPT" diff run-b@100 run-b@best

step "what best-plus-last-1 retention would keep (a plan: nothing is deleted)"
run "$CKPT" retention plan run-a --keep-last 1 --keep-best 1
run "$CKPT" gc --dry-run --grace 0

step "check every blob of every checkpoint"
run "$CKPT" verify --all --read-data

step "pull the best checkpoint of run-b (weights-only: config and tokenizer come from the base)"
run "$CKPT" pull run-b@best "$work/model"
run ls -l "$work/model"
if [ -n "${KEEP:-}" ]; then echo; echo "kept in $work"; fi
