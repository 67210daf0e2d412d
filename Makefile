# tokenauthority: every task a developer or CI runs. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules --warn-undefined-variables

# Tools are Go modules pinned here (protoc-gen-go and protoc-gen-go-grpc are pinned by go.mod's
# tool directives) and installed by make itself into bin/, one directory per version.
BUF_VERSION           := v1.75.0
GRPCURL_VERSION       := v1.9.4
GHZ_VERSION           := v0.93.0
GOLANGCI_LINT_VERSION := v2.15.0

BIN           := $(CURDIR)/bin
BUF           := $(BIN)/buf-$(BUF_VERSION)/buf
GRPCURL       := $(BIN)/grpcurl-$(GRPCURL_VERSION)/grpcurl
GHZ           := $(BIN)/ghz-$(GHZ_VERSION)/ghz
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint

GO_TEST_FLAGS ?= -race -count=1
FUZZ_TIME     ?= 30s
BENCH_TIME    ?= 10s
SOAK_TIME     ?= 60s
SOAK_RATE     ?= 500

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN {FS = ":.*## "}; {printf "  %-16s %s\n", $$1, $$2}'

.PHONY: run
run: build ## run the service on the embedded default (in-memory store, dev keys in .data/)
	$(BIN)/tokenauthority

.PHONY: demo
demo: ## run the demo orders service against `make run` (start that first; see cmd/demo-orders/README.md)
	go build -o $(BIN)/demo-orders ./cmd/demo-orders
	$(BIN)/demo-orders

.PHONY: build
build: ## build bin/tokenauthority
	go build -o $(BIN)/tokenauthority ./cmd/tokenauthority

.PHONY: test
test: redis-server $(GRPCURL) oauth-client ## run every test with -race, including those against a real redis-server
	GRPCURL=$(GRPCURL) go test $(GO_TEST_FLAGS) ./...
	@# The manifests test has no concurrency to race-check, and a -race build of the Kubernetes
	@# packages takes minutes.
	cd deploy && go test -count=1 ./...

.PHONY: oauth-client
oauth-client: ## install openid-client (npm, pinned by its lockfile), which a test runs against the RFC 7662/7009 endpoints
	@if command -v npm >/dev/null; then cd internal/app/testdata/oauthclient && npm ci --no-audit --no-fund --silent; \
	else echo "npm not found: TestOAuthEndpointsWithOpenIDClient will skip if node is missing too"; fi

.PHONY: check
check: tools ## vet, lint (golangci-lint, buf), format check and generated-code check
	go vet ./...
	cd deploy && go vet ./...
	$(GOLANGCI_LINT) run ./...
	$(BUF) lint
	$(BUF) format -d --exit-code
	$(MAKE) --no-print-directory check-generate

.PHONY: generate
generate: $(BUF) ## regenerate gen/ from proto/ with buf and the go.mod-pinned plugins
	$(BUF) generate

.PHONY: check-generate
check-generate: generate ## regenerate and fail if gen/ changed
	@git diff --exit-code -- gen/ || { echo "gen/ is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- gen/)" || { echo "gen/ has untracked files: run 'make generate' and commit"; exit 1; }

.PHONY: breaking
breaking: $(BUF) ## check proto/ for breaking changes against the main branch
	$(BUF) breaking --against '.git#branch=main'

.PHONY: bench
bench: redis-server $(GHZ) ## Go benchmarks and the ghz throughput ratios against a local server
	go test -run '^$$' -bench . -benchmem -benchtime 2s ./internal/... ./authn/...
	TOKENAUTHORITY_BENCH=1 GHZ=$(GHZ) BENCH_TIME=$(BENCH_TIME) go test -run TestPerformanceRatios -count=1 -v -timeout 30m ./internal/app/ | grep -v "^=== "

.PHONY: soak
soak: redis-server ## drive an issue/verify/refresh/revoke mix at SOAK_RATE req/s for SOAK_TIME: errors, latency, memory
	TOKENAUTHORITY_SOAK=1 SOAK_TIME=$(SOAK_TIME) SOAK_RATE=$(SOAK_RATE) go test -run TestSoak -count=1 -v -timeout 30m ./internal/app/

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZ_TIME each
	@for pkg in $$(go list ./...); do \
	  for f in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; go test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZ_TIME) $$pkg; \
	  done; \
	done

.PHONY: tools
tools: $(BUF) $(GRPCURL) $(GOLANGCI_LINT) ## install the pinned tools into bin/

.PHONY: redis-server
redis-server: ## install redis-server from Debian's packages when it is missing
	@command -v redis-server >/dev/null || { \
	  echo "redis-server is missing: installing it from Debian's packages"; \
	  SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; \
	}

$(BUF):
	GOBIN=$(dir $@) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(GRPCURL):
	GOBIN=$(dir $@) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
$(GHZ):
	GOBIN=$(dir $@) go install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)
$(GOLANGCI_LINT):
	GOBIN=$(dir $@) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

.PHONY: clean
clean: ## remove bin/ (the data directory .data/ is kept)
	rm -rf $(BIN)
