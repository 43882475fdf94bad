# xcatbm — make targets. `make demo` and `make test` are all a newcomer needs.
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
BIN         := bin
FUZZTIME    ?= 5s
# Every test package gets its own schema and vhost, so packages run in parallel.
TESTFLAGS   ?= -count=1 -timeout 20m

.PHONY: all build test test-go fuzz fuzz-short lint services demo bench bench-short bench-openstack bench-json faults test-openstack clean help

all: build

## build: compile every program into ./bin
build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

## services: make sure PostgreSQL and RabbitMQ are installed, running and answering
services:
	@bash scripts/services.sh

## test: every test against the real PostgreSQL and RabbitMQ, short fuzz runs, the benchmark at 5% scale
test: services lint test-go fuzz-short bench-short

test-go:
	$(GO) vet ./...
	$(GO) test $(TESTFLAGS) ./...

## fuzz-short: every fuzz target for $(FUZZTIME) (CI form); `make fuzz FUZZTIME=10m` locally
fuzz-short fuzz:
	@bash scripts/fuzz.sh $(FUZZTIME)

## demo: the main job on this machine: simulated xCAT, a worker, nova's casts, live progress
demo: services
	$(GO) run ./cmd/xcatbm-demo

## lint: gofmt, go vet, staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

clean:
	rm -rf $(BIN) dist

help:
	@grep -E '^## ' Makefile | sed 's/^## /  /'

## test-openstack: the tests against a real nova, placement, Glance and Neutron (installed and started here)
test-openstack: services
	@bash scripts/openstack/test.sh

## bench: the worker's benchmark table on this machine (several minutes; see BENCHMARKS.md)
bench: services
	$(GO) run ./cmd/xcatbm-bench

## bench-json: JSON libraries against xcatbm's own reading and writing, on the captured vectors (messages/jsoncompare, a module of its own; json/v2 under GOEXPERIMENT=jsonv2)
bench-json:
	cd messages/jsoncompare && $(GO) test -count=1 -bench . -benchmem .
	cd messages/jsoncompare && GOEXPERIMENT=jsonv2 $(GO) test -count=1 -bench . -benchmem .

## bench-openstack: the rows against a real nova and placement (installed, started and purged here; BENCH_FLAGS=--scale 0.1 for a shorter run)
bench-openstack: services
	@bash scripts/openstack/with-plane.sh sh -c '$(GO) run ./cmd/xcatbm-bench --openstack "$$XCATBM_TEST_OPENSTACK_DIR" $(BENCH_FLAGS)'

## bench-short: the same rows at 5% scale, well under the full run's time
bench-short: services
	$(GO) run ./cmd/xcatbm-bench --scale 0.05 --runs 1
## faults: the fault harness's full form (kills, storms, broker and database faults, a RabbitMQ cluster node stopped)
faults: services
	XCATBM_FAULTS=full go test -count=1 -timeout 60m -v ./faults/
	XCATBM_FAULTS=full go test -count=1 -timeout 20m -v -run TestClusterLeaderStopMidStorm ./worker/

## package: build the xcatbm .deb and .rpm (and xcatbm-sim's) into dist/ with nfpm; VERSION=... to override
package:
	@VERSION=$(VERSION) bash scripts/package.sh

## package-test: build the packages, install/upgrade/purge the .deb here (root, throwaway machine), inspect the .rpm
package-test:
	@VERSION=$(VERSION) bash scripts/package-test.sh

.PHONY: package package-test
