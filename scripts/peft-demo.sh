#!/usr/bin/env bash
# make demo-hf: the Hugging Face bridge end to end, offline, on throw-away
# registries: record a base model from a Hugging Face cache, push a LoRA run
# that names it, pull the best checkpoint by accuracy into a Hugging Face
# cache, copy it to a second registry.
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT=${CKPT:-bin/ckpt}
GO=${GO:-go}
work=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-hf-demo.XXXXXX")
if [ -z "${KEEP:-}" ]; then trap 'rm -rf "$work"' EXIT; fi
export CKPT_REPO="$work/team" XDG_CACHE_HOME="$work/cache"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

# A base model as `hf download demo-org/tiny-gpt2` leaves it: blobs named by
# their SHA-256, a snapshot of relative links, refs/main naming the commit.
$GO run ./internal/synth/cmd/ckpt-synth -out "$work/runs" -preset tiny -tokenizer testdata/gpt2 >/dev/null
hub="$work/hf-hub"
repo="$hub/models--demo-org--tiny-gpt2"
commit=$(printf 'demo-org/tiny-gpt2' | sha1sum | cut -c1-40)
mkdir -p "$repo/blobs" "$repo/refs" "$repo/snapshots/$commit"
for f in "$work/runs/base"/*; do
	sum=$(sha256sum "$f" | cut -c1-64)
	cp "$f" "$repo/blobs/$sum"
	ln -s "../../blobs/$sum" "$repo/snapshots/$commit/$(basename "$f")"
done
printf '%s' "$commit" >"$repo/refs/main"

# safetensors FILE NAME:ROWSxCOLS...: F32 tensors of random values.
safetensors() {
	local out=$1 header="{" off=0 sep="" spec name rows cols n
	shift
	for spec in "$@"; do
		name=${spec%%:*} rows=${spec#*:} rows=${rows%x*} cols=${spec##*x}
		n=$((rows * cols * 4))
		header+="$sep\"$name\":{\"dtype\":\"F32\",\"shape\":[$rows,$cols],\"data_offsets\":[$off,$((off + n))]}"
		off=$((off + n)) sep=","
	done
	header+="}"
	while [ $(((${#header} + 8) % 8)) -ne 0 ]; do header+=" "; done
	{
		printf "$(printf '\\x%02x' $((${#header} & 255)) $(((${#header} >> 8) & 255)) 0 0 0 0 0 0)"
		printf '%s' "$header"
		head -c "$off" /dev/urandom
	} >"$out"
}

# A LoRA run, Trainer style, selecting on eval_accuracy (greater is better):
# the best checkpoint by accuracy (200) is not the one of lowest loss (300).
lora="$work/lora-run"
for step in 100 200 300; do
	d="$lora/checkpoint-$step"
	mkdir -p "$d"
	sed 's#"meta-llama/Llama-3.2-1B"#"demo-org/tiny-gpt2"#; s#"q_proj"#"c_attn"#; s#"v_proj"#"c_proj"#' testdata/peft/adapter_config.json >"$d/adapter_config.json"
	safetensors "$d/adapter_model.safetensors" \
		base_model.model.transformer.h.0.attn.c_attn.lora_A.weight:16x64 \
		base_model.model.transformer.h.0.attn.c_attn.lora_B.weight:192x16
	head -c 65536 /dev/urandom >"$d/optimizer.pt"
	case $step in 100) acc=0.71 loss=1.90 ;; 200) acc=0.83 loss=1.62 ;; 300) acc=0.79 loss=1.55 ;; esac
	cat >"$d/trainer_state.json" <<JSON
{
  "best_metric": 0.83,
  "best_global_step": 200,
  "best_model_checkpoint": "lora-run/checkpoint-200",
  "epoch": $((step / 100)).0,
  "global_step": $step,
  "log_history": [
    {"epoch": $((step / 100)).0, "eval_accuracy": $acc, "eval_loss": $loss, "step": $step}
  ]
}
JSON
done

step "record the base model straight from the Hugging Face cache (no network)"
run "$CKPT" init
run "$CKPT" import-hf demo-org/tiny-gpt2 tiny-gpt2 --cache-dir "$hub"

step "push a LoRA run: its adapter_config.json names the base, so no --base is needed"
for d in "$lora"/checkpoint-*; do run "$CKPT" push "$d" tiny-lora; done
run "$CKPT" ls tiny-lora --best-by eval_accuracy
run "$CKPT" show tiny-lora@best --best-by eval_accuracy

step "pull the best checkpoint by accuracy into a Hugging Face cache, and the adapter with its base into a folder"
run "$CKPT" pull tiny-lora@best --best-by eval_accuracy --hf-cache --hf-repo demo-org/tiny-lora --cache-dir "$work/hf-out"
find "$work/hf-out" -path '*/snapshots/*' -o -path '*/refs/*' | sed "s#$work/##" | sort
run "$CKPT" pull tiny-lora@best --best-by eval_accuracy "$work/pair" --with-base
(cd "$work/pair" && find . -type f | sort)

step "promote it to a second registry"
run "$CKPT" copy tiny-lora@best --best-by eval_accuracy --to "$work/prod"
run "$CKPT" --repo "$work/prod" ls
run "$CKPT" --repo "$work/prod" verify --all --read-data
