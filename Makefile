# linsync developer tasks. `make dev` brings the whole local stack up; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
TEMPORAL_CLI := .cache/bin/temporal
IMAGE ?= ghcr.io/linsync/linsync:dev
GO_BUILD_TAGS ?= nodev

.PHONY: help build dev test test-race generate schema lint bench chaos histories postgres temporal test-tools fuzz clean image

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build the linsync binary into bin/linsync
	$(GO) build -o bin/linsync ./cmd/linsync

dev: postgres temporal ## bring up Temporal (UI on :8233), the database, and linsync's api+worker on :8080
	$(GO) run ./cmd/linsync dev

test: postgres temporal test-tools ## run every unit and integration test against real Postgres, a real Temporal dev server and headless Chromium
	$(GO) test -count=1 ./...

test-race: postgres temporal test-tools ## the tests with the race detector
	$(GO) test -count=1 -race ./...

generate: ## regenerate the genqlient client from the vendored linear/schema.graphql
	cd linear && $(GO) tool genqlient

schema: ## refresh linear/schema.graphql from Linear's public SDK, then regenerate (needs the network)
	scripts/update-linear-schema.sh

lint: ## gofmt, go vet, staticcheck, and workflowcheck (workflows are deterministic)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	$(GO) tool workflowcheck ./workflows/...

bench: postgres temporal ## ingest (durable acks vs the Express peer, start rate, 10k burst, Temporal outage), gateway (proxy vs direct Linear), notifications (accepted→received at 50 deliveries/s, 3 rules each), the classifier, then a host of 20,000 broken links
	$(GO) run ./cmd/linsync bench ingest
	$(GO) run ./cmd/linsync bench gateway
	$(GO) run ./cmd/linsync bench notify
	$(GO) test ./linear/ -run '^$$' -bench BenchmarkClassifyOperation -benchmem
	$(GO) run ./cmd/linsync bench host -n 20000

chaos: postgres temporal ## chaos ledger: 2 APIs + 2 workers, private Postgres and Temporal restarted, workers killed; nothing lost or doubled
	$(GO) build -o bin/linsync ./cmd/linsync
	bin/linsync chaos

histories: postgres temporal ## record one history of every workflow type beside earlier ones (LABEL=name, default today's date)
	$(GO) test -count=1 -run '^TestRecordWorkflowHistories$$' ./e2e/ -update-histories $(if $(LABEL),-history-label $(LABEL))

fuzz: ## fuzz webhook verification and decoding for 60s
	$(GO) test ./linear/ -run '^$$' -fuzz FuzzVerifyAndDecode -fuzztime 60s

postgres: ## start (or install) the local PostgreSQL server
	@scripts/ensure-postgres.sh

test-tools: ## install what the tests drive when missing: curl, openssl, jq (the README's examples), chromium (the console)
	@scripts/ensure-test-tools.sh

temporal: $(TEMPORAL_CLI) ## build the Temporal CLI v1.5.1 (dev server + Web UI) once into .cache/bin

$(TEMPORAL_CLI): tools/temporal/go.mod tools/temporal/go.sum
	@mkdir -p $(dir $@)
	@echo "building the Temporal CLI (once; a few minutes on a cold machine)…"
	cd tools/temporal && $(GO) build -o $(abspath $@) github.com/temporalio/cli/cmd/temporal

image: ## build the container image (deploy/Dockerfile; offline: local Go toolchain + its FROM-scratch stage)
	IMAGE="$(IMAGE)" GO_BUILD_TAGS="$(GO_BUILD_TAGS)" GO="$(GO)" scripts/build-image.sh

clean: ## remove built tools and the dev stack's state
	rm -rf .cache
