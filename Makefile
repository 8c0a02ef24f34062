# hpcvm: durable KVM clusters on libvirt hosts, driven by Temporal workflows.
# `make help` lists the targets.

GO        ?= go
BIN       := bin
STATE     := .hpcvm
EXAMPLE   ?= examples/cluster.yaml
# Go test timeout: the whole suite takes a few minutes; the first build of the
# in-process Temporal server takes about 3 minutes more on 2 cores.
TEST_TIMEOUT ?= 25m
# The modules of this checkout. The Temporal server and its Web UI are needed
# only by the dev server and the tests that run one, so they live in modules of
# their own (devserver/, e2e/; each replaces the main module with ../) and the
# main module, which other teams import, does not carry them. `go test ./...`
# does not descend into a nested module: the targets below visit each.
MODULES   := . devserver e2e

.PHONY: help deps libvirtd libvirtd-down postgres postgres-down build test test-unit bench bench-upload bench-crash bench-scale bench-remote up run down example-image clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

deps: ## install the Debian packages hpcvm needs (libvirt, QEMU, headers)
	bash scripts/install-deps.sh

libvirtd: deps ## start libvirtd + virtlogd in the hpcvm-test network namespace (or reuse a running one)
	bash scripts/libvirtd-up.sh

libvirtd-down: ## stop the libvirtd this project started
	bash scripts/libvirtd-down.sh

postgres: deps ## start the project's PostgreSQL on 127.0.0.1 (own data dir, free port) for the production-Temporal tests, or reuse a running one
	bash scripts/postgres-up.sh

postgres-down: ## stop the PostgreSQL this project started
	bash scripts/postgres-down.sh

# What `hpcvm version` says when the toolchain stamps no VCS data
# (-buildvcs=false, a copy without .git): the checkout's git describe.
STAMP     := $(shell git describe --always --dirty 2>/dev/null)
LDFLAGS   := -X github.com/hpcvm/hpcvm/internal/buildinfo.Stamp=$(STAMP)

build: deps ## build bin/hpcvm, bin/hpcvm-worker, bin/hpcvm-devserver
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/hpcvm ./cmd/hpcvm
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/hpcvm-worker ./cmd/hpcvm-worker
	cd devserver && $(GO) build -ldflags '$(LDFLAGS)' -o ../$(BIN)/hpcvm-devserver .

test: deps libvirtd postgres ## run every test of every module: unit, workflow, libvirt and end-to-end (real libvirtd, real Temporal: in-process, and with PostgreSQL + mTLS)
	set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done
	cd e2e && $(GO) vet -tags libvirtdrestart ./
	set -e; for m in $(MODULES); do (cd $$m && $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...); done
	@# alone, after the rest: it restarts the test libvirtd under a running cluster
	cd e2e && $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -tags libvirtdrestart -run TestLibvirtdRestartedMidRun ./

test-unit: ## the tests that need neither libvirtd nor Temporal
	$(GO) test -count=1 ./api/ ./cluster/ ./internal/templates/ ./internal/preflight/ ./internal/workflows/

# BENCH_BASE is the revision make bench compares this tree with, side by
# side (the main before the control-plane work of issue 21 by default).
BENCH_BASE ?= 46ab497

bench: deps libvirtd ## start+destroy 1+7 and 1+31 VMs with hpcvm and with a plain 8-way parallel virsh script, alternating; then with this tree and BENCH_BASE side by side; prints min/median/max, ratios per round, CPU used
	cd e2e && HPCVM_BENCH_BASE=$(BENCH_BASE) $(GO) test -run '^$$' -bench 'StartDestroyVsVirsh|StartDestroyOldVsNew' -benchtime 5x -timeout $(TEST_TIMEOUT) ./

bench-upload: deps libvirtd ## upload dense raw, sparse raw and sparse qcow2 images the ways hpcvm does (stream, undigested stream, whole step) and with virsh vol-upload (--sparse), alternating; prints times, rates, ratios, allocations
	$(GO) test -run '^$$' -bench UploadVsVirsh -benchtime 1x -timeout $(TEST_TIMEOUT) ./internal/activities/

bench-crash: deps libvirtd ## kill -9 the worker at each step of start and destroy (restarted at once); prints the time each kill costs the run
	cd e2e && $(GO) test -run '^$$' -bench CrashRecovery -benchtime 1x -timeout $(TEST_TIMEOUT) ./

bench-scale: deps libvirtd ## start+destroy 1+7, 1+31 and 1+99 VMs (64 MiB) with hpcvm and an 8-way virsh script; prints times, ratios, history sizes, longest workflow task
	cd e2e && $(GO) test -run '^$$' -bench Scale -benchtime 1x -timeout 60m ./

bench-remote: deps libvirtd postgres ## start+destroy 1+2 VMs against the PostgreSQL + mTLS Temporal seen across emulated round trips (0-250 ms); prints times and workflow-task waits per run
	cd e2e && $(GO) test -run '^$$' -bench RemoteTemporal -benchtime 1x -timeout $(TEST_TIMEOUT) ./

example-image: deps ## build the example's base image (a tiny bootable guest) if missing
	@mkdir -p /var/lib/hpcvm/images
	@test -f /var/lib/hpcvm/images/example-base.qcow2 || bash scripts/make-test-image.sh /var/lib/hpcvm/images/example-base.qcow2

up: build libvirtd ## bring up Temporal + the host worker locally, and start no cluster (then: bin/hpcvm start -c YOUR.yaml)
	bash scripts/run-local.sh up

run: build libvirtd example-image ## bring up Temporal + worker locally and start the example cluster (EXAMPLE=file.yaml for another)
	bash scripts/run-local.sh start $(EXAMPLE)

down: ## stop the local worker and Temporal dev server started by `make up` or `make run`
	bash scripts/run-local.sh stop

clean: ## remove build output
	rm -rf $(BIN)
