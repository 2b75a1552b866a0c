# ckpt — the two set-up commands are `make demo` and `make test`.
GO            ?= go
BIN           := $(CURDIR)/bin
CKPT          := $(BIN)/ckpt
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
MINIO         := $(BIN)/minio
TEST_TIMEOUT  ?= 30m
CHAOS_ROUNDS  ?= 500
CHAOS_TIMEOUT ?= 3h

.PHONY: all build test chaos demo bench bench-real fuzz minio lint clean

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

# The systems ckpt builds on: lint vets the module (tests included) for each.
PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	@for p in $(PLATFORMS); do \
		echo "GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) vet ./..."; \
		GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) vet ./... || exit 1; \
	done

# The whole suite, MinIO included (the tests start and stop their own server;
# CKPT_REQUIRE_MINIO=1 makes a missing MinIO fail them, where a plain
# `go test ./...` skips them).
test: $(MINIO) lint
	CKPT_REQUIRE_MINIO=1 CKPT_MINIO_BIN=$(MINIO) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

# The kill -9 campaign at length (`make test` runs a short form of it):
# CHAOS_ROUNDS rounds per backend, then a summary. CKPT_CHAOS_SEED=N replays
# a failing run's schedule; see internal/chaos/doc.go.
chaos: $(MINIO)
	CKPT_REQUIRE_MINIO=1 CKPT_MINIO_BIN=$(MINIO) CKPT_CHAOS_ROUNDS=$(CHAOS_ROUNDS) $(GO) test -count=1 -v -timeout $(CHAOS_TIMEOUT) -run '^TestKillCampaign$$' ./internal/chaos/

# The main job on a throw-away embedded registry.
demo: build
	CKPT=$(CKPT) GO=$(GO) ./scripts/demo.sh

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

clean:
	rm -rf $(BIN) .bench
