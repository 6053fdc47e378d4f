# Jobsmith developer entry points. `make test` is what CI runs (.ci/run); `make demo` is the main job.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

RUSTC_VERSION := $(shell rustc --version 2>/dev/null | awk '{print $$2}')
# The cargo target dir lives outside the repo, keyed by compiler version, so a fresh clone on a kept
# machine (CI) builds incrementally. Override with CARGO_TARGET_DIR.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/jobsmith/cargo-target-$(RUSTC_VERSION)
export JOBSMITH_BIN ?= $(CARGO_TARGET_DIR)/debug/jobsmith
export KUBECTL_JOBSMITH_BIN ?= $(CARGO_TARGET_DIR)/debug/kubectl-jobsmith
# Where `make install-plugin` puts kubectl-jobsmith and kubectl-managedjob (put it on PATH).
BINDIR ?= $(HOME)/.local/bin
# The workspace version: the image tag and the chart's version/appVersion.
VERSION := $(shell sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' Cargo.toml)
export JOBSMITH_IMAGE ?= localhost/jobsmith:$(VERSION)
# The static release binary of the image (e2e/scripts/build-image.sh).
STATIC_BIN := $(CARGO_TARGET_DIR)/x86_64-unknown-linux-gnu/release/jobsmith
# helm and helm-unittest, built into the tools cache by e2e/scripts/build-tools.sh.
TOOL_BINS := $(shell bash -c 'source e2e/scripts/versions.sh && echo "$$HELM_BIN $$HELM_UNITTEST_BIN"')
export HELM ?= $(word 1,$(TOOL_BINS))/helm
HELM_UNITTEST ?= $(word 2,$(TOOL_BINS))/helm-unittest

.PHONY: help setup generate lint unit tools gitops-tools kueue-tool argocd-health argocd-capture cluster-up cluster-down e2e test bench-engine bench-e2e bench-scale faults-full demo build install-plugin image chart

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: ## install what the project needs (apt packages, rust components, go check)
	bash e2e/scripts/setup.sh

generate: ## re-render crds/, docs/reference/, the chart/kustomize files, deploy/argocd/argocd-cm.yaml and the plugin's expected outputs
	JOBSMITH_UPDATE_GENERATED=1 cargo test -q -p jobsmith-api --test generated
	JOBSMITH_UPDATE_GENERATED=1 cargo test -q -p jobsmith-manager --test deploy_generated
	JOBSMITH_UPDATE_GENERATED=1 cargo test -q -p jobsmith-e2e --test argocd_health -- the_argocd_cm_patch_is_generated_from_the_scripts
	JOBSMITH_UPDATE_GENERATED=1 cargo test -q -p jobsmith-cli --test render --test svg

lint: ## rustfmt check, clippy with -D warnings, rustdoc (broken doc links), shellcheck of the scripts, gofmt of the checkers
	cargo fmt --all -- --check
	shellcheck -x e2e/scripts/*.sh cli/install-plugin.sh .ci/run
	test -z "$$(gofmt -l e2e/toolchain)" || { gofmt -l e2e/toolchain; echo "run gofmt -w e2e/toolchain"; exit 1; }
	cargo clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

unit: ## unit, property and generated-file tests, and the disk keeper's test (no cluster)
	cargo test --workspace --exclude jobsmith-e2e
	bash e2e/scripts/disk-test.sh

build: ## build the jobsmith binary and the kubectl-jobsmith plugin
	cargo build -p jobsmith-manager --bin jobsmith -p jobsmith-cli --bin kubectl-jobsmith

install-plugin: ## build the kubectl plugin (release) and install kubectl-jobsmith + kubectl-managedjob into BINDIR
	cargo build --release -p jobsmith-cli --bin kubectl-jobsmith
	bash cli/install-plugin.sh $(CARGO_TARGET_DIR)/release/kubectl-jobsmith $(BINDIR)

tools: ## build the local control plane's binaries into the cache (slow once, then cached)
	bash e2e/scripts/build-tools.sh

gitops-tools: ## build the Argo CD health-script harness and the kstatus checker into the tools cache
	bash e2e/scripts/build-tools.sh argocd-lua kstatus

kueue-tool: ## build Kueue (the manager and its CRDs) into the tools cache for e2e/tests/kueue.rs (slow once, then cached)
	bash e2e/scripts/build-tools.sh kueue

argocd-health: gitops-tools ## run deploy/argocd/*/health_test.yaml in Argo CD's Lua sandbox (no cluster)
	source e2e/scripts/versions.sh && "$$ARGOCD_LUA_BIN/argocd-lua-health" test deploy/argocd

argocd-capture: build gitops-tools ## regenerate deploy/argocd/*/testdata from live objects on the local plane
	JOBSMITH_CAPTURE_ARGOCD=1 bash e2e/scripts/with-cluster.sh cargo test -p jobsmith-e2e --test argocd_health

image: ## static release binary (checked static) and the image $(JOBSMITH_IMAGE) (buildah, no base image)
	IMAGE=$(JOBSMITH_IMAGE) bash e2e/scripts/build-image.sh

chart: ## helm lint and helm-unittest of charts/jobsmith (builds helm and helm-unittest, cached)
	bash e2e/scripts/build-tools.sh helm helm-unittest
	$(HELM) lint --strict charts/jobsmith
	$(HELM) lint --strict charts/jobsmith -f charts/jobsmith/ci/every-flag-values.yaml
	$(HELM_UNITTEST) charts/jobsmith

cluster-up: tools ## start the local control plane; prints the KUBECONFIG to export
	bash e2e/scripts/cluster-up.sh

cluster-down: ## stop the local control plane
	bash e2e/scripts/cluster-down.sh

# with-cluster.sh builds the tools (cached) only when it starts the local plane. The image and
# chart tests (e2e/tests/{image,chart,kustomize}.rs) need the image and helm: `image` and `chart`;
# e2e/tests/kueue.rs needs Kueue: `kueue-tool`.
e2e: build gitops-tools kueue-tool image chart ## end-to-end tests on the local plane (or on E2E_KUBECONFIG's cluster)
	bash e2e/scripts/with-cluster.sh cargo test --no-fail-fast -p jobsmith-e2e -- --test-threads=$${E2E_THREADS:-4}

test: setup lint unit argocd-health e2e bench-e2e bench-scale ## everything CI runs (the bench prints figures, never fails on time)

bench-engine: ## engine benchmarks (prints name: value unit)
	cargo bench -p jobsmith-engine --bench engine
	cargo bench -p jobsmith-manager --bench reconcile

# The bench measures the release binary that ships in the image (the static one `make image`
# builds), which also spares a second release build of the manager.
faults-full: build ## the SIGKILL fault test at full size (20 runs of 30 steps) on the local plane
	FAULTS_RUNS=20 bash e2e/scripts/with-cluster.sh cargo test -p jobsmith-e2e --test faults -- sigkilled_managers_create_every_step_exactly_once --nocapture

bench-scale: image ## scale benchmark on a private plane (prints name: value unit); BENCH_SCALE=full for 10,000-step runs and 1,000 concurrent runs
	JOBSMITH_BIN=$(STATIC_BIN) cargo test --release -p jobsmith-e2e --test bench_scale -- --ignored --nocapture --test-threads=1

bench-e2e: image ## end-to-end benchmark on the local plane (prints name: value unit)
	JOBSMITH_BIN=$(STATIC_BIN) E2E_DISABLE_QPS_LIMITS=1 bash e2e/scripts/with-cluster.sh \
	  cargo test --release -p jobsmith-e2e --test bench -- --ignored --nocapture --test-threads=1

# demo.sh builds the tools (cached) only when your kubeconfig names no reachable cluster.
demo: build ## the main job: your cluster (or the local plane), CRDs, manager, the README sample
	bash e2e/scripts/demo.sh
