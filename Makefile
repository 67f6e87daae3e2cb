# ecs-sd — `make demo` runs the whole pipeline locally, `make test` runs every test.
# Both install what they need on a fresh Debian or Ubuntu machine (scripts/install-deps.sh):
# Prometheus and the node exporter from the distribution's packages; moto_server, the AWS CLI and
# cfn-lint, when not on PATH, at the versions of scripts/requirements.txt into .venv/, whose bin/
# comes first on PATH here.

GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
VPKG      := github.com/prometheus/common/version
LDFLAGS   := -X $(VPKG).Version=$(VERSION) -X $(VPKG).Revision=$(REVISION) -X $(VPKG).Branch=main -X $(VPKG).BuildUser=make
GOTESTFLAGS ?= -count=1 -timeout 15m
export PATH := $(CURDIR)/.venv/bin:$(PATH)
# go.mod names the toolchain: the newest Go 1.26 patch release, in which every standard-library
# vulnerability that govulncheck finds in ecs-sd's code paths is fixed (`make lint` checks). Machines whose
# Go defaults to GOTOOLCHAIN=local would otherwise build with their own.
export GOTOOLCHAIN ?= auto
# IMAGETEST is the container images' test, a Go module of its own so that BuildKit's Dockerfile
# parser stays out of ecs-sd's go.mod (docs/architecture.md).
IMAGETEST := deploy/imagetest

.PHONY: all build deps test lint demo bench fuzz clean

all: build

# The binaries are static (CGO_ENABLED=0), as in the container images, whose amd64 build then
# reuses these compiled packages (deploy/imagetest).
build: export CGO_ENABLED = 0
build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/ecs-sd ./cmd/ecs-sd
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/webapp ./cmd/webapp
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/demo ./cmd/demo

# deps installs and checks what the tests and the demo run against, and prints their versions.
deps:
	./scripts/install-deps.sh

# test runs every test: the unit tests (plain `go test ./...`, which needs only Go) and, with the
# build tag integration, the tests against moto, Prometheus, promtool, cfn-lint and the AWS CLI,
# which fail naming the tool when one is missing.
test: deps build lint
	$(GO) test $(GOTESTFLAGS) -tags integration ./...
	cd $(IMAGETEST) && $(GO) test $(GOTESTFLAGS) ./...

# lint runs gofmt/goimports, go vet (with and without the integration tag), golangci-lint
# (.golangci.yml) and govulncheck against an offline vulnerability database. The linters are pinned
# in tools/go.mod and built from the Go module proxy; the database is built from the vulndb module
# pinned there, so nothing but the module proxy is needed.
TOOLS_MOD := -modfile=tools/go.mod
VULNDB    := $(BIN)/vulndb

lint: $(BIN)/golangci-lint $(BIN)/govulncheck $(VULNDB)/index/db.json
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	$(BIN)/golangci-lint run --allow-parallel-runners ./...
	cd $(IMAGETEST) && $(GO) vet ./... && $(CURDIR)/$(BIN)/golangci-lint run --allow-parallel-runners --config $(CURDIR)/.golangci.yml ./...
	$(BIN)/govulncheck -db file://$(CURDIR)/$(VULNDB) ./...

$(BIN)/golangci-lint $(BIN)/govulncheck $(BIN)/indexdb: tools/go.mod tools/go.sum
	$(GO) build $(TOOLS_MOD) -o $@ $(shell $(GO) list $(TOOLS_MOD) -f '{{.ImportPath}}' tool | grep '/$(notdir $@)$$')

$(VULNDB)/index/db.json: $(BIN)/indexdb tools/go.mod
	$(GO) mod download $(TOOLS_MOD) golang.org/x/vulndb
	rm -rf $(VULNDB)
	$(BIN)/indexdb -vulns $$($(GO) list $(TOOLS_MOD) -m -f '{{.Dir}}' golang.org/x/vulndb)/data/osv -out $(VULNDB)

# demo runs the whole pipeline locally (cmd/demo); DEMO_DURATION=<seconds> stops it by itself;
# DEMO_SHARDS=3 runs three Prometheus agents, each on one http_sd shard, instead of one Prometheus.
demo: deps build
	./scripts/demo.sh

bench: deps
	$(GO) test -tags integration -run '^$$' -bench . -benchtime 1x ./...

# fuzz runs every fuzz target (func FuzzXxx) for FUZZTIME each; their seed corpora
# (testdata/fuzz/FuzzXxx) run with the plain tests too. New failing inputs land in testdata/fuzz.
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./internal/...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "$$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf $(BIN)
