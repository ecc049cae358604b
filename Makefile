# bidscore's front door: CI, the README and pre-commit call these targets.
# `make help` lists them.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools/bin
GHZ_VERSION := v0.120.0
PROMTOOL_VERSION := v0.316.0
export PATH := $(CURDIR)/$(TOOLS):$(PATH)

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip

$(VENV)/.installed: $(BIN)/python pyproject.toml Cargo.toml rust_core/Cargo.toml
	scripts/install-system-deps.sh
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

.PHONY: install
# The Go tools come first: their builds need the most scratch disk, and it is freed before the rest.
# promtool is left to deploy-check (and so to `make test`): the demo and the everyday commands
# do not need it, and its build takes minutes and 5 GB of scratch disk at its peak.
install: $(TOOLS)/ghz $(TOOLS)/streamload $(VENV)/.installed $(BIN)/ghz $(BIN)/streamload ## Install ghz, build streamload, create .venv, build rust_core (release), system packages

# `control loadtest` runs ghz and streamload from PATH: linked into .venv/bin, they are there
# for whoever activates the venv, as the README's everyday commands do.
$(BIN)/ghz: $(TOOLS)/ghz | $(VENV)/.installed
	ln -sf $(CURDIR)/$(TOOLS)/ghz $@
$(BIN)/streamload: $(TOOLS)/streamload | $(VENV)/.installed
	ln -sf $(CURDIR)/$(TOOLS)/streamload $@

# Go builds the tools in a module and build cache of their own, deleted when the build ends:
# promtool's dependencies alone fill 3.6 GB there, and nothing else here reuses them.
GO_SCRATCH = scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
	export GOMODCACHE=$$scratch/mod GOCACHE=$$scratch/cache GOFLAGS=-modcacherw &&

# ghz reports its version from an ldflag that only its release build sets; set it here too.
$(TOOLS)/ghz:
	@command -v go >/dev/null || { echo "error: ghz is installed with the Go toolchain, and 'go' is not on PATH (https://go.dev/doc/install)"; exit 1; }
	$(GO_SCRATCH) GOBIN=$(CURDIR)/$(TOOLS) go install -ldflags="-X main.version=$(GHZ_VERSION)" github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)

# promtool checks and unit-tests the alert rules (make deploy-check).
$(TOOLS)/promtool:
	@command -v go >/dev/null || { echo "error: promtool is installed with the Go toolchain, and 'go' is not on PATH"; exit 1; }
	$(GO_SCRATCH) GOBIN=$(CURDIR)/$(TOOLS) go install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)

# ScoreStream load generator (per-message latency; ghz times whole bidi calls): tools/streamload.
$(TOOLS)/streamload: tools/streamload/main.go tools/streamload/go.mod tools/streamload/go.sum
	@command -v go >/dev/null || { echo "error: streamload is built with the Go toolchain, and 'go' is not on PATH (https://go.dev/doc/install)"; exit 1; }
	$(GO_SCRATCH) cd tools/streamload && go build -o $(CURDIR)/$(TOOLS)/streamload .

.PHONY: build
build: $(VENV)/.installed ## Rebuild the rust_core extension after Rust changes
	$(BIN)/pip install -q --no-deps -e .

.PHONY: proto
proto: $(VENV)/.installed ## Regenerate Python code from proto/
	$(BIN)/python scripts/gen_proto.py

.PHONY: format
format: $(VENV)/.installed ## Format Rust and Python
	cargo fmt --all
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: lint
lint: $(VENV)/.installed ## cargo fmt/clippy, ruff, stale generated code
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --features python -- -D warnings
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/python scripts/gen_proto.py --check

.PHONY: typecheck
typecheck: $(VENV)/.installed ## mypy on our packages, stubtest of rust_core.pyi against the built module
	$(BIN)/mypy
	$(BIN)/python -m mypy.stubtest rust_core --allowlist scripts/stubtest-allowlist.txt

.PHONY: test-rust
test-rust: ## cargo test of the Rust core (no Python needed)
	cargo test --all-targets

.PHONY: test-python
test-python: install ## pytest: unit, integration against real servers, end to end
	$(BIN)/pytest

.PHONY: deploy-check
deploy-check: $(VENV)/.installed $(TOOLS)/promtool ## Validate k8s/ECS manifests, check and unit-test the alert rules
	$(BIN)/python scripts/deploy_check.py
	$(TOOLS)/promtool check rules deploy/monitoring/alerts.yaml
	cd deploy/monitoring && $(CURDIR)/$(TOOLS)/promtool test rules alerts_test.yaml

.PHONY: image
image: ## Build the container image (docker or podman), tagged with the git commit
	@builder=$$(command -v podman || command -v docker) || { echo "error: no container builder (podman or docker); see docs/deploy.md"; exit 1; }; \
	commit=$$(git rev-parse --short=12 HEAD); \
	$$builder build -f deploy/docker/Dockerfile --build-arg GIT_COMMIT=$$commit -t bidscore:$$commit .

# Maven Central only; -q keeps it to failures, so a summary line is printed from Surefire's reports.
JVM_REPORTS := clients/jvm/client/target/surefire-reports
.PHONY: test-jvm
test-jvm: $(VENV)/.installed ## JVM client (clients/jvm): build it, run its tests against real servers
	rm -rf $(JVM_REPORTS)
	mvn -B -q -f clients/jvm/pom.xml verify -Dbidscore.control=$(CURDIR)/$(BIN)/control
	@cat $(JVM_REPORTS)/TEST-*.xml | grep -o '<testsuite [^>]*>' | awk '\
	  function attr(name) { return match($$0, name "=\"[0-9]+\"") ? substr($$0, RSTART + length(name) + 2, RLENGTH - length(name) - 3) + 0 : 0 } \
	  { t += attr("tests"); f += attr("failures") + attr("errors"); s += attr("skipped") } \
	  END { printf "jvm: %d passed, %d failed, %d skipped\n", t - f - s, f, s }'

.PHONY: test
# promtool first: its build's scratch disk is freed before the venv and the Rust targets exist.
test: $(TOOLS)/promtool install lint typecheck test-rust deploy-check test-python test-jvm ## Everything CI runs: lints, types, Rust, deploy checks, Python and JVM tests

# The inner loop: no Go, no AWS emulator, no server subprocesses, no Ray; a couple of minutes.
.PHONY: test-fast
test-fast: $(VENV)/.installed ## Unit tests + cargo test (no ghz, no moto, no servers)
	cargo test --quiet
	$(BIN)/pytest -q -m "not aws and not slow and not server and not ray" -p no:cacheprovider

.PHONY: demo
demo: install ## The main job end to end on the embedded defaults
	$(BIN)/python scripts/demo.py

.PHONY: bench
bench: install ## Benchmarks (bench/): prints ratios against same-run baselines
	$(BIN)/python bench/run_all.py

.PHONY: fuzz
fuzz: ## Run each cargo-fuzz target for FUZZ_SECONDS (default 60)
	scripts/fuzz.sh $${FUZZ_SECONDS:-60}

.PHONY: clean
clean: ## Remove build products and local state
	rm -rf $(VENV) .tools target .bidscore
