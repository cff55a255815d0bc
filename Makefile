# stratops developer entry points. Every target works on a fresh machine with Python >= 3.11
# and Go (the local control plane is built from Go modules on first use, then cached).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup lint controlplane monitoring kubectl demo shell test unit e2e bench bench-rollouts soak crds check-crds image kind-node-image kind-up kind-e2e kind-down clean

help:
	@echo "make demo    start the local cluster with stratops and the example desk (Ctrl-C stops)"
	@echo "make shell   a shell for the running demo (its KUBECONFIG, the stratops CLI and kubectl on PATH)"
	@echo "make test    run every test (unit and end to end on the local cluster)"
	@echo "make unit    unit tests only (no cluster)"
	@echo "make lint    ruff (lint and format), the layer contracts (import-linter), mypy --strict on the pure packages"
	@echo "make e2e     end-to-end tests only (USE_EXISTING_CLUSTER=1 for the current KUBECONFIG)"
	@echo "make bench   benchmarks (prints a table)"
	@echo "make bench-rollouts   stratops beside Argo Rollouts on the same work (ROLLOUTS_ARGS=...)"
	@echo "make soak    the chaos soak: desk operations and faults, then the invariants checked (SOAK_ARGS=...)"
	@echo "make crds    regenerate crds/ from the models"
	@echo "make image   build the operator image (BASE_IMAGE=... to choose its base)"
	@echo "make kind-up / kind-e2e / kind-down   kind cluster with the chart / the e2e suite on it / delete it all"
	@echo "              (no registry needed where the machine has root, Docker and debootstrap; see README, kind)"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,lint]"
	touch $@

setup: $(VENV)/.installed

# The guardrails CI runs before the tests (issue 20): style, the layering, and strict types
# where a wrong type is a wrong decision. `ruff format .` and `ruff check --fix .` mend most.
PURE := models lifecycle monitors gates recovery admission audit alerts gitops polling soak
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy --strict $(foreach p,$(PURE),-p stratops.$(p))

controlplane:
	@if [ -z "$$USE_EXISTING_CLUSTER" ]; then bash hack/build-controlplane.sh >/dev/null; fi

# Prometheus, promtool and Alertmanager for the tests, from the pinned Go module in hack/monitoring
# (a few minutes the first time, then cached; STRATOPS_MONITORING_ASSETS gives ready binaries).
monitoring:
	@bash hack/build-monitoring.sh >/dev/null

# DEMO_ARGS: options of `stratops dev up` (e.g. --once: set up, show the desk at rest, stop).
# kubectl at the control plane's version, from the pinned Go module in hack/kubectl (cached):
# the tests run the kubectl commands the README and examples document, and `make shell` has it.
kubectl:
	@bash hack/build-kubectl.sh >/dev/null

demo: setup controlplane monitoring kubectl
	$(VENV)/bin/stratops dev up $(DEMO_ARGS)

# A shell for the running demo: its KUBECONFIG, and the stratops CLI and kubectl on PATH.
shell:
	@bash hack/demo-shell.sh

test: setup controlplane monitoring kubectl
	$(PY) -m pytest tests

unit: setup monitoring
	$(PY) -m pytest tests/unit

e2e: setup controlplane monitoring kubectl
	$(PY) -m pytest tests/e2e

bench: setup controlplane
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) bench/run.py

# stratops beside Argo Rollouts (built from its pinned Go module in hack/rollouts the first time,
# a few minutes) on the same work: ROLLOUTS_ARGS="--n 500 --blocks 5 --out bench/out"
ROLLOUTS_ARGS ?= --n 500 --blocks 3
bench-rollouts: setup controlplane
	$(PY) bench/rollouts.py $(ROLLOUTS_ARGS)

# The chaos soak at CI's length and seed (tests/e2e/test_soak.py runs the same); a long one:
# make soak SOAK_ARGS="--seconds 1800 --seed random"
SOAK_ARGS ?= --seconds 150 --seed 168
soak: setup controlplane
	$(PY) bench/soak.py $(SOAK_ARGS)

crds: setup
	$(VENV)/bin/stratops crds
	cp crds/*.yaml charts/stratops/crds/  # the chart carries copies (a unit test compares them)

check-crds: setup
	$(VENV)/bin/stratops crds --check

image: setup
	PYTHON=$(PY) bash hack/build-image.sh

# kind: a cluster of one node running the chart (KIND_CLUSTER, default stratops). Where the
# machine has root, Docker and debootstrap, the node image is assembled here from the pinned
# control plane (no registry) and runs on the kind tier's own Docker engine (hack/kind/dockerd.sh).
# KIND_E2E_ARGS: pytest's arguments (default: -m kind tests/e2e, the tests that run on kind).
kind-node-image:
	@bash hack/build-kind-node-image.sh

kind-up: setup
	PYTHON=$(PY) bash hack/kind-up.sh

kind-e2e: setup monitoring kubectl
	PYTHON=$(PY) bash hack/kind-e2e.sh $(KIND_E2E_ARGS)

kind-down:
	bash hack/kind-down.sh

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info operator/*.egg-info
