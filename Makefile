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

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	cd $(IMAGETEST) && $(GO) vet ./...

# demo runs the whole pipeline locally (cmd/demo); DEMO_DURATION=<seconds> stops it by itself.
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
