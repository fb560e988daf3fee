# regctl — run `make help` for the targets.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/regctl/regctl/internal/cli.Version=$(VERSION)
GO      ?= go
# make lint: the golangci-lint binary; scripts/test-deps.sh builds the pinned
# version and prints its path as GOLANGCI_LINT (scripts/test.sh passes it).
GOLANGCI_LINT ?= golangci-lint
# make interop: more go test arguments (-update: rewrite README.md's
# compatibility table from the run).
INTEROP_ARGS ?=
# make dist: where, and for which linux architectures (Go's and Debian's names).
DIST       ?= dist
DIST_ARCHS ?= amd64 arm64

.DEFAULT_GOAL := help

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/regctl
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/regctl ./cmd/regctl

demo: ## quickstart: regctl serve on the embedded store, one allowed and one denied request (and a real push if docker-registry and skopeo exist)
	scripts/demo.sh

dist: ## release files in dist/: static linux amd64 and arm64 binaries, a .deb of each (nfpm), SHA256SUMS
	VERSION='$(VERSION)' LDFLAGS='$(LDFLAGS)' scripts/dist.sh $(DIST) $(DIST_ARCHS)

install: ## install regctl into /usr/local/bin
	install -m 0755 bin/regctl /usr/local/bin/regctl

test: ## unit tests with the race detector (no external servers)
	$(GO) test -race ./...

test-all: ## the full suite: installs and starts the real servers, then runs every test (what CI runs)
	scripts/test.sh

interop: ## the interop matrix alone (as root; what test-all runs): prints client x registry x check with the token flavours; INTEROP_ARGS=-update rewrites the README table
	scripts/test.sh interop $(INTEROP_ARGS)

bench: ## load benchmark: regctl serve vs the ES256 floor under wrk, targets checked (BENCH_ARGS="-duration 5s")
	scripts/bench.sh $(BENCH_ARGS)

bench-stack: ## fresh-host stack benchmark as root: init's time, 1 GiB pushes and pulls via nginx vs direct, token share (about 5 min)
	scripts/freshhost-build.sh >/dev/null
	REGCTL_TEST_REQUIRE=1 $(GO) test -tags integration -run '^$$' -bench Stack -benchtime 1x -timeout 30m ./internal/benchstack

microbench: ## Go micro-benchmarks (CI runs them once with -benchtime=1x)
	$(GO) test -run='^$$' -bench=. -benchmem ./...

lint: ## go vet, gofmt check and golangci-lint with .golangci.yml (GOLANGCI_LINT=path: the pinned one from scripts/test-deps.sh)
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@command -v $(GOLANGCI_LINT) >/dev/null || { echo "$(GOLANGCI_LINT) not found: set GOLANGCI_LINT=path (scripts/test-deps.sh builds the pinned version)"; exit 1; }
	$(GOLANGCI_LINT) run ./...

fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

tidy: ## check that go mod tidy leaves no diff
	$(GO) mod tidy && git diff --exit-code go.mod go.sum

cover: ## unit test coverage report
	$(GO) test -coverprofile=cover.out ./... && $(GO) tool cover -func=cover.out | tail -1

clean: ## remove build output
	rm -rf bin dist cover.out

.PHONY: help build demo dist install test test-all interop bench bench-stack microbench lint fmt tidy cover clean
