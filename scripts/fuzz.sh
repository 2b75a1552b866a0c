#!/usr/bin/env bash
# make fuzz: run every fuzz target of the module for FUZZTIME (default 20s).
# FUZZ=REGEXP runs only the targets whose name matches.
#
# Every decoder of registry or folder input asserts, besides its own
# invariants, a bound on what it allocates (runtime.MemStats.TotalAlloc):
#   store/object    FuzzDecodeObject (every codec, and the sized reader of
#                   chunks)
#   store/manifest  FuzzDecodeManifest
#   store/refs      FuzzParseRef, FuzzVerifyRef
#   store           FuzzReadRefs (format file, version ref, tag, retention
#                   policy, through the registry), FuzzIndexFile
#   store/planes    FuzzDecode
#   layout          FuzzParseSafetensorsHeader, FuzzParseTrainerState,
#                   FuzzParseShardIndex
# The store targets share a test binary with the MinIO tests, which skip
# without MinIO (CKPT_MINIO_BIN or bin/minio, make minio).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-20s}
FUZZ=${FUZZ:-.}
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
  pkg="./$(dirname "${file#./}")"
  for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
    if ! grep -Eq -- "$FUZZ" <<<"$target"; then
      continue
    fi
    echo "== $pkg $target ($FUZZTIME)"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" "$pkg"
  done
done
