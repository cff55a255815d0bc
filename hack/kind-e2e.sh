#!/usr/bin/env bash
# For users with Docker and a registry: the whole e2e suite against the kind cluster of
# hack/kind-up.sh (created when absent), with USE_EXISTING_CLUSTER=1. The suite runs its own
# operator process for its t-* namespaces; the chart's operator serves only its own namespace,
# so the two never act on the same objects.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cluster=${KIND_CLUSTER:-stratops}
bash "$root/hack/kind-up.sh"
kind=$(command -v kind || echo "${STRATOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stratops}/kind-v0.33.0/kind")
kubeconfig=$(mktemp)
trap 'rm -f "$kubeconfig"' EXIT
"$kind" get kubeconfig --name "$cluster" > "$kubeconfig"
cd "$root"
KUBECONFIG=$kubeconfig USE_EXISTING_CLUSTER=1 "${PYTHON:-.venv/bin/python}" -m pytest tests/e2e "$@"
