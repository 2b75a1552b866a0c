# ckpt — the two set-up commands are `make demo` and `make test`.
GO            ?= go
BIN           := $(CURDIR)/bin
CKPT          := $(BIN)/ckpt
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
MINIO         := $(BIN)/minio
TEST_TIMEOUT  ?= 30m
RACE_TIMEOUT  ?= 50m
CHAOS_ROUNDS  ?= 500
CHAOS_TIMEOUT ?= 3h

.PHONY: all build test chaos demo demo-hf bench bench-real bench-family fuzz minio lint clean

all: build

build:
	$(GO) build -o $(CKPT) ./cmd/ckpt

# MinIO for the S3 tests: built once from the Go module proxy into ./bin
# (git-ignored; about 5 minutes on 2 cores the first time), then reused.
$(MINIO):
	@mkdir -p $(BIN)
	@echo "installing MinIO $(MINIO_VERSION) into $(BIN) (first time only)"
	GOBIN=$(BIN) $(GO) install github.com/minio/minio@$(MINIO_VERSION)

minio: $(MINIO)

# staticcheck at a pinned version, installed from the Go module proxy.
STATICCHECK_VERSION := v0.8.2
STATICCHECK         := $(BIN)/staticcheck-$(STATICCHECK_VERSION)

$(STATICCHECK):
	@mkdir -p $(BIN)
	GOBIN=$(BIN)/.staticcheck $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(BIN)/.staticcheck/staticcheck $@ && rmdir $(BIN)/.staticcheck

# The systems ckpt builds on: lint vets the module (tests included) for each.
PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64

lint: $(STATICCHECK)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	@for p in $(PLATFORMS); do \
		echo "GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) vet ./..."; \
		GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) vet ./... || exit 1; \
	done

# The whole suite, MinIO included (the tests start and stop their own server;
# CKPT_REQUIRE_MINIO=1 makes a missing MinIO fail them, where a plain
# `go test ./...` skips them).
#
# Then the packages whose code runs goroutines of its own (the engine's
# workers, locks and gc, the backends, watch, the cache writer) run again
# under the race detector. The CPU-bound leaves (planes, layout, diff) and
# the CLI and chaos tests, which mostly wait for child processes, are left
# out: under -race they cost minutes and check nothing concurrent. Tests
# that assert allocation bounds skip under -race (testutil.RaceEnabled);
# the first pass asserts them. Measured on 2 cores: the first pass takes
# about 4.5 minutes, the race pass about 14.5 (store alone 14.4).
RACE_PKGS := ./store ./store/backend/... ./store/refs ./store/manifest ./store/object \
	./internal/watch ./internal/redact ./hfcache/... ./retention

test: $(MINIO) lint
	CKPT_REQUIRE_MINIO=1 CKPT_MINIO_BIN=$(MINIO) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	CKPT_REQUIRE_MINIO=1 CKPT_MINIO_BIN=$(MINIO) $(GO) test -race -count=1 -timeout $(RACE_TIMEOUT) $(RACE_PKGS)

# The kill -9 campaign at length (`make test` runs a short form of it):
# CHAOS_ROUNDS rounds per backend, then a summary. CKPT_CHAOS_SEED=N replays
# a failing run's schedule; see internal/chaos/doc.go.
chaos: $(MINIO)
	CKPT_REQUIRE_MINIO=1 CKPT_MINIO_BIN=$(MINIO) CKPT_CHAOS_ROUNDS=$(CHAOS_ROUNDS) $(GO) test -count=1 -v -timeout $(CHAOS_TIMEOUT) -run '^TestKillCampaign$$' ./internal/chaos/

# The main job on a throw-away embedded registry.
demo: build
	CKPT=$(CKPT) GO=$(GO) ./scripts/demo.sh

# The Hugging Face bridge end to end (offline): import a base from a Hugging
# Face cache, push a LoRA run naming it, pull the best by accuracy into a
# Hugging Face cache and with its base, copy it to a second registry.
demo-hf: build
	CKPT=$(CKPT) GO=$(GO) ./scripts/peft-demo.sh

# Short fuzzing of every parser of outside input.
fuzz:
	./scripts/fuzz.sh

bench: build $(MINIO)
	CKPT=$(CKPT) CKPT_MINIO_BIN=$(MINIO) GO=$(GO) ./scripts/bench.sh

# Opt-in, not part of `make test`: push real training output (the folders
# ../shared/train/train.py writes, one per run) into a throw-away registry in
# step order and print what each checkpoint stored, per file role.
REAL_DATA ?= /work/data/family
REAL_RUNS ?= frozen,ft32
bench-real:
	$(GO) run ./internal/realbench -data $(REAL_DATA) -runs $(REAL_RUNS)

# Opt-in: the model family (a pretraining run and four fine-tunes of its
# checkpoint 600: fp32, pure bf16, fp32 master weights saved as bf16, frozen
# backbone saved as pytorch_model.bin), pushed with --base in step order,
# then best + last 2 per run and gc; without deltas, then with them; then
# the peers table (-peers): restic (skipped if missing) and an estimate of
# ZipLLM's scheme on the same checkpoints and the same retention. Make the
# data with scripts/train-family.sh (Debian python3-torch, ~1 hour on 2
# cores).
FAMILY_RUNS ?= ft32,ftbf16,ftmix,frozen
bench-family:
	$(GO) run ./internal/realbench -data $(REAL_DATA) -runs $(FAMILY_RUNS) -base pre@600 -retain -deltas -peers

clean:
	rm -rf $(BIN) .bench
