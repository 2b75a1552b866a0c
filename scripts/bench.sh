#!/usr/bin/env bash
# make bench: ckpt against rclone, restic and cp on one MinIO, one generated
# 1 GiB bf16 folder, medians of 3 runs, printed as ratios and JSON
# (.bench/results.json); then the delta case (the next checkpoint of a bf16
# and an fp32 folder pushed with --deltas and pulled back, against rclone)
# and the codec benchmarks. Not part of make test.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v rclone >/dev/null || need+=(rclone)
command -v restic >/dev/null || need+=(restic)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from Debian's packages"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "${need[@]}"
  else sudo apt-get update -qq && sudo apt-get install -y -qq "${need[@]}"; fi
fi
GO=${GO:-go}
CKPT=${CKPT:-bin/ckpt}
$GO run ./internal/benchrun -ckpt "$CKPT" -runs "${RUNS:-3}" -json .bench/results.json
echo
echo "Go benchmarks (codec vs plain zstd, gc scale):"
$GO test -run '^$' -bench 'BenchmarkEncode|BenchmarkDecode|BenchmarkZstd' -benchtime 20x ./store/planes/ | grep -E '^Benchmark|ok'
echo
echo "delta decode on one core, MB/s of content (planes: BenchmarkDecodeDelta above, target cpuMB/s >= 1000 for xor; object: with its SHA-256 check):"
$GO test -run '^$' -bench 'BenchmarkDecodeDelta' -benchtime 20x ./store/object/ | grep -E '^Benchmark|ok'
$GO test -run '^$' -bench 'BenchmarkRetentionAndGCScale' -benchtime 1x ./store/ | grep -E '^Benchmark|ok'
echo
echo "pull --link of a model pulled once before (plainly, or with --link) against cp -r in the same run (target link/cp <= 0.05):"
$GO test -run '^$' -bench 'BenchmarkPullLinkVsCopy' -benchtime 5x ./store/ | grep -E '^Benchmark|ok'
