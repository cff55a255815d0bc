#!/usr/bin/env bash
# For users with Docker and a registry: a kind cluster running stratops from its Helm chart.
#   1. creates the kind cluster $KIND_CLUSTER (default stratops), if absent;
#   2. builds the operator image (hack/build-image.sh) and loads it into the cluster's nodes;
#   3. installs the chart (CRDs included) into $STRATOPS_NAMESPACE (default stratops-system),
#      serving that namespace, and waits for the Deployment to be available.
# kind is built from its Go module and helm by hack/build-helm.sh when they are not on PATH.
# It cannot run where stratops is built (no registry for kind's node image): see the README.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cluster=${KIND_CLUSTER:-stratops}
namespace=${STRATOPS_NAMESPACE:-stratops-system}
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$root/operator/stratops/__init__.py")
image=stratops:$version
cache="${STRATOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stratops}"

kind=$(command -v kind || true)
if [ -z "$kind" ]; then
  kind="$cache/kind-v0.33.0/kind"
  [ -x "$kind" ] || GOBIN="$(dirname "$kind")" GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" go install sigs.k8s.io/kind@v0.33.0
fi
helm=$(command -v helm || bash "$root/hack/build-helm.sh")
docker info >/dev/null 2>&1 || { echo "kind needs a running Docker engine" >&2; exit 1; }

if ! "$kind" get clusters 2>/dev/null | grep -qx "$cluster"; then
  "$kind" create cluster --name "$cluster" --wait 180s
fi
kubeconfig=$(mktemp)
trap 'rm -f "$kubeconfig"' EXIT
"$kind" get kubeconfig --name "$cluster" > "$kubeconfig"

BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim-bookworm} bash "$root/hack/build-image.sh" "$image" >/dev/null
"$kind" load docker-image "$image" --name "$cluster"
# pullPolicy Never: the image was loaded into the nodes, there is no registry to pull it from.
# CRDs: `helm upgrade` never updates a chart's crds/, so apply them first (server-side).
"${PYTHON:-$root/.venv/bin/python}" -c 'import sys; from pathlib import Path
from stratops.k8s.apply import install_crds; from stratops.k8s.client import api_client
install_crds(api_client(sys.argv[1]), Path(sys.argv[2]))' "$kubeconfig" "$root/charts/stratops/crds"
KUBECONFIG=$kubeconfig "$helm" upgrade --install stratops "$root/charts/stratops" \
  --namespace "$namespace" --create-namespace \
  --set image.repository=stratops --set image.tag="$version" --set image.pullPolicy=Never \
  --wait --timeout 5m
echo "stratops is running in kind cluster $cluster, namespace $namespace:"
echo "  kind get kubeconfig --name $cluster > ~/.kube/kind-$cluster && export KUBECONFIG=~/.kube/kind-$cluster"
